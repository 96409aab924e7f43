"""The vision study: held-out greedy accuracy of the tiny Qwen2.5-VL before and after `rlvr train examples/vision.yaml`.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/vision_study.py --cache /tmp/vision/cache \\
        --out runs/vision_study --seeds 0 1 2 [--steps 60] [--parallel 2]

Builds (or reuses) the warmed-up base in --cache (rlvr.demo.vision), then per seed runs `python -m rlvr.cli train
examples/vision.yaml` with trainer.seed=<seed> (the same base; the seed drives sampling and the data order),
scores the base and the final checkpoint on heldout.jsonl (256 pictures, greedy), and writes results.json and the
curve (eval/pass@1 on dev.jsonl over steps, every seed) to docs/vision_curve.png. Runs at most --parallel
trainings at once; a seed whose folder already holds a final checkpoint is only scored.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def heldout_accuracy(model_path: str, cache: Path) -> float:
    import torch  # noqa: F401

    from rlvr.demo.vision import accuracy
    from rlvr.trainer.policy import load_policy, load_tokenizer
    from rlvr.config import ModelConfig
    from rlvr.vision.processor import VisionProcessor

    cfg = ModelConfig(path=model_path, dtype="float32", device="cpu")
    tok = load_tokenizer(cfg)
    model = load_policy(cfg, torch.device("cpu"), torch.float32)
    rows = [json.loads(line) for line in (cache / "heldout.jsonl").read_text().splitlines()]
    return accuracy(model, tok, VisionProcessor.load(model_path, tok), rows, cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/vision/cache")
    parser.add_argument("--out", default="runs/vision_study")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=0, help="0 = examples/vision.yaml's trainer.steps")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--plot", default="docs/vision_curve.png")
    args = parser.parse_args()
    from rlvr.demo.vision import build_vision_base

    cache, out = Path(args.cache), Path(args.out)
    info = build_vision_base(cache)
    base = heldout_accuracy(info["model_path"], cache)
    print(f"base: warm-up {info['steps']} steps, dev {info['dev_accuracy']:.3f}, held-out {base:.3f}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pending, running = list(args.seeds), {}
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            run = out / f"seed{seed}"
            if list((run / "checkpoints").glob("step_*")):  # trained already (rerun: delete the folder)
                continue
            cmd = [sys.executable, "-m", "rlvr.cli", "train", "examples/vision.yaml", f"output_dir={run}",
                   f"model.path={info['model_path']}", f"data.source={info['train_path']}",
                   f"data.eval_source={info['dev_path']}", f"trainer.seed={seed}", "logging.progress=false"]
            if args.steps:
                cmd.append(f"trainer.steps={args.steps}")
            run.mkdir(parents=True, exist_ok=True)
            log = open(run / "train.log", "w")
            running[seed] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        for seed, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[seed]
                if proc.returncode:
                    print(f"seed {seed}: training failed (rc {proc.returncode}); see {out}/seed{seed}/train.log")
        if running:
            next(iter(running.values()))[0].wait()
    results = {"base_heldout": base, "base_dev": info["dev_accuracy"], "warmup_steps": info["steps"], "runs": {}}
    for seed in args.seeds:
        run = out / f"seed{seed}"
        ckpts = sorted((run / "checkpoints").glob("step_*"))
        if not ckpts:
            continue
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        final = heldout_accuracy(str(ckpts[-1]), cache)
        curve = [(m["step"], m["eval/pass@1"]) for m in metrics if "eval/pass@1" in m]
        results["runs"][seed] = {"heldout": final, "dev_curve": curve,
                                 "seconds": sum(m.get("step_time_s", 0.0) for m in metrics)}
        print(f"seed {seed}: held-out {base:.3f} -> {final:.3f} ({100 * (final - base):+.1f} pts)", flush=True)
    finals = [r["heldout"] for r in results["runs"].values()]
    if finals:
        results["median_heldout"] = statistics.median(finals)
        results["range_heldout"] = [min(finals), max(finals)]
        print(f"median held-out {statistics.median(finals):.3f} (range {min(finals):.3f}-{max(finals):.3f}), "
              f"base {base:.3f}: {100 * (statistics.median(finals) - base):+.1f} pts")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, args.plot)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    for seed, run in results["runs"].items():
        steps, acc = zip(*([(0, results["base_dev"])] + [tuple(p) for p in run["dev_curve"]]))
        ax.plot(steps, [100 * a for a in acc], marker="o", ms=3, label=f"seed {seed}")
    ax.axhline(100 * results["base_dev"], color="grey", ls=":", lw=1, label="base (dev)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("dev greedy accuracy (%)")
    ax.set_title("tiny Qwen2.5-VL, glyph colour (examples/vision.yaml)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
