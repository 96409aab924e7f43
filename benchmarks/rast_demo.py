"""RAST and best-of-n / majority on the demo task: the measurements of docs/decoding.md.

    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py build   # a 0.3M "small" and a 1.5M "large" base
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py train   # GRPO on the small one with `rlvr train`
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py eval    # `rlvr generate --score` runs, then the table
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py all     # the three in a row
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py cost    # decode time: large alone, small alone, RAST
    python benchmarks/rast_demo.py plot                      # docs/decoding.png from results_<run>.json
    ... --run rl_small_400 --steps 400                       # another GRPO run of the small model (its own folder)

Both bases come from rlvr.demo.pretrain.build_base with the demo's recipe (same tokenizer, same data seed, so the
same train / held-out / dev files; same warm-up: correct solutions until dev greedy pass@1 >= 50%, then 200 steps of
flawed demonstrations), only the model shape differs. The small base is then trained with examples/demo.yaml
through `rlvr train` (the demo's GRPO run), and every number is measured by `rlvr generate` on the 256 held-out
problems: greedy pass@1 of the large base, of the large base decoded with RAST (the small model's RL logit delta
added), of the RL-trained small model (and of the small base), and the best-of-n / majority curves of the large
base against n. Everything lands in --root (default runs/rast_demo); `eval` prints the table of docs/decoding.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

SMALL = dict(hidden=96, layers=3, heads=4, intermediate=192)  # 0.29M parameters
LARGE = dict(hidden=192, layers=4, heads=4, intermediate=384)  # 1.49M parameters
LAST_STEP_CHECK = str(Path(__file__).resolve().parent / "rast_demo_rewards.py") + ":last_step_check"


def _run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` (a `rlvr` command line), its output into ``log``; returns the wall time."""
    start = time.perf_counter()
    print("$", " ".join(cmd), flush=True)
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def build(root: Path) -> None:
    """Both bases with the demo's warm-up recipe (cached: a second call loads them)."""
    import torch

    from rlvr.demo.pretrain import PretrainConfig, build_base
    from rlvr.demo.tiny import count_parameters
    from transformers import AutoModelForCausalLM

    for name, shape in (("small", SMALL), ("large", LARGE)):
        start = time.perf_counter()
        info = build_base(root / name, cfg=replace(PretrainConfig(), **shape))
        params = count_parameters(AutoModelForCausalLM.from_pretrained(info["model_path"]))
        print(f"{name}: {params / 1e6:.2f}M parameters, {info['learn_steps']} + 200 warm-up steps, dev pass@1 "
              f"{info['dev_pass1']:.3f}, {'cached' if info['cached'] else f'{time.perf_counter() - start:.0f} s'} "
              f"(torch threads {torch.get_num_threads()})", flush=True)


def train(root: Path, steps: int, run: str, seed: int = 0) -> None:
    """GRPO on the small base: the demo's run (examples/demo.yaml) through `rlvr train`, into <root>/<run>."""
    small = root / "small"
    cmd = ["rlvr", "train", "examples/demo.yaml", f"model.path={small / 'base'}",
           f"data.source={small / 'train.jsonl'}", f"data.eval_source={small / 'dev.jsonl'}",
           f"output_dir={root / run}", "checkpoint.resume=never", f"trainer.steps={steps}", f"trainer.seed={seed}",
           "logging.progress=false"]
    seconds = _run(cmd, root / f"train_{run}.log")
    print(f"{run}: trained in {seconds:.0f} s -> {rl_small_path(root, run)}", flush=True)


def rl_small_path(root: Path, run: str) -> Path:
    from rlvr.trainer.state import list_checkpoints

    found = list_checkpoints(root / run)
    if not found:
        sys.exit(f"no checkpoint under {root / run}: run `train` first")
    return found[-1]


def _generate(root: Path, name: str, model: Path, extra: list[str]) -> dict:
    """One `rlvr generate --score` run on the held-out problems; returns its .scores.json."""
    heldout = root / "large" / "heldout.jsonl"  # the same file in small/ (same data seed)
    out = root / "eval" / f"{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["rlvr", "generate", "--config", "examples/demo.yaml", "--model", str(model), "--data", str(heldout),
           "-o", str(out), "--score", "--no-progress", *extra]
    seconds = _run(cmd, out.with_suffix(".log"))
    scores = json.loads(out.with_name(out.stem + ".scores.json").read_text())
    scores["seconds"] = seconds
    return scores


