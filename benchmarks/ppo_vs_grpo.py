"""GRPO vs PPO with a learned critic on the demo task, the same rollout budget, over seeds.

    python -c "from rlvr.demo.pretrain import build_base; build_base()"    # the demo's base + data, once
    PYTHONPATH=. python benchmarks/ppo_vs_grpo.py                           # seeds 0 1 2 x grpo, ppo, ppo_shared
    PYTHONPATH=. python benchmarks/ppo_vs_grpo.py --seeds 0 --steps 40      # a quick look
    PYTHONPATH=. python benchmarks/ppo_vs_grpo.py --plot docs/ppo_vs_grpo.png --json runs/ppo_vs_grpo.json

Every run is `rlvr train examples/demo.yaml` (P = 16 prompts x G = 8 completions per step, 140 steps, the same
policy lr and schedule), seeded with trainer.seed = S; only the algorithm differs:

- grpo: the demo's own preset (group mean / std advantage);
- ppo:  ``algorithm=ppo`` (GAE with gamma = lambda = 1, batch-whitened advantages) with a separate critic
  initialised from the same base model (``critic.path``), its own lr and a few warm-up steps (``--critic``);
- ppo_shared: the same with a value head on the policy's backbone (``critic.shared=true``) instead.

The held-out curve is the trainer's periodic greedy pass@1 on the demo's dev set (eval.every = 20). Prints one
row per run, then the median and range per algorithm at every eval step; ``--plot`` draws the medians with
their min-max band.
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
sys.path.insert(0, str(ROOT))

from rlvr.demo.report import heldout_curve, read_metrics  # noqa: E402

CACHE = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr")) / "demo"
PPO_DEFAULT = ["critic.lr=1e-3", "critic.warmup_steps=5"]


def overrides(algo: str, seed: int, steps: int, out: Path, critic: list[str]) -> list[str]:
    common = [f"output_dir={out}", f"trainer.seed={seed}", f"trainer.steps={steps}",
              f"trainer.warmup_steps={min(10, steps // 10)}", f"model.path={CACHE / 'base'}",
              f"data.source={CACHE / 'train.jsonl'}", f"data.eval_source={CACHE / 'dev.jsonl'}",
              "logging.progress=false", "checkpoint.save_final=false"]
    if algo == "grpo":
        return common
    where = "critic.shared=true" if algo == "ppo_shared" else f"critic.path={CACHE / 'base'}"
    return common + ["algorithm=ppo", where, *critic]


def run(algo: str, seed: int, args) -> dict:
    out = Path(args.out) / f"{algo}_seed{seed}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples" / "demo.yaml"),
           *overrides(algo, seed, args.steps, out, args.critic)]
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with (out.parent / f"{algo}_seed{seed}.log").open("w") as log:
        code = subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"{algo} seed {seed} failed (exit {code}); see {out.parent / f'{algo}_seed{seed}.log'}")
    metrics = read_metrics(out / "metrics.jsonl")
    key, curve = heldout_curve(metrics)
    last = metrics[-1]
    return {"algo": algo, "seed": seed, "curve": curve, "final": curve[-1][1] if curve else float("nan"),
            "reward_last10": statistics.mean(m["reward/mean"] for m in metrics[-10:]),
            "explained_var": last.get("critic/explained_var"), "wall_s": time.perf_counter() - t0,
            "step_s": statistics.median(m["step_time_s"] for m in metrics)}


def summarise(rows: list[dict]) -> None:
    print(f"\n{'algo':6} {'seed':>4} {'final pass@1':>12} {'reward (last 10)':>16} {'expl. var':>9} "
          f"{'step s':>7} {'wall s':>7}")
    for r in rows:
        ev = f"{r['explained_var']:.2f}" if r["explained_var"] is not None else "-"
        print(f"{r['algo']:6} {r['seed']:>4} {r['final']:>12.3f} {r['reward_last10']:>16.3f} {ev:>9} "
              f"{r['step_s']:>7.2f} {r['wall_s']:>7.0f}")
    print("\nheld-out greedy pass@1: median [min, max] over seeds")
    algos = sorted({r["algo"] for r in rows})
    steps = sorted({s for r in rows for s, _ in r["curve"]})
    print(f"{'step':>5} " + " ".join(f"{a:>22}" for a in algos))
    for s in steps:
        cells = []
        for a in algos:
            vals = [v for r in rows if r["algo"] == a for st, v in r["curve"] if st == s]
            cells.append(f"{statistics.median(vals):.3f} [{min(vals):.3f}, {max(vals):.3f}]" if vals else "-")
        print(f"{s:>5} " + " ".join(f"{c:>22}" for c in cells))


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for algo, colour in (("grpo", "tab:blue"), ("ppo", "tab:orange"), ("ppo_shared", "tab:green")):
        mine = [r for r in rows if r["algo"] == algo]
        if not mine:
            continue
        steps = sorted({s for r in mine for s, _ in r["curve"]})
        per = [[v for r in mine for st, v in r["curve"] if st == s] for s in steps]
        ax.plot(steps, [statistics.median(v) for v in per], "o-", color=colour,
                label=f"{algo} (median of {len(mine)} seeds)")
        ax.fill_between(steps, [min(v) for v in per], [max(v) for v in per], color=colour, alpha=0.2)
    ax.set(xlabel="step (16 prompts x 8 completions)", ylabel="held-out greedy pass@1", ylim=(0, 1),
           title="demo task: GRPO vs PPO with a critic")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=["grpo", "ppo", "ppo_shared"], choices=["grpo", "ppo", "ppo_shared"])
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: immune to a busy machine)")
    parser.add_argument("--critic", nargs="*", default=PPO_DEFAULT, help="critic.* overrides of the ppo runs")
    parser.add_argument("--out", default="runs/ppo_vs_grpo")
    parser.add_argument("--plot", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--append", action="store_true",
                        help="add to the rows already in --json (rows rerun now are replaced)")
    args = parser.parse_args()
    if not (CACHE / "base").is_dir():
        raise SystemExit(f"no demo base in {CACHE}: python -c 'from rlvr.demo.pretrain import build_base; build_base()'")
    rows = json.loads(Path(args.json).read_text()) if args.append and args.json and Path(args.json).is_file() else []
    rows = [r for r in rows if not (r["algo"] in args.algos and r["seed"] in args.seeds)]  # a rerun replaces its row
    for seed in args.seeds:
        for algo in args.algos:
            rows.append(run(algo, seed, args))
            r = rows[-1]
            print(f"{algo} seed {seed}: final pass@1 {r['final']:.3f} ({r['wall_s']:.0f} s)", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    summarise(rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
