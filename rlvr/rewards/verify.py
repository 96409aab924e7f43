"""Check a reward on a file of completions, the engine of ``rlvr verify``.

    rows = read_rows("samples.jsonl")                 # {"completion": ..., "answer": ..., other fields = metadata}
    results = verify_rows(rows, "math", {"extract": "boxed"})
    summary = summarize(results)                      # count, mean score, fraction correct, reasons histogram

Each row is one JSON object with at least ``completion`` and ``answer``; ``verifier`` (used by the reward
"auto"), ``question``/``prompt`` are read when present, every other field goes to the verifier's metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from rlvr.rewards.scorer import RewardScorer
from rlvr.types import Example, RewardResult

_RESERVED = ("completion", "answer", "verifier", "question", "prompt")


def read_rows(path: str | Path, limit: int = 0) -> list[dict[str, Any]]:
    """JSON lines with ``completion`` and ``answer``; raises ValueError naming the first bad line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    rows = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in ("completion", "answer") if k not in row]
            if missing:
                raise ValueError(f"{p}:{lineno}: missing field(s) {', '.join(missing)}")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    return rows


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["extract=boxed", "max_len=100"]`` -> ``{"extract": "boxed", "max_len": 100}`` (values read as YAML)."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {item!r} is not of the form key=value")
        params[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return params


def row_to_example(row: dict[str, Any], index: int) -> Example:
    question = row.get("question", row.get("prompt", ""))
    return Example(
        question=str(question),
        answer=row["answer"],
        verifier=str(row.get("verifier") or "math"),
        metadata={k: v for k, v in row.items() if k not in _RESERVED},
        index=index,
        prompt=str(row.get("prompt", "")),
    )


def verify_rows(rows: list[dict[str, Any]], reward: str = "auto", params: dict[str, Any] | None = None,
                timeout_s: float = 10.0, num_workers: int = 0) -> list[RewardResult]:
    """Score every row's completion with one reward component (unknown names raise KeyError with a hint)."""
    examples = [row_to_example(r, i) for i, r in enumerate(rows)]
    component = {"name": reward, "weight": 1.0, "params": dict(params or {})}
    with RewardScorer([component], timeout_s=timeout_s, num_workers=num_workers) as scorer:
        return scorer.score(examples, [str(r["completion"]) for r in rows])


def summarize(results: list[RewardResult], threshold: float = 0.5) -> dict[str, Any]:
    """count, mean score, fraction with score >= threshold, and a histogram of reasons (most common first)."""
    n = len(results)
    return {
        "count": n,
        "mean_score": sum(r.score for r in results) / n if n else 0.0,
        "frac_correct": sum(r.score >= threshold for r in results) / n if n else 0.0,
        "reasons": dict(Counter(r.reason for r in results).most_common()),
    }
