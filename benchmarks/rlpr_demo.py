"""RLPR (reward = the policy's probability of the reference answer) vs exact-match GRPO on the demo task, over seeds.

    python -c "from rlvr.demo.pretrain import build_base; build_base()"   # the demo's base + data, once
    PYTHONPATH=. python benchmarks/rlpr_demo.py                           # seeds 0 1 2 x exact, rlpr
    PYTHONPATH=. python benchmarks/rlpr_demo.py --arms exact rlpr rlpr_filter --seeds 0 1 2 --jobs 2

Every run is `rlvr train examples/demo.yaml` (P = 16 x G = 8, 140 steps, the demo's lr and schedule, the same
base model), seeded with trainer.seed = S; only the reward (and for rlpr_filter the prompt filter) differs:

- exact:        the demo as shipped: exact_match on the <answer> tag (1 / 0), GRPO;
- rlpr:         reward = rlpr (debiased mean probability of the reference answer in the answer span, format
                weight 0.1), GRPO; exact_match stays as a weight-0 first component, so `accuracy` is comparable;
- rlpr_filter:  the same with algorithm=rlpr (GRPO + RLPR's std-EMA prompt filter, which samples more prompts
                to refill the batch, so it uses more rollouts per step).

Each final checkpoint is then evaluated greedily on the demo's held-out set (heldout.jsonl, the problems
`rlvr demo` reports on) with exact match: pass@1. Prints one row per run and the median and range per arm, and
writes them to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr")) / "demo"
RLPR = ["reward.components=[{name: exact_match, weight: 0.0, params: {extract: answer_tag}}, "
        "{name: rlpr, weight: 1.0, params: {format_weight: 0.1}}]"]
ARMS = {"exact": [], "rlpr": RLPR, "rlpr_filter": RLPR + ["algorithm=rlpr"]}


def train(arm: str, seed: int, args) -> dict:
    out = Path(args.out) / f"{arm}_seed{seed}"
    final = out / "checkpoints" / f"step_{args.steps:06d}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    if not final.is_dir():
        if out.exists():
            import shutil

            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples" / "demo.yaml"),
               f"output_dir={out}", f"trainer.seed={seed}", f"trainer.steps={args.steps}",
               f"trainer.warmup_steps={min(10, args.steps // 10)}", f"model.path={CACHE / 'base'}",
               f"data.source={CACHE / 'train.jsonl'}", f"data.eval_source={CACHE / 'dev.jsonl'}",
               "logging.progress=false", *ARMS[arm]]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - t0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"arm": arm, "seed": seed, "final": str(final), "train_s": seconds,
            "step_time_s": statistics.median(x["step_time_s"] for x in lines),
            "dev_pass@1_last": next((x["eval/pass@1"] for x in reversed(lines) if "eval/pass@1" in x), None)}


def heldout_pass1(path: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.demo.evaluate import evaluate

    torch.set_num_threads(1)
    rows = [json.loads(x) for x in (CACHE / "heldout.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return float(evaluate(model, tok, rows, n=1, temperature=0.0, max_new_tokens=72)["pass@1"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arms", nargs="+", default=["exact", "rlpr"], choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each on one thread)")
    parser.add_argument("--out", default="runs/rlpr_demo")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: train(*job, args), jobs))
    base = heldout_pass1(str(CACHE / "base"))
    for row in rows:
        row["heldout_pass@1"] = heldout_pass1(row["final"])
        print(f"{row['arm']:12s} seed {row['seed']}: held-out greedy pass@1 {100 * row['heldout_pass@1']:.1f}% "
              f"(dev {100 * (row['dev_pass@1_last'] or 0):.1f}%), {row['step_time_s']:.2f} s/step, "
              f"{row['train_s'] / 60:.1f} min")
    print(f"base: {100 * base:.1f}%")
    summary = {"base_heldout_pass@1": base, "runs": rows, "arms": {}}
    for arm in args.arms:
        values = [r["heldout_pass@1"] for r in rows if r["arm"] == arm]
        steps = [r["step_time_s"] for r in rows if r["arm"] == arm]
        summary["arms"][arm] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                                "step_time_s": statistics.median(steps)}
        print(f"{arm:12s} median {100 * statistics.median(values):.1f}% (range {100 * min(values):.1f}-"
              f"{100 * max(values):.1f}%), {statistics.median(steps):.2f} s/step")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
