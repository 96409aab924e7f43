"""Which prompts to train on? Uniform sampling vs the weakness sampler vs an offline-filtered set, on the demo.

    PYTHONPATH=. python benchmarks/data_recipes.py                     # seeds 0 1 2, a pool of 1000 problems
    PYTHONPATH=. python benchmarks/data_recipes.py --seeds 0 --steps 40 --out /tmp/recipes   # a quick look

All three arms train the demo's base (built once, ~/.cache/rlvr/demo) with examples/demo.yaml for the same
steps on the same pool: the first ``--pool`` problems of the demo's train.jsonl (a pool small enough that
prompts are revisited, so a curriculum has something to act on).
  uniform    data.sampling: uniform over the pool
  weakness   data.sampling: weakness over the pool (failure-rate EMA, floor 0.1)
  filtered   uniform over the pool's rows kept by `rlvr data filter --n 8 --keep "0.1<=pass<=0.9"` with the base
Each run is a separate `rlvr train` process with OMP_NUM_THREADS=1 (two at a time with --jobs 2). The score is
the held-out greedy pass@1 on the demo's 256 test problems (heldout.jsonl) at the last step. Prints one row per
run, then the median and range per arm, and writes every row to <out>/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("uniform", "weakness", "filtered")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def prepare(out: Path, pool: int, n: int) -> dict[str, Path]:
    from rlvr.demo.pretrain import build_base

    info = build_base()
    out.mkdir(parents=True, exist_ok=True)
    pool_path = out / f"pool{pool}.jsonl"
    with open(info["train_path"], encoding="utf-8") as src:
        pool_path.write_text("".join(line for _, line in zip(range(pool), src)), encoding="utf-8")
    filtered = out / f"pool{pool}.filtered.jsonl"
    if not filtered.is_file():
        cmd = [sys.executable, "-m", "rlvr.cli", "data", "filter", "--config", str(ROOT / "examples/demo.yaml"),
               "--model", str(info["model_path"]), "--data", str(pool_path), "--n", str(n),
               "--keep", "0.1<=pass<=0.9", "-o", str(filtered), "--no-progress"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=_env(), check=True, cwd=ROOT)
        print(f"filter: {time.perf_counter() - t0:.0f} s", flush=True)
    return {"base": Path(info["model_path"]), "pool": pool_path, "filtered": filtered,
            "heldout": Path(info["heldout_path"])}


def start(arm: str, seed: int, paths: dict[str, Path], out: Path, steps: int):
    run = out / f"{arm}_seed{seed}"
    source = paths["filtered"] if arm == "filtered" else paths["pool"]
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples/demo.yaml"), f"output_dir={run}",
           f"model.path={paths['base']}", f"data.source={source}", f"data.eval_source={paths['heldout']}",
           "data.eval_size=256", f"trainer.seed={seed}", f"trainer.steps={steps}", f"eval.every={steps}",
           f"data.sampling={'weakness' if arm == 'weakness' else 'uniform'}", "logging.progress=false",
           "checkpoint.save_final=false", "checkpoint.resume=never"]
    run.mkdir(parents=True, exist_ok=True)
    log = (run / "train.log").open("w")
    return subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), run


def final_eval(run: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = [r for r in rows if any(k.startswith("eval/") for k in r)][-1]
    return {"pass1": last.get("eval/greedy_pass@1", last.get("eval/pass@1")), "step": last["step"],
            "train_accuracy_last10": statistics.mean(r["accuracy"] for r in rows[-10:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=140)
    ap.add_argument("--filter-n", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="runs/data_recipes")
    args = ap.parse_args()
    out = Path(args.out)
    paths = prepare(out, args.pool, args.filter_n)
    kept = sum(1 for _ in open(paths["filtered"], encoding="utf-8"))
    print(f"pool {args.pool} problems; filtered set {kept} rows", flush=True)
    queue = [(arm, seed) for seed in args.seeds for arm in args.arms]
    running, rows = [], []
    while queue or running:
        while queue and len(running) < args.jobs:
            arm, seed = queue.pop(0)
            proc, run = start(arm, seed, paths, out, args.steps)
            running.append((arm, seed, proc, run, time.perf_counter()))
        time.sleep(2)
        for item in list(running):
            arm, seed, proc, run, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode:
                print(f"{arm} seed {seed} FAILED (rc {proc.returncode}); see {run / 'train.log'}", flush=True)
                continue
            row = {"arm": arm, "seed": seed, "seconds": round(time.perf_counter() - t0, 1), **final_eval(run)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps({"pool": args.pool, "filtered_rows": kept, "steps": args.steps,
                                                  "rows": rows}, indent=2))
    print(f"\n{'arm':10s} {'runs':>4s} {'median pass@1':>14s} {'range':>16s}")
    for arm in args.arms:
        scores = [r["pass1"] for r in rows if r["arm"] == arm]
        if scores:
            print(f"{arm:10s} {len(scores):4d} {100 * statistics.median(scores):13.1f}% "
                  f"{100 * min(scores):7.1f}–{100 * max(scores):.1f}%")


if __name__ == "__main__":
    main()