def step_errors(path: Path) -> tuple[float, float]:
    """Of the worked steps "a+b=c" in the first completion of every row of ``path``: the fraction off by exactly 10
    (a dropped carry or borrow, the flaw the demo bases were given) and the fraction wrong otherwise."""
    import re

    steps = slips = other = 0
    for line in path.read_text().splitlines():
        think = json.loads(line)["completions"][0].split("</think>")[0]
        for a, op, b, c in re.findall(r"(\d+)([+-])(\d+)=(\d+)", think):
            value = int(a) + int(b) if op == "+" else int(a) - int(b)
            steps += 1
            slips += abs(int(c) - value) == 10
            other += int(c) != value and abs(int(c) - value) != 10
    return slips / max(1, steps), other / max(1, steps)


def evaluate(root: Path, n: int, alphas: list[float], run: str) -> None:
    """Greedy pass@1 of the bases, of the RL-trained small model (<root>/<run>) and of RAST at each alpha, plus the
    control "large" := base_small (RAST must then reproduce the RL small model exactly); best-of-n / majority curves
    of the large base and of large + RAST (alpha 1) at T = 1. Prints the numbers, writes <root>/results_<run>.json.
    Every `rlvr generate` run resumes: a finished one is read back, not sampled again."""
    large, small, rl = root / "large" / "base", root / "small" / "base", rl_small_path(root, run)
    greedy = ["-n", "1", "--temperature", "0"]
    rast = lambda alpha: ["--rast", f"base_small={small}", f"rl_small={rl}", f"alpha={alpha}"]  # noqa: E731
    results: dict = {"run": run, "rl_small": str(rl), "greedy": {}, "curves": {}}
    runs = [("large_base", large, []), ("small_base", small, []), (run, rl, []),
            (f"small_rast_{run}_a1", small, rast(1.0)),  # control: large := base_small
            *[(f"large_rast_{run}_a{a:g}", large, rast(a)) for a in alphas]]
    for name, model, extra in runs:
        scores = _generate(root, f"greedy_{name}", model, greedy + extra)
        slips, other = step_errors(root / "eval" / f"greedy_{name}.jsonl")
        results["greedy"][name] = {"pass@1": scores["curves"]["first"]["1"], "dropped_carry_steps": slips,
                                   "other_wrong_steps": other, "seconds": scores["seconds"]}
        print(f"greedy pass@1  {name:28s} {100 * scores['curves']['first']['1']:5.1f}%   steps with a dropped carry "
              f"{100 * slips:4.1f}%, otherwise wrong {100 * other:4.1f}%  ({scores['seconds']:.0f} s)", flush=True)
    rules = ["--select", "majority", "--select", "best_of_n:exact_match", "--select", f"best_of_n:{LAST_STEP_CHECK}",
             "--select", f"weighted_majority:{LAST_STEP_CHECK}"]
    for name, extra in (("large_base", []), (f"large_rast_{run}_a1", rast(1.0))):
        scores = _generate(root, f"sampled_{name}", large, ["-n", str(n), "--temperature", "1.0", *rules, *extra])
        results["curves"][name] = {**scores["curves"], "seconds": scores["seconds"]}
        print(f"\n{name}, T = 1, accuracy against n ({scores['seconds']:.0f} s):", flush=True)
        for rule, curve in scores["curves"].items():
            print(f"  {rule.replace(LAST_STEP_CHECK, 'last_step_check'):40s} "
                  + "  ".join(f"n={k}: {100 * v:5.1f}%" for k, v in curve.items()), flush=True)
    out = root / f"results_{run}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


