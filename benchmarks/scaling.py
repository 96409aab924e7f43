"""Steps/s of the demo job in one process and under `distributed.backend: ray` with 1-2 trainer ranks and 1-2
rollout workers, all in one run against one Ray instance.

    PYTHONPATH=. python benchmarks/scaling.py                              # the 5 layouts, 8 steps each, here
    PYTHONPATH=. python benchmarks/scaling.py --steps 6 --layouts 1 2 5 --repeats 3
    PYTHONPATH=. python benchmarks/scaling.py --address auto --cpus-per-actor 8 --gpus-per-actor 1 \
        --set rollout.prompts_per_step=64                                  # on a real cluster / GPU node

Layouts (reward workers: ``--reward-workers``, default 1):
  1  distributed.backend=none: learner, HF engine and reward pool in this process (the baseline)
  2  ray, 1 trainer rank + 1 rollout worker
  3  ray, 1 trainer rank + 2 rollout workers
  4  ray, 2 trainer ranks (FSDP2, gloo on CPU / NCCL on GPU) + 1 rollout worker
  5  ray, 2 trainer ranks + 2 rollout workers

Every layout runs `rlvr.trainer.train` in this process on examples/demo.yaml (the tiny char-level Llama; the
cached demo base from rlvr.demo.pretrain.build_base, built if missing, or ``--model`` / ``--data``) for
``--steps`` steps, eval off, no checkpoints, no progress bar, a fresh output_dir in a temp folder, plus the
``--set KEY=VALUE`` overrides. One Ray instance serves the whole benchmark: started here with
ray.init(num_cpus=<cores>) or joined with ``--address`` (rlvr.distributed.cluster.connect is then a no-op).
Each Ray actor (trainer rank, rollout worker, reward worker) asks for ``--cpus-per-actor`` CPUs (default: the CPUs
of one node / the layout's actor count, so that everything fits; torch threads = that, rounded, at least 1) and
``--gpus-per-actor`` GPUs for trainer ranks and rollout workers (then model.device=cuda and NCCL).

From each run's metrics.jsonl, the steps after the first ``--warmup`` (actor start-up, first-step compilation
and allocation are not steady state) give, per layout:
  step s           median step_time_s             steps/s = 1 / step s
  compl/s          median completions_per_s
  rollout/update/sync s   medians of time/rollout_s, time/update_s, time/weight_sync_s ("-": not reported; the
                   one-process HF engine shares the learner's model and has no weight sync)
  start s          train()'s wall time minus the sum of its step times: worker start-up, model loads, teardown
  load             the 1-minute load average at the end of the run: well above the cores means other jobs
                   shared them (on a shared 2-core machine that alone can make a step several times slower)
  vs 1, vs 2       steps/s relative to layout 1 (the Ray overhead against one process) and to layout 2 (the
                   gain from a second rollout worker / trainer rank)
With ``--repeats R`` every layout runs R times (interleaved) and the medians over the repeats are printed.

On a machine with few cores (e.g. 2) every extra worker shares the same cores, so a ratio above 1 against layout 1
is not expected there: the numbers show the Ray overhead and that each layout runs. A "vs 2" above 1 there comes
only from the idle second core: with cpus/actor < 1 each actor runs 1 torch thread, so layout 2's trainer rank
(or rollout worker) computes on one core while the other waits, and a second rank (worker) uses the other core.
On a real cluster the same script with ``--address auto`` and larger ``--cpus-per-actor`` / ``--gpus-per-actor``
measures the scaling.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# number -> (name, backend, trainer ranks, rollout workers)
LAYOUTS = {
    1: ("one process", "none", 0, 0),
    2: ("ray 1T+1R", "ray", 1, 1),
    3: ("ray 1T+2R", "ray", 1, 2),
    4: ("ray 2T+1R", "ray", 2, 1),
    5: ("ray 2T+2R", "ray", 2, 2),
}
TIMES = {"rollout_s": "time/rollout_s", "update_s": "time/update_s", "sync_s": "time/weight_sync_s",
         "reward_s": "time/reward_s"}


def paths(args: argparse.Namespace) -> tuple[str, str]:
    """(model path, train.jsonl): the flags, else the cached demo base (built here if missing)."""
    if args.model and args.data:
        return args.model, args.data
    from rlvr.demo.pretrain import build_base

    base = build_base()  # a no-op when ~/.cache/rlvr/demo is complete; ~2 minutes on 2 cores otherwise
    return args.model or base["model_path"], args.data or base["train_path"]


def node_cpus() -> float:
    """CPUs of the largest node of the connected Ray instance (what one actor can use at most)."""
    import ray

    return max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=1.0)


def layout_overrides(number: int, args: argparse.Namespace, cpus_default: float) -> tuple[list[str], float]:
    """The config overrides of layout ``number`` and the CPUs each of its actors asks for."""
    _, backend, trainers, rollouts = LAYOUTS[number]
    if backend == "none":
        return ["distributed.backend=none"], 0.0
    actors = trainers + rollouts + args.reward_workers
    cpus = args.cpus_per_actor or math.floor(cpus_default / actors * 1e4) / 1e4  # Ray counts in 1e-4 units
    gpus = args.gpus_per_actor
    return [
        "distributed.backend=ray", f"distributed.address={args.gcs_address}",
        f"distributed.trainer_workers={trainers}", f"distributed.rollout_workers={rollouts}",
        f"distributed.reward_workers={args.reward_workers}", f"distributed.trainer_cpus={cpus}",
        f"distributed.rollout_cpus={cpus}", f"distributed.reward_cpus={cpus}",
        f"distributed.trainer_gpus={gpus}", f"distributed.rollout_gpus={gpus}",
    ], cpus


def run_layout(number: int, args: argparse.Namespace, model: str, data: str, cpus_default: float) -> dict:
    from rlvr.config import load_config
    from rlvr.trainer import train

    extra, cpus = layout_overrides(number, args, cpus_default)
    with tempfile.TemporaryDirectory(prefix=f"rlvr-scaling-{number}-") as out:
        cfg = load_config(ROOT / "examples" / "demo.yaml", [
            f"model.path={model}", f"data.source={data}", "data.eval_source=", f"output_dir={out}/run",
            f"trainer.steps={args.steps}", "trainer.warmup_steps=0", "eval.every=0", "checkpoint.every=0",
            "checkpoint.save_final=false", "checkpoint.resume=never", "logging.progress=false",
            "logging.log_completions=false", *(["model.device=cuda"] if args.gpus_per_actor else []),
            *extra, *args.set])
        start = time.perf_counter()
        train(cfg)
        wall = time.perf_counter() - start
        load = os.getloadavg()[0]  # other jobs on the same cores show up here (and in the step times)
        rows = [json.loads(line) for line in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    steady = rows[args.warmup:] or rows[-1:]

    def med(key: str) -> float | None:
        values = [r[key] for r in steady if key in r]
        return statistics.median(values) if values else None

    step_s = med("step_time_s")
    result = {"layout": number, "name": LAYOUTS[number][0], "cpus_per_actor": cpus, "steps": len(rows),
              "steady_steps": len(steady), "step_s": step_s, "steps_per_s": 1.0 / step_s,
              "completions_per_s": med("completions_per_s"),
              "start_s": wall - sum(r["step_time_s"] for r in rows), "wall_s": wall, "load_1m": load}
    result.update({name: med(key) for name, key in TIMES.items()})
    return result


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="trainer.steps of every run")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the medians")
    parser.add_argument("--repeats", type=int, default=1, help="runs per layout; medians over them")
    parser.add_argument("--layouts", type=int, nargs="+", default=sorted(LAYOUTS), choices=sorted(LAYOUTS))
    parser.add_argument("--reward-workers", type=int, default=1, help="distributed.reward_workers (ray layouts)")
    parser.add_argument("--cpus-per-actor", type=float, default=0.0,
                        help="Ray CPUs per actor (default: one node's CPUs / the layout's actor count)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0,
                        help="trainer_gpus and rollout_gpus (a GPU node: model.device=cuda, NCCL)")
    parser.add_argument("--address", default="", help="join this Ray cluster (auto, host:port) instead of "
                        "starting a local instance")
    parser.add_argument("--num-cpus", type=int, default=0, help="CPUs of the local Ray instance (default: cores)")
    parser.add_argument("--model", help="model path (default: the cached demo base)")
    parser.add_argument("--data", help="train.jsonl (default: the demo's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every layout (repeatable)")
    args = parser.parse_args()
    if args.warmup >= args.steps:
        parser.error(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")

    import ray
    import torch

    from rlvr.distributed.cluster import WORKER_ENV, connect

    model, data = paths(args)  # before Ray starts: the build uses every core
    cores = os.cpu_count() or 1
    if args.address:
        connect(args.address)  # rlvr's one-line errors for an address that does not answer
    else:
        ray.init(num_cpus=args.num_cpus or cores, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": WORKER_ENV})
    args.gcs_address = ray.get_runtime_context().gcs_address
    resources = ray.cluster_resources()
    cpus_default = node_cpus()
    print(f"machine: {cores} cores, torch {torch.__version__} with {torch.get_num_threads()} threads in this "
          f"process; Ray {ray.__version__} at {args.gcs_address}: {resources.get('CPU', 0):g} CPUs, "
          f"{resources.get('GPU', 0):g} GPUs, largest node {cpus_default:g} CPUs")
    if cpus_default <= 4:
        print(f"note: with {cpus_default:g} CPUs every extra worker shares the same cores, so steps/s ratios above "
              "1 against one process are not expected here; the table shows the Ray overhead and that each layout "
              "runs. A 'vs 2' above 1 here is only the second core put to work (each actor with < 1 CPU runs 1 "
              "torch thread, so layout 2's trainer or rollout worker leaves a core idle). On a real cluster run "
              "this with --address auto and larger --cpus-per-actor / --gpus-per-actor to measure scaling.")
    print(f"{args.steps} steps per run, medians over steps {args.warmup + 1}..{args.steps}, {args.repeats} "
          f"repeat(s); overrides: {args.set or 'none'}", flush=True)

    runs: dict[int, list[dict]] = {n: [] for n in args.layouts}
    try:
        for repeat in range(args.repeats):
            for number in args.layouts:
                r = run_layout(number, args, model, data, cpus_default)
                runs[number].append(r)
                print(f"  [{repeat + 1}/{args.repeats}] layout {number} ({r['name']}): step {r['step_s']:.3f} s, "
                      f"start-up {r['start_s']:.1f} s, cpus/actor {r['cpus_per_actor']:g}, "
                      f"1-min load {r['load_1m']:.1f}",
                      flush=True)
    finally:
        if not args.address:
            ray.shutdown()

    table = []
    for number in args.layouts:
        rs = runs[number]
        row = {"layout": number, "name": LAYOUTS[number][0], "cpus_per_actor": rs[0]["cpus_per_actor"]}
        for key in ("step_s", "steps_per_s", "completions_per_s", "start_s", "load_1m", *TIMES):
            row[key] = _median(rs, key)
        table.append(row)
    by = {row["layout"]: row for row in table}
    print()
    print(f"{'layout':<14} {'cpu/act':>7} {'step s':>7} {'steps/s':>8} {'compl/s':>8} {'rollout s':>9} "
          f"{'update s':>8} {'sync s':>7} {'reward s':>8} {'start s':>7} {'load':>5} {'vs 1':>6} {'vs 2':>6}")
    for row in table:
        for ref in (1, 2):
            row[f"vs_{ref}"] = row["steps_per_s"] / by[ref]["steps_per_s"] if ref in by else None
        cpus = f"{row['cpus_per_actor']:g}" if row["cpus_per_actor"] else "-"
        print(f"{row['layout']} {row['name']:<12} {cpus:>7} {fmt(row['step_s'], 7, 3)} "
              f"{fmt(row['steps_per_s'], 8, 3)} {fmt(row['completions_per_s'], 8, 1)} "
              f"{fmt(row['rollout_s'], 9, 3)} {fmt(row['update_s'], 8, 3)} {fmt(row['sync_s'], 7, 3)} "
              f"{fmt(row['reward_s'], 8, 3)} {fmt(row['start_s'], 7, 1)} {fmt(row['load_1m'], 5, 1)} "
              f"{fmt(row['vs_1'], 6)} {fmt(row['vs_2'], 6)}")
    print("vs 1: steps/s / layout 1's (Ray overhead against one process); vs 2: / layout 2's (the gain from a "
          "second worker)")
    print(json.dumps({"cores": cores, "torch_threads": torch.get_num_threads(), "address": args.address,
                      "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "overrides": args.set,
                      "table": table, "runs": runs}))


if __name__ == "__main__":
    main()
