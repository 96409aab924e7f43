"""Verifier throughput: math checks/s through RewardScorer vs math-verify called sequentially in one process.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/verifiers.py                 # all benchmarks
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/verifiers.py --only math --n 20000 --workers 0
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/verifiers.py --only math --mix latex   # one mix

Workloads (``--mix``, default both):
  numeric  typical numeric answers (integers, decimals, a few fractions and thousands separators), the model's
           answer in <answer> tags for half and \\boxed{} for the other half, about 60% correct.
  latex    40% of the completions are LaTeX rather than plain numbers, 60% as ``numeric``. Of the LaTeX ones:
           digit fractions (``\\boxed{\\frac{3}{4}}``, ``\\dfrac``, ``\\tfrac``, ``\\frac34``, ``<answer>$-\\frac{1}{2}$</answer>``,
           "The answer is $\\frac{3}{4}$.") against golds written as ``3/4`` or ``\\frac{3}{4}`` (the fast path), and
           a share ``--latex-sympy`` (default 2%) that needs sympy: 3/5 of it symbolic answers in \\boxed{}
           (``\\sqrt{k}``, ``k\\pi``, ``x^2+k``, ``\\frac{\\sqrt{k}}{2}``: math-verify on the candidate), 2/5 answers with no
           marker ("Therefore the probability is $\\frac{3}{4}$.", "... we get $x = \\sqrt{7}$": math-verify on the
           whole text). Each sympy check costs about 5-50 ms (a wrong irrational answer is the slowest), so the
           rate of this mix is set by that share (0.8% of all items at the default): on a 2-core machine loaded by
           other jobs (load average 3.3-3.9) we measured 5,000-7,300 checks/s at 0.02 (median of 3: 6,800), about
           5,000 at 0.05 and 2,600 at 0.10, against 17,000-35,000 for the numeric mix; on the idle machine
           18,000 (median of 3) at 0.02, 10,400 at 0.05, 5,500 at 0.10, and 53,000 for the numeric mix.
Baseline: what a TRL-style accuracy reward does per item, math-verify ``parse`` of the gold, ``parse`` of the
completion (its <answer> tags turned into \\boxed{}, which math-verify anchors on), ``verify``, sequentially
in this process. rlvr: ``RewardScorer([math]).score`` on the same items
(workers warmed up on 256 other items of the same mix; that start-up is printed separately). Other benchmarks (sandbox runs/s) hook in through
``--only``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlvr.config import RewardComponentConfig  # noqa: E402
from rlvr.rewards import RewardScorer  # noqa: E402
from rlvr.types import Example  # noqa: E402


def make_items(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    golds, completions = [], []
    for i in range(n):
        kind = rng.random()
        if kind < 0.7:
            value = rng.randint(-500, 5000)
            gold, shown = str(value), (f"{value:,}" if rng.random() < 0.2 else str(value))
        elif kind < 0.9:
            value = round(rng.uniform(0, 100), 2)
            gold, shown = str(value), str(value)
        else:
            a, b = rng.randint(1, 9), rng.randint(2, 12)
            gold, shown = f"{a}/{b}", f"{a}/{b}"
        if rng.random() > 0.6:  # wrong answer
            shown = str(rng.randint(-500, 5000))
        wrap = f"<answer>{shown}</answer>" if i % 2 == 0 else f"\\boxed{{{shown}}}"
        golds.append(gold)
        completions.append(f"<think>Let me compute step {i}: carefully.</think> The result: {wrap}")
    return golds, completions


def make_latex_items(n: int, seed: int = 0, sympy_share: float = 0.02) -> tuple[list[str], list[str]]:
    """60% ``make_items`` (numeric), 40% LaTeX completions (see the module docstring), shuffled in;
    ``sympy_share`` of the LaTeX ones need sympy (3/5 symbolic in \\boxed{}, 2/5 with no marker)."""
    rng = random.Random(seed + 1)
    golds, completions = make_items(n, seed)
    for i in range(n):
        if rng.random() >= 0.4:
            continue
        kind, wrong = rng.random(), rng.random() > 0.6
        if kind >= sympy_share:  # digit fractions and $-wrapped numbers: the fast path
            a, b = rng.randint(1, 99), rng.randint(2, 99)
            gold = rng.choice([f"{a}/{b}", f"\\frac{{{a}}}{{{b}}}"])
            a = a + 1 if wrong else a
            shown = rng.choice([f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"\\tfrac{{{a}}}{{{b}}}",
                                f"\\frac{a}{b}" if a < 10 and b < 10 else f"\\frac{{{a}}}{{{b}}}"])
            if rng.random() < 0.3:
                gold, shown = "-" + gold, "-" + shown
            wrap = rng.choice([f"\\boxed{{{shown}}}", f"<answer>${shown}$</answer>", f"<answer>{shown}</answer>",
                               f"The answer is ${shown}$."])
        elif kind < 0.6 * sympy_share:  # symbolic, in \boxed{}: math-verify on the candidate
            k = rng.randint(2, 5000)
            gold, shown = rng.choice([(f"\\sqrt{{{k}}}", f"\\sqrt{{{k + wrong}}}"), (f"{k}\\pi", f"{k + wrong}\\pi"),
                                      (f"x^2+{k}", f"{k + wrong}+x^2"), (f"\\frac{{\\sqrt{{{k}}}}}{{2}}",
                                                                          f"\\frac{{\\sqrt{{{k + wrong}}}}}{{2}}")])
            wrap = f"\\boxed{{{shown}}}"
        else:  # no marker: math-verify on the whole completion
            a, b = rng.randint(1, 99), rng.randint(2, 99)
            if rng.random() < 0.5:
                gold, shown = f"{a}/{b}", f"$\\frac{{{a + wrong}}}{{{b}}}$"
                wrap = f"Therefore the probability is {shown}."
            else:
                gold, shown = f"\\sqrt{{{a + 1}}}", f"\\sqrt{{{a + 1 + wrong}}}"
                wrap = f"Squaring both sides and taking the positive root, we get $x = {shown}$."
        golds[i] = gold
        completions[i] = f"<think>Let me compute step {i}: carefully.</think> {wrap}"
    return golds, completions


MIXES = {"numeric": make_items, "latex": make_latex_items}


def bench_math_verify_sequential(golds: list[str], completions: list[str]) -> tuple[float, list[bool]]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # math-verify has no <answer>-tag anchor: give it the answer as \boxed{} so both sides judge the same answer
    completions = [c.replace("<answer>", "\\boxed{").replace("</answer>", "}") for c in completions]
    t0 = time.perf_counter()
    out = [bool(verify(parse("\\boxed{" + g + "}"), parse(c))) for g, c in zip(golds, completions)]
    return time.perf_counter() - t0, out


def bench_math(n: int, n_baseline: int, workers: int, mix: str = "numeric", latex_sympy: float = 0.02) -> None:
    kw = {"sympy_share": latex_sympy} if mix == "latex" else {}
    golds, completions = MIXES[mix](n, **kw)
    # other items (no cache hits later); for latex half of them need sympy, so that every worker has run each
    # kind of math-verify call once (the first one in a process costs up to a second: imports, parser set-up)
    warm_golds, warm_completions = MIXES[mix](256, seed=1000, **({"sympy_share": 0.5} if mix == "latex" else {}))
    latex = sum(bool(re.search(r"\\(?!boxed)", c)) for c in completions) / n  # LaTeX besides \boxed
    examples = [Example(question="q", answer=g, verifier="math") for g in golds]
    with RewardScorer([RewardComponentConfig("math")], timeout_s=10, num_workers=workers) as scorer:
        t0 = time.perf_counter()
        # warm-up on other items of the same mix, so every worker has imported math-verify and sympy
        scorer.score([Example(question="q", answer=g, verifier="math") for g in warm_golds], warm_completions)
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = scorer.score(examples, completions)
        dt = time.perf_counter() - t0
        n_workers = scorer.pool.num_workers
    rate = n / dt
    base_dt, base_out = bench_math_verify_sequential(golds[:n_baseline], completions[:n_baseline])
    base_rate = n_baseline / base_dt
    agree = sum((r.score == 1.0) == b for r, b in zip(results, base_out)) / n_baseline
    print(f"mix: {mix} ({latex:.0%} of the completions are LaTeX)   cores: {os.cpu_count()}   rlvr workers: {n_workers}")
    print(f"rlvr RewardScorer[math]      : {n:>6} checks in {dt:6.2f}s = {rate:9.0f} checks/s "
          f"(worker start-up {startup:.2f}s, accuracy {sum(r.score for r in results) / n:.3f})")
    print(f"math-verify parse+verify seq.: {n_baseline:>6} checks in {base_dt:6.2f}s = {base_rate:9.0f} checks/s")
    print(f"ratio rlvr / math-verify     : {rate / base_rate:.1f}x   (same verdict on {agree:.1%} of the baseline items)")


BENCHMARKS = {"math": bench_math}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(BENCHMARKS), default=None, help="run one benchmark")
    ap.add_argument("--n", type=int, default=20000, help="items scored by rlvr")
    ap.add_argument("--n-baseline", type=int, default=2000, help="items for the (slow) sequential baseline")
    ap.add_argument("--workers", type=int, default=0, help="rlvr worker processes (0 = cores)")
    ap.add_argument("--mix", choices=["both", *MIXES], default="both", help="math workload (default: both)")
    ap.add_argument("--latex-sympy", type=float, default=0.02, help="share of the latex mix's LaTeX answers that need sympy")
    args = ap.parse_args()
    for name, fn in BENCHMARKS.items():
        if args.only in (None, name):
            if name == "math":
                for mix in (MIXES if args.mix == "both" else [args.mix]):
                    print(f"== {name} ({mix} mix)")
                    fn(args.n, min(args.n_baseline, args.n), args.workers, mix, args.latex_sympy)
            else:
                print(f"== {name}")
                fn(args.n, min(args.n_baseline, args.n), args.workers)


if __name__ == "__main__":
    main()