def cost(root: Path, run: str, repeats: int = 3) -> None:
    """Decode time of the 256 held-out prompts (greedy, 72 new tokens at most, one engine call each): the large
    model alone, the small one alone, and RAST (all three); the median of ``repeats`` calls, in this process."""
    import statistics

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.demo.task import read_jsonl, render_prompt
    from rlvr.rollout.hf import HFRolloutEngine
    from rlvr.rollout.rast import RASTRolloutEngine, shared_vocab_size

    load = lambda p: AutoModelForCausalLM.from_pretrained(p).eval()  # noqa: E731
    large, small, rl = load(root / "large" / "base"), load(root / "small" / "base"), load(rl_small_path(root, run))
    tok = AutoTokenizer.from_pretrained(root / "large" / "base")
    prompts = [render_prompt(r["question"]) for r in read_jsonl(root / "large" / "heldout.jsonl")]
    vocab = shared_vocab_size({"large": tok, "base_small": tok, "rl_small": tok},
                              {"large": large, "base_small": small, "rl_small": rl})
    engines = {"large": HFRolloutEngine(large, tok, add_special_tokens=False),
               "small": HFRolloutEngine(small, tok, add_special_tokens=False),
               "rast": RASTRolloutEngine(large, small, rl, tok, vocab_size=vocab, add_special_tokens=False)}
    times = {}
    for name, engine in engines.items():
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            groups = engine.generate(prompts, 1, max_new_tokens=72, temperature=0.0)
            runs.append(time.perf_counter() - start)
        tokens = sum(len(g[0].token_ids) for g in groups)
        times[name] = statistics.median(runs)
        print(f"{name:6s} {times[name]:6.2f} s for {tokens} tokens ({tokens / times[name]:6.0f} tokens/s)", flush=True)
    print(f"rast / large: {times['rast'] / times['large']:.2f}x   "
          f"small / large: {times['small'] / times['large']:.2f}x")


def plot(root: Path, run: str, out_png: Path) -> None:
    """Accuracy against n of every rule: the large base (left) and large + RAST at alpha 1 (right), from
    <root>/results_<run>.json, with greedy pass@1 of the large base, RAST and the RL small model as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((root / f"results_{run}.json").read_text())
    greedy = results["greedy"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    panels = (("large_base", "large base (1.5M), T = 1"), (f"large_rast_{run}_a1", "large + RAST (alpha 1), T = 1"))
    for ax, (name, title) in zip(axes, panels):
        curves = {k: v for k, v in results["curves"][name].items() if k != "seconds"}
        for style, (rule, curve) in zip(("o-", "s--", "^-", "d:", "v-."), curves.items()):
            ks = sorted(int(k) for k in curve)
            ax.plot(ks, [curve[str(k)] for k in ks], style, label=rule.replace(LAST_STEP_CHECK, "last_step_check"))
        for color, (label, key) in zip(("gray", "C5", "C6"), (("greedy large base", "large_base"),
                                                             ("greedy large + RAST", f"large_rast_{run}_a1"),
                                                             ("greedy RL small", run))):
            ax.axhline(greedy[key]["pass@1"], color=color, lw=1, ls=":", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("n (samples to choose from)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy (256 problems)")
    axes[0].set_ylim(0, 1)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print(f"wrote {out_png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["build", "train", "eval", "cost", "plot", "all"])
    parser.add_argument("--root", default="runs/rast_demo")
    parser.add_argument("--steps", type=int, default=140, help="GRPO steps of the small model")
    parser.add_argument("--run", default="rl_small", help="folder (under --root) of the small model's GRPO run")
    parser.add_argument("--seed", type=int, default=0, help="trainer.seed of that GRPO run (its sampling)")
    parser.add_argument("--n", type=int, default=16, help="samples per problem of the best-of-n / majority curves")
    parser.add_argument("--alphas", default="0.5,1,2", help="RAST alphas of the greedy runs")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.stage in ("build", "all"):
        build(root)
    if args.stage in ("train", "all"):
        train(root, args.steps, args.run, args.seed)
    if args.stage in ("eval", "all"):
        evaluate(root, args.n, [float(a) for a in args.alphas.split(",")], args.run)
    if args.stage == "cost":
        cost(root, args.run)
    if args.stage == "plot":
        plot(root, args.run, Path("docs/decoding.png"))


if __name__ == "__main__":
    main()
