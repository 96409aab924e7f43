"""Synchronous vs asynchronous RL on the demo job: steps/s, held-out pass@1 and reward against wall-clock time.

    PYTHONPATH=. python benchmarks/async.py                      # sync (2 and 1 threads), fixed k=1, free k=2; seeds 0 1 2
    PYTHONPATH=. python benchmarks/async.py --seeds 0 --steps 40 --modes sync:2 fixed:1
    PYTHONPATH=. python benchmarks/async.py --plot docs/async.png --json runs/bench-async/rows.json

Every run is `rlvr train examples/demo.yaml` on the demo's base and data (built once under ~/.cache/rlvr/demo by
`rlvr demo`, or here when missing) with trainer.seed = the seed, in its own process, one run at a time:

- ``sync:T``: the synchronous loop (async.max_staleness 0) with T torch threads for both phases;
- ``fixed:K`` / ``free:K``: async.mode fixed / free with max_staleness K, the rollout in its own process with one
  thread and the trainer with one thread (``--rollout-threads`` / ``--trainer-threads``); ``fixed:K:tN`` gives the
  trainer N threads instead (on 2 cores, N = 2 oversubscribes: 3 threads on 2 cores).

steps/s = steps / the summed ``step_time_s`` (the loop's time per step, waits for rollouts included; the periodic
held-out evaluation and the start-up are not in it, but are in the wall time printed beside it). The ratio column
is each run's median steps/s over the best synchronous setting's median (its best thread count), the peer measured
in the same invocation. pass@1 is the greedy held-out pass@1 at the last step. With ``--plot`` the mean reward of
every step is drawn against the cumulative step time, one line per run, one colour per mode.
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
CACHE = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr" / "demo")).expanduser()
HELDOUT = ("eval/greedy_pass@1", "eval/pass@1")


def ensure_demo_data() -> None:
    if not (CACHE / "base").is_dir() or not (CACHE / "train.jsonl").is_file():
        print(f"building the demo base and data in {CACHE} (once, ~2 min)", flush=True)
        from rlvr.demo.pretrain import build_base

        build_base()


def run(mode: str, seed: int, steps: int, out_root: Path, rollout_threads: int, trainer_threads: int) -> dict:
    kind, _, value = mode.partition(":")
    value, _, trainer = value.partition(":t")
    trainer_threads = int(trainer) if trainer else trainer_threads
    out = out_root / f"{kind}{value}{'_t' + trainer if trainer else ''}_seed{seed}"
    overrides = [f"data.source={CACHE / 'train.jsonl'}", f"data.eval_source={CACHE / 'dev.jsonl'}",
                 f"model.path={CACHE / 'base'}", f"trainer.seed={seed}", f"trainer.steps={steps}",
                 f"output_dir={out}", "logging.progress=false", "checkpoint.resume=never"]
    threads = int(value) if kind == "sync" else 1
    if kind != "sync":
        overrides += [f"async.max_staleness={value}", f"async.mode={kind}", f"async.rollout_threads={rollout_threads}",
                      f"async.trainer_threads={trainer_threads}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples" / "demo.yaml"), *overrides]
    t0 = time.perf_counter()
    with (out / "train.log").open("w") as log:
        code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{mode} seed {seed} failed (exit {code}); see {out / 'train.log'}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    step_time = sum(r["step_time_s"] for r in rows)
    last = rows[-1]
    heldout = next((last[k] for k in HELDOUT if k in last), float("nan"))
    first = next((r[k] for r in rows for k in HELDOUT if k in r), float("nan"))
    return {"mode": mode, "seed": seed, "steps": len(rows), "steps_per_s": len(rows) / step_time,
            "step_time_s": step_time, "wall_s": wall, "pass@1": heldout, "first_eval_pass@1": first,
            "reward_last10": statistics.mean(r["reward/mean"] for r in rows[-10:]),
            "staleness_mean": statistics.mean(r.get("async/staleness_mean", 0.0) for r in rows),
            "dropped_groups": sum(r.get("async/dropped_groups", 0.0) for r in rows),
            "trainer_idle_s": sum(r.get("async/trainer_idle_s", 0.0) for r in rows),
            "curve": [(r["step_time_s"], r["reward/mean"]) for r in rows], "output_dir": str(out)}


def summarize(rows: list[dict]) -> None:
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    median = {m: statistics.median(r["steps_per_s"] for r in rows if r["mode"] == m) for m in modes}
    sync = [m for m in modes if m.startswith("sync")]
    best = max(sync, key=median.get) if sync else None
    print(f"\n{'mode':>9} {'seed':>4} {'steps/s':>8} {'ratio':>6} {'wall s':>7} {'pass@1':>7} {'reward':>7} "
          f"{'stale':>6} {'dropped':>7} {'idle s':>7}")
    for r in rows:
        ratio = r["steps_per_s"] / median[best] if best else float("nan")
        print(f"{r['mode']:>9} {r['seed']:>4} {r['steps_per_s']:8.3f} {ratio:6.2f} {r['wall_s']:7.0f} "
              f"{100 * r['pass@1']:6.1f}% {r['reward_last10']:7.3f} {r['staleness_mean']:6.2f} "
              f"{r['dropped_groups']:7.0f} {r['trainer_idle_s']:7.1f}")
    print("\nmedians (range over seeds):")
    for m in modes:
        mine = [r for r in rows if r["mode"] == m]
        acc = [100 * r["pass@1"] for r in mine]
        ratio = median[m] / median[best] if best else float("nan")
        print(f"{m:>9}: {median[m]:.3f} steps/s ({ratio:.2f}x {best}), pass@1 {statistics.median(acc):.1f}% "
              f"({min(acc):.1f} .. {max(acc):.1f}), {len(mine)} run(s)")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        colour = colours.setdefault(r["mode"], f"C{len(colours)}")
        t, total = [], 0.0
        for seconds, _ in r["curve"]:
            total += seconds
            t.append(total)
        rewards = [x for _, x in r["curve"]]
        smooth = [statistics.mean(rewards[max(0, i - 4) : i + 1]) for i in range(len(rewards))]
        ax.plot(t, smooth, color=colour, alpha=0.8, label=r["mode"] if r["mode"] not in ax.get_legend_handles_labels()[1]
                else None)
    ax.set_xlabel("training wall-clock (s, summed step time)")
    ax.set_ylabel("mean reward (5-step moving average)")
    ax.set_title("demo job: synchronous vs asynchronous (one line per seed)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["sync:2", "sync:1", "fixed:1", "fixed:1:t2", "free:2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--rollout-threads", type=int, default=1)
    parser.add_argument("--trainer-threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-async")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--append", action="store_true", help="add to the rows already in --json")
    args = parser.parse_args()
    ensure_demo_data()
    rows = json.loads(args.json.read_text()) if args.append and args.json and args.json.exists() else []
    for seed in args.seeds:
        for mode in args.modes:
            row = run(mode, seed, args.steps, args.out, args.rollout_threads, args.trainer_threads)
            print(f"{mode} seed {seed}: {row['steps_per_s']:.3f} steps/s, pass@1 {100 * row['pass@1']:.1f}%, "
                  f"wall {row['wall_s']:.0f} s", flush=True)
            rows.append(row)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
    summarize(rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
