"""Is the demo's headline robust? `rlvr demo` from an empty cache over seeds x torch thread counts.

    PYTHONPATH=. python benchmarks/demo_seeds.py                        # seeds 0 1 2 x threads 1 2 (6 runs)
    PYTHONPATH=. python benchmarks/demo_seeds.py --seeds 0 --threads 2  # one run
    PYTHONPATH=. python benchmarks/demo_seeds.py --jobs 2               # 1-thread runs two at a time (2 cores)

Each run is a separate `python -m rlvr.cli demo --seed S` process with OMP_NUM_THREADS=T and its own fresh
cache (RLVR_CACHE in a temporary folder), so the base model is built from scratch: the seed changes the base's
initial weights and problem order and GRPO's sampling; the thread count changes the floating-point rounding,
as another machine would. Runs with more than one thread always run alone; ``--jobs`` only packs 1-thread
runs side by side (then their wall times include the neighbour's memory traffic: an upper bound).

Prints one row per run (warm-up steps, base and final held-out greedy pass@1, gain, pass@8, wall seconds),
the median and range of each column, and the targets of issue 9: every run gains >= 25 points of held-out
greedy pass@1, the median final greedy pass@1 is >= 65%, and every run takes <= 600 s. ``--json`` writes all
rows to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(seed: int, threads: int, out_root: Path, steps: int | None) -> tuple[subprocess.Popen, Path, Path]:
    cache = Path(tempfile.mkdtemp(prefix=f"rlvr-demo-s{seed}-t{threads}-"))
    out = out_root / f"seed{seed}_threads{threads}"
    env = {**os.environ, "RLVR_CACHE": str(cache), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rlvr.cli", "demo", "--seed", str(seed), "--output-dir", str(out)]
    if steps:
        cmd += ["--steps", str(steps)]
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "demo.log").open("w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), out, cache


def run_all(seeds: list[int], threads: list[int], jobs: int, out_root: Path, steps: int | None) -> list[dict]:
    queue = [(s, t) for t in threads for s in seeds]
    rows: list[dict] = []
    running: list[tuple[int, int, subprocess.Popen, Path, Path, float]] = []
    while queue or running:
        # start what fits: multi-thread runs alone, 1-thread runs up to `jobs` at a time
        while queue and (not running or (queue[0][1] == 1 and all(r[1] == 1 for r in running)
                                         and len(running) < jobs)):
            seed, t = queue.pop(0)
            proc, out, cache = start(seed, t, out_root, steps)
            running.append((seed, t, proc, out, cache, time.perf_counter()))
            print(f"started seed {seed} threads {t} -> {out}", flush=True)
        time.sleep(2)
        for item in list(running):
            seed, t, proc, out, cache, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            wall = time.perf_counter() - t0
            subprocess.run(["rm", "-rf", str(cache)], check=False)
            if proc.returncode != 0:
                print(f"seed {seed} threads {t} FAILED (exit {proc.returncode}); see {out / 'demo.log'}", flush=True)
                rows.append({"seed": seed, "threads": t, "failed": True, "wall_s": wall})
                continue
            summary = json.loads((out / "summary.json").read_text())
            row = {"seed": seed, "threads": t, "learn_steps": summary["base_learn_steps"],
                   "warmup_steps": summary["base_warmup_steps"], "base": summary["base_pass1"],
                   "final": summary["final_pass1"], "gain": summary["final_pass1"] - summary["base_pass1"],
                   "base_pass8": summary["base_pass8"], "final_pass8": summary["final_pass8"],
                   "grpo_s": summary["train_seconds"], "wall_s": wall}
            rows.append(row)
            print(f"done seed {seed} threads {t}: {100 * row['base']:.1f}% -> {100 * row['final']:.1f}% "
                  f"({100 * row['gain']:+.1f} pts) in {wall:.0f} s", flush=True)
    return sorted(rows, key=lambda r: (r["threads"], r["seed"]))


def report(rows: list[dict], jobs: int) -> bool:
    ok_rows = [r for r in rows if not r.get("failed")]
    print()
    print("| seed | threads | warm-up steps (learn + flawed) | base pass@1 | final pass@1 | gain | base pass@8 | "
          "final pass@8 | GRPO s | wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("failed"):
            print(f"| {r['seed']} | {r['threads']} | FAILED | | | | | | | {r['wall_s']:.0f} |")
            continue
        print(f"| {r['seed']} | {r['threads']} | {r['learn_steps']} + {r['warmup_steps'] - r['learn_steps']} | "
              f"{100 * r['base']:.1f}% | {100 * r['final']:.1f}% | {100 * r['gain']:+.1f} | "
              f"{100 * r['base_pass8']:.1f}% | {100 * r['final_pass8']:.1f}% | {r['grpo_s']:.0f} | {r['wall_s']:.0f} |")
    if not ok_rows:
        return False
    print()
    for key, label, scale in (("base", "base greedy pass@1", 100), ("final", "final greedy pass@1", 100),
                              ("gain", "gain (pts)", 100), ("final_pass8", "final pass@8", 100),
                              ("wall_s", "wall s", 1)):
        values = [r[key] * scale for r in ok_rows]
        print(f"{label:22s} median {statistics.median(values):6.1f}   range {min(values):6.1f} .. {max(values):6.1f}")
    every_gain = all(r["gain"] >= 0.25 for r in ok_rows)
    median_final = statistics.median(r["final"] for r in ok_rows) >= 0.65
    every_wall = all(r["wall_s"] <= 600 for r in ok_rows)
    complete = len(ok_rows) == len(rows)
    print()
    print(f"every run gains >= 25 pts: {'met' if every_gain else 'MISSED'}; median final >= 65%: "
          f"{'met' if median_final else 'MISSED'}; every run <= 600 s: {'met' if every_wall else 'MISSED'}"
          + ("" if jobs == 1 else f" (1-thread runs {jobs} at a time)") + ("" if complete else "; some runs FAILED"))
    return every_gain and median_final and every_wall and complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="1-thread runs side by side (default 1: all alone)")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: examples/demo.yaml)")
    parser.add_argument("--output-dir", default="runs/demo_seeds")
    parser.add_argument("--json", default="", help="write the rows to this file")
    args = parser.parse_args()
    rows = run_all(args.seeds, args.threads, max(1, args.jobs), Path(args.output_dir), args.steps)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    sys.exit(0 if report(rows, args.jobs) else 1)


if __name__ == "__main__":
    main()
