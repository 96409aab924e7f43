"""Plots: pass@k curves of one run, two runs against each other, reward / eval accuracy over training, and the
accuracy of answer-selection rules against n (`rlvr generate --score`).

All functions write a PNG with matplotlib's Agg backend (no display needed) and return its path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ACCURACY_PREFIXES = ("pass@", "maj@", "avg@", "cot_pass@", "greedy_pass@")


def _series(summary: dict[str, float], prefix: str, ks: Sequence[int]) -> tuple[list[int], list[float]]:
    pts = [(k, summary[f"{prefix}{k}"]) for k in ks if f"{prefix}{k}" in summary]
    return [p[0] for p in pts], [p[1] for p in pts]


def _log2_axis(ax, ks: Sequence[int]) -> None:
    if ks and max(ks) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks))
    ax.set_xticklabels([str(k) for k in ks])


def _accuracy_axes(ax, ks: Sequence[int], xlabel: str, ylabel: str, title: str) -> None:
    """An accuracy-against-k panel: log2 k axis, accuracy in [0, 1], grid, title and legend."""
    _log2_axis(ax, ks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="best")


def plot_pass_at_k(summary: dict[str, float], ks: Sequence[int], out_png: str | Path, title: str = "") -> Path:
    """pass@k (and maj@k, CoT-pass@k when present) against k on a log2 axis; greedy pass@1 as a line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for prefix, style in (("pass@", "o-"), ("maj@", "s--"), ("cot_pass@", "^:")):
        xs, ys = _series(summary, prefix, ks)
        if xs:
            ax.plot(xs, ys, style, label=prefix.rstrip("@") + "@k")
    if "greedy_pass@1" in summary:
        ax.axhline(summary["greedy_pass@1"], color="gray", lw=1, ls="-.", label="greedy pass@1")
    _accuracy_axes(ax, ks, "k (samples)", "accuracy", title or "pass@k")
    return _save(fig, out_png)


def plot_selection(curves: dict[str, dict[int, float]], out_png: str | Path, title: str = "",
                   lines: dict[str, float] | None = None) -> Path:
    """Accuracy of each selection rule (rlvr.eval.select) against n, the samples it chooses from (log2 axis);
    ``lines``: label -> accuracy drawn as horizontal lines (e.g. greedy pass@1)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ks: list[int] = sorted({k for curve in curves.values() for k in curve})
    styles = ("o-", "s--", "^-.", "d:", "v-", "x--")
    for i, (name, curve) in enumerate(curves.items()):
        xs = sorted(curve)
        ax.plot(xs, [curve[k] for k in xs], styles[i % len(styles)], label=name)
    for i, (label, value) in enumerate((lines or {}).items()):
        ax.axhline(value, color=f"C{len(curves) + i}", lw=1, ls=":", label=label)
    _accuracy_axes(ax, ks, "n (samples to choose from)", "accuracy", title or "selection accuracy against n")
    return _save(fig, out_png)


def plot_compare(
    summary_a: dict[str, float],
    summary_b: dict[str, float],
    ks: Sequence[int],
    out_png: str | Path,
    *,
    labels: tuple[str, str] = ("A", "B"),
    crossover: float | None = None,
    support: dict[str, int] | None = None,
) -> Path:
    """Both pass@k curves on one plot with their crossover marked; the support categories as bars beside."""
    fig, axes = plt.subplots(1, 2 if support else 1, figsize=(11 if support else 6, 4), squeeze=False)
    ax = axes[0][0]
    for summary, label, style in ((summary_a, labels[0], "o-"), (summary_b, labels[1], "s-")):
        xs, ys = _series(summary, "pass@", ks)
        ax.plot(xs, ys, style, label=f"{label} pass@k")
    if crossover is not None:
        ax.axvline(crossover, color="red", ls="--", lw=1, label=f"crossover k={crossover:.3g}")
    _accuracy_axes(ax, ks, "k (samples)", "pass@k", "pass@k")
    if support:
        bx = axes[0][1]
        names = list(support)
        bx.bar(names, [support[k] for k in names], color=["tab:green", "tab:red", "tab:blue", "tab:gray"][: len(names)])
        bx.set_ylabel("problems")
        bx.set_title(f"support at k = n ({labels[0]} -> {labels[1]})")
    return _save(fig, out_png)


def read_metrics(metrics_jsonl: str | Path) -> list[dict[str, Any]]:
    """The JSON lines of a trainer metrics file (lines that fail to parse are skipped)."""
    rows = []
    for line in Path(metrics_jsonl).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def plot_curves(metrics_jsonl: str | Path, out_png: str | Path, reward_key: str | None = None) -> Path:
    """Reward and every ``eval/*`` accuracy (pass@k, maj@k, avg@n, greedy pass@1) against the training step.

    metrics_jsonl: one JSON object per line with a ``step`` and metric keys (the trainer's metrics file);
    rows without a key simply leave a gap in that curve. The step is ``step`` or else the line number.
    reward_key: the reward metric; default the first of "reward/mean", "reward" found in the file.
    """
    rows = read_metrics(metrics_jsonl)
    if reward_key is None:
        found = [key for key in ("reward/mean", "reward") if any(key in row for row in rows)]
        reward_key = found[0] if found else "reward/mean"
    fig, (ax_r, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [row.get("step", i) for i, row in enumerate(rows)]
    reward = [(s, row[reward_key]) for s, row in zip(steps, rows) if _is_num(row.get(reward_key))]
    if reward:
        ax_r.plot(*zip(*reward), lw=1, label=reward_key)
    ax_r.set_xlabel("step")
    ax_r.set_title(reward_key)
    ax_r.grid(alpha=0.3)
    eval_keys = sorted({k for row in rows for k in row if k.startswith("eval/") and k[5:].startswith(ACCURACY_PREFIXES)
                        and _is_num(row[k])})
    for key in eval_keys:
        pts = [(s, row[key]) for s, row in zip(steps, rows) if _is_num(row.get(key))]
        if pts:
            ax_e.plot(*zip(*pts), "o-", ms=3, label=key[5:])
    ax_e.set_xlabel("step")
    ax_e.set_title("eval accuracy")
    ax_e.set_ylim(-0.02, 1.02)
    ax_e.grid(alpha=0.3)
    if eval_keys:
        ax_e.legend(loc="lower right", fontsize=8)
    return _save(fig, out_png)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _save(fig, out_png: str | Path) -> Path:
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
