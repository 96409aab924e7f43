"""1-shot RLVR's example selection (Wang et al. 2025, "Reinforcement Learning for Reasoning in Large Language
Models with One Training Example"): rank the training examples of an earlier run by how much their training
accuracy moved.

    histories = accuracy_histories(rows)        # (origin, index) -> [accuracy of visit 1, visit 2, ...]
    ranked = rank_by_variance(histories)        # [(key, variance, history), ...], highest variance first

A *visit* is one step's group of completions of the example (``completions.jsonl`` of the run, one line per
completion with its ``correct`` flag); with the uniform sampler an example is visited once per epoch, so the
history is the paper's per-epoch training accuracy. The score is the population variance of the history
(the paper's code ranks by its standard deviation: the same order). Examples seen fewer than twice have no
variance and rank last.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

Key = tuple[str, int]  # (data.sources name or "", row index in its source)


def row_correct(row: dict[str, Any], threshold: float) -> bool:
    """A completions.jsonl row's verdict: its ``correct`` flag, or (older runs) first component >= threshold."""
    if "correct" in row:
        return bool(row["correct"])
    components = row.get("components") or {}
    first = next(iter(components.values())) if components else row.get("reward", 0.0)
    return float(first) >= threshold


def read_rows(path: str | Path) -> Iterable[dict[str, Any]]:
    """The lines of a completions.jsonl (a torn last line of a killed run is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def accuracy_histories(rows: Iterable[dict[str, Any]], threshold: float = 0.5) -> dict[Key, list[float]]:
    """(origin, index) -> accuracy of each visit (the share of the step's completions that were correct), in step
    order."""
    visits: dict[Key, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        visits[(row.get("source", ""), int(row["index"]))][int(row["step"])].append(row_correct(row, threshold))
    return {key: [float(np.mean(by_step[s])) for s in sorted(by_step)] for key, by_step in visits.items()}


def rank_by_variance(histories: dict[Key, list[float]]) -> list[tuple[Key, float, list[float]]]:
    """(key, variance, history) sorted by variance, highest first (ties: lower index first); examples with fewer
    than two visits get variance NaN and come last."""
    scored = [(key, float(np.var(h)) if len(h) >= 2 else float("nan"), h) for key, h in histories.items()]
    return sorted(scored, key=lambda item: (np.isnan(item[1]), -np.nan_to_num(item[1]), item[0]))
