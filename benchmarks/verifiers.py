"""Verifier throughput: math checks/s through RewardScorer vs math-verify called sequentially in one process.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/verifiers.py                 # all benchmarks
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/verifiers.py --only math --n 20000 --workers 0

Workload: typical numeric answers (integers, decimals, a few fractions and thousands separators), the model's
answer in <answer> tags for half and \\boxed{} for the other half, about 60% correct.
Baseline: what a TRL-style accuracy reward does per item, math-verify ``parse`` of the gold, ``parse`` of the
completion (its <answer> tags turned into \\boxed{}, which math-verify anchors on), ``verify``, sequentially
in this process. rlvr: ``RewardScorer([math]).score`` on the same items
(warm workers; the worker start-up is printed separately). Other benchmarks (sandbox runs/s) hook in through
``--only``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
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


def bench_math_verify_sequential(golds: list[str], completions: list[str]) -> tuple[float, list[bool]]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # math-verify has no <answer>-tag anchor: give it the answer as \boxed{} so both sides judge the same answer
    completions = [c.replace("<answer>", "\\boxed{").replace("</answer>", "}") for c in completions]
    t0 = time.perf_counter()
    out = [bool(verify(parse("\\boxed{" + g + "}"), parse(c))) for g, c in zip(golds, completions)]
    return time.perf_counter() - t0, out


def bench_math(n: int, n_baseline: int, workers: int) -> None:
    golds, completions = make_items(n)
    examples = [Example(question="q", answer=g, verifier="math") for g in golds]
    with RewardScorer([RewardComponentConfig("math")], timeout_s=10, num_workers=workers) as scorer:
        t0 = time.perf_counter()
        scorer.score(examples[:8], completions[:8])
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = scorer.score(examples, completions)
        dt = time.perf_counter() - t0
        n_workers = scorer.pool.num_workers
    rate = n / dt
    base_dt, base_out = bench_math_verify_sequential(golds[:n_baseline], completions[:n_baseline])
    base_rate = n_baseline / base_dt
    agree = sum((r.score == 1.0) == b for r, b in zip(results, base_out)) / n_baseline
    print(f"cores: {os.cpu_count()}   rlvr workers: {n_workers}")
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
    args = ap.parse_args()
    for name, fn in BENCHMARKS.items():
        if args.only in (None, name):
            print(f"== {name}")
            fn(args.n, min(args.n_baseline, args.n), args.workers)


if __name__ == "__main__":
    main()
