"""RAST and best-of-n / majority on the demo task: the measurements of docs/decoding.md.

    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py build   # a 0.3M "small" and a 1.5M "large" base
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py train   # GRPO on the small one with `rlvr train`
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py eval    # `rlvr generate --score` runs, then the table
    OMP_NUM_THREADS=1 python benchmarks/rast_demo.py all     # the three in a row

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


def train(root: Path, steps: int, run: str) -> None:
    """GRPO on the small base: the demo's run (examples/demo.yaml) through `rlvr train`, into <root>/<run>."""
    small = root / "small"
    cmd = ["rlvr", "train", "examples/demo.yaml", f"model.path={small / 'base'}",
           f"data.source={small / 'train.jsonl'}", f"data.eval_source={small / 'dev.jsonl'}",
           f"output_dir={root / run}", "checkpoint.resume=never", f"trainer.steps={steps}", "logging.progress=false"]
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
        results["greedy"][name] = {"pass@1": scores["curves"]["first"]["1"], "seconds": scores["seconds"]}
        print(f"greedy pass@1  {name:28s} {100 * scores['curves']['first']['1']:5.1f}%  ({scores['seconds']:.0f} s)",
              flush=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["build", "train", "eval", "all"])
    parser.add_argument("--root", default="runs/rast_demo")
    parser.add_argument("--steps", type=int, default=140, help="GRPO steps of the small model")
    parser.add_argument("--run", default="rl_small", help="folder (under --root) of the small model's GRPO run")
    parser.add_argument("--n", type=int, default=16, help="samples per problem of the best-of-n / majority curves")
    parser.add_argument("--alphas", default="0.5,1,2", help="RAST alphas of the greedy runs")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.stage in ("build", "all"):
        build(root)
    if args.stage in ("train", "all"):
        train(root, args.steps, args.run)
    if args.stage in ("eval", "all"):
        evaluate(root, args.n, [float(a) for a in args.alphas.split(",")], args.run)


if __name__ == "__main__":
    main()
