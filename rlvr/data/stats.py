"""What is in a data source, before training on it (``rlvr data stats SRC``).

    stats = source_stats(report, tokenizer=tok, prompt_cfg=cfg.prompt)   # a plain dict

counts (rows read, usable, rejected with their reasons grouped), the fields of the rows and how often each
occurs, the answer types (int, float, numeric string, LaTeX, text, list ...), the verifiers, exact duplicates,
and, with a tokenizer, the rendered prompt's length in tokens (min, percentiles, max).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import numpy as np

from rlvr.data.sources import DataReport

_NUMERIC = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def answer_type(answer: Any) -> str:
    """A coarse type of a reference answer: none | bool | int | float | numeric string | latex | text | list |
    mapping."""
    if answer is None:
        return "none"
    if isinstance(answer, bool):
        return "bool"
    if isinstance(answer, int):
        return "int"
    if isinstance(answer, float):
        return "float"
    if isinstance(answer, (list, tuple)):
        return "list"
    if isinstance(answer, dict):
        return "mapping"
    text = str(answer)
    if _NUMERIC.match(text):
        return "numeric string"
    if "\\" in text or "^" in text or "_{" in text:
        return "latex"
    return "text"


def _reason_kind(reason: str) -> str:
    """ "no answer (field 'answer' missing or empty)" -> "no answer": the reason without its details."""
    return reason.split(" (")[0].split(":")[0].strip()


def source_stats(report: DataReport, tokenizer: Any = None, prompt_cfg: Any = None) -> dict[str, Any]:
    """The statistics of a loaded source (see the module docstring). ``prompt_cfg`` renders the prompts whose
    tokens are counted (default: the question alone)."""
    examples = report.examples
    fields = Counter()
    for ex in examples:
        fields.update(["question", "answer"])
        fields.update(ex.metadata.keys())
    keys = [(ex.question, json.dumps(ex.answer, sort_keys=True, default=str)) for ex in examples]
    questions = Counter(ex.question for ex in examples)
    out: dict[str, Any] = {
        "source": report.source,
        "rows_read": report.total,
        "usable": len(examples),
        "rejected": len(report.bad_rows),
        "rejected_by_reason": dict(Counter(_reason_kind(b.reason) for b in report.bad_rows).most_common()),
        "rejected_examples": [f"line {b.line}: {b.reason}" for b in report.bad_rows[:5]],
        "fields": dict(fields.most_common()),
        "answer_types": dict(Counter(answer_type(ex.answer) for ex in examples).most_common()),
        "verifiers": dict(Counter(ex.verifier for ex in examples).most_common()),
        "duplicate_rows": len(keys) - len(set(keys)),  # same question and answer as an earlier row
        "duplicate_questions": sum(c - 1 for c in questions.values() if c > 1),
        "question_chars": _distribution([len(ex.question) for ex in examples]),
        "notes": list(report.notes),
    }
    if tokenizer is not None:
        from rlvr.data.templates import render_prompt

        texts = [render_prompt(ex, prompt_cfg, tokenizer) if prompt_cfg is not None else ex.question for ex in examples]
        add_special = not (prompt_cfg is not None and prompt_cfg.chat_template)
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=add_special)["input_ids"]] if texts else []
        out["prompt_tokens"] = _distribution(lengths)
    return out


def _distribution(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {"min": int(a.min()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": int(a.max()), "mean": float(a.mean())}
