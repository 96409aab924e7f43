"""The on-disk layout of an eval run, and resuming a killed one.

    <output_dir>/results.json    {"summary": {...}, "settings": {...}, "ks": [...], "settings_hash": "..."}
    <output_dir>/problems.jsonl  one record per problem (n, correct count, extracted answers, lengths, ...)
    <output_dir>/pass_at_k.png   pass@k and maj@k against k

problems.jsonl is appended as each problem finishes; every line carries ``settings_hash``, a hash of what
changes the samples (model, data, prompt, reward, n, temperature, top_p, top_k, max_new_tokens, greedy,
seed, entropy method). ``run_eval`` skips problems already in the file with the same hash and the same key, so
a killed eval continues where it stopped; lines with another hash (an earlier eval with other settings) are
ignored and dropped when the file is rewritten at the end (in data order). The budgets ``ks`` are not part of
the hash: metrics are recomputed from the stored samples, so asking for other ks never resamples.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.eval.runner import EvalResult, evaluate, stored_or_computed, summarize

RESULTS = "results.json"
PROBLEMS = "problems.jsonl"
PASS_AT_K_PNG = "pass_at_k.png"


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, order-independent hash of the sampling settings (JSON with sorted keys)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def read_problems(path: str | Path, settings_hash_: str | None = None) -> dict[str, dict[str, Any]]:
    """Records of problems.jsonl by key (only those with ``settings_hash_`` when given); a torn last line is
    skipped."""
    out: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if settings_hash_ is None or rec.get("settings_hash") == settings_hash_:
            out[rec["key"]] = rec
    return out


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_eval(
    engine: Any,
    scorer: Any,
    examples: Sequence[Any],
    output_dir: str | Path,
    *,
    settings: dict[str, Any],
    ks: Sequence[int],
    plot: bool = True,
    **evaluate_kwargs: Any,
) -> EvalResult:
    """``evaluate`` with resumable files in ``output_dir``: problems.jsonl, results.json, pass_at_k.png.

    settings: the values that determine the samples (see the module docstring); ``n``, ``temperature``, ...
    are passed on to ``evaluate`` through ``evaluate_kwargs``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    digest = settings_hash(settings)
    problems_path = out / PROBLEMS
    done = read_problems(problems_path, digest)

    def save(record: dict[str, Any]) -> None:
        _append(problems_path, {**record, "settings_hash": digest})

    result = evaluate(engine, scorer, examples, ks=ks, done=done, on_problem=save, **evaluate_kwargs)
    fresh = []
    for old in result.problems:  # per-problem metrics for exactly the ks asked now (resumed lines may differ)
        rec = {k: v for k, v in old.items() if not k.startswith(("pass@", "maj@", "cot_pass@"))}
        rec.update(stored_or_computed(old, ks))
        rec["settings_hash"] = digest
        fresh.append(rec)
    _write_atomic(problems_path, "".join(json.dumps(rec) + "\n" for rec in fresh))
    result.problems = fresh
    result.summary = summarize(fresh, ks)
    payload = {
        "summary": result.summary,
        "ks": [k for k in ks if k <= int(result.summary.get("n", 0))],
        "settings": settings,
        "settings_hash": digest,
        "resumed_problems": len([k for k in done if k in {p["key"] for p in result.problems}]),
    }
    _write_atomic(out / RESULTS, json.dumps(payload, indent=2, default=str))
    if plot:
        from rlvr.eval.plots import plot_pass_at_k

        plot_pass_at_k(result.summary, payload["ks"], out / PASS_AT_K_PNG, title=str(settings.get("model", "")))
    return result


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results.json payload, problems.jsonl records) of a finished eval output dir."""
    d = Path(run_dir)
    results_path = d / RESULTS
    if not results_path.is_file():
        raise FileNotFoundError(f"{d}: no {RESULTS}; is this an `rlvr eval` output dir?")
    payload = json.loads(results_path.read_text(encoding="utf-8"))
    digest = payload.get("settings_hash")
    problems = list(read_problems(d / PROBLEMS, digest).values())
    return payload, problems
