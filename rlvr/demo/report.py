"""The demo's report artifacts: reward_curve.png and report.md, from metrics.jsonl and the before/after evals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HELDOUT_KEYS = ("eval/greedy_pass@1", "eval/pass@1")  # what the trainer's periodic eval logs, first found wins


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.jsonl -> one dict per step (the last record of a step wins), sorted by step."""
    by_step: dict[int, dict[str, Any]] = {}
    path = Path(path)
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_step.setdefault(int(row["step"]), {}).update(row)
    return [by_step[s] for s in sorted(by_step)]


def heldout_curve(metrics: list[dict[str, Any]]) -> tuple[str | None, list[tuple[int, float]]]:
    """(metric name, [(step, value)]) of the held-out accuracy the trainer logged during training."""
    for key in HELDOUT_KEYS:
        points = [(int(m["step"]), float(m[key])) for m in metrics if m.get(key) is not None]
        if points:
            return key, points
    return None, []


def plot_curve(metrics: list[dict[str, Any]], summary: dict[str, Any], path: str | Path) -> Path:
    """Two panels over GRPO steps: training reward (raw and 10-step moving average) and held-out accuracy
    (the trainer's periodic dev-set eval, plus the base and final test-set greedy pass@1 as markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(m["step"]) for m in metrics]
    reward = [float(m.get("reward/mean", float("nan"))) for m in metrics]
    window = 10
    smooth = [sum(reward[max(0, i - window + 1) : i + 1]) / len(reward[max(0, i - window + 1) : i + 1])
              for i in range(len(reward))]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, reward, color="tab:blue", alpha=0.35, label="reward/mean")
    ax1.plot(steps, smooth, color="tab:blue", label=f"{window}-step average")
    ax1.set(xlabel="GRPO step", ylabel="mean reward (fraction correct)", title="training reward", ylim=(0, 1))
    ax1.legend(loc="lower right")
    key, points = heldout_curve(metrics)
    if points:
        ax2.plot([p[0] for p in points], [p[1] for p in points], "o-", color="tab:green", label=f"dev {key}")
    last = steps[-1] if steps else 0
    ax2.plot([0, last], [summary["base_pass1"], summary["final_pass1"]], "s--", color="tab:red",
             label="held-out greedy pass@1 (base, final)")
    ax2.set(xlabel="GRPO step", ylabel="accuracy", title="held-out accuracy", ylim=(0, 1))
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(summary: dict[str, Any], samples: dict[str, list[dict[str, Any]]], cfg: Any) -> str:
    """report.md: settings, the before/after table, and a few greedy completions before and after."""
    k = 8
    r, t = cfg.rollout, cfg.trainer
    lines = [
        "# rlvr demo report",
        "",
        f"GRPO on a tiny character-level Llama, {summary['steps']} steps x {summary['completions_per_step']} "
        f"completions ({r.prompts_per_step} prompts x {r.n}), lr {t.lr:g}, temperature {r.temperature:g}, "
        f"max {r.max_new_tokens} new tokens. Wall time {summary['wall_seconds']:.0f} s "
        f"(GRPO {summary['train_seconds']:.0f} s).",
        "",
        f"Base model: seed {summary['seed']}, {summary['base_learn_steps']} warm-up steps on correct solutions then "
        f"{summary['base_warmup_steps'] - summary['base_learn_steps']} on flawed ones (carries dropped), "
        f"{summary['torch_threads']} torch threads.",
        "",
        f"## Held-out accuracy ({summary['heldout_problems']} problems)",
        "",
        "| metric | base | after GRPO | change |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (("greedy pass@1", "pass1"), (f"pass@{k} (T=1)", f"pass{k}"),
                       ("sampled pass@1 (T=1)", "sampled_pass1")):
        before, after = summary[f"base_{key}"], summary[f"final_{key}"]
        lines.append(f"| {label} | {_pct(before)} | {_pct(after)} | {100 * (after - before):+.1f} pts |")
    lines += [
        "",
        f"Training reward (fraction of correct completions): {_pct(summary['first_reward_mean'])} at step 1, "
        f"{_pct(summary['final_reward_mean'])} at step {summary['steps']}.",
        "",
        "![reward curve](reward_curve.png)",
        "",
    ]
    for name, rows in samples.items():
        lines += [f"## Greedy completions: {name}", "", "| question | answer | completion | correct |",
                  "|---|---:|---|:---:|"]
        for row in rows:
            text = row["completion"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{row['question']}` | {row['answer']} | `{text}` | {'yes' if row['correct'] else 'no'} |")
        lines.append("")
    return "\n".join(lines)
