"""Table question answering and fact verification: ``table_em``, ``table_f1``, ``fact_verification``.

    table_em("<answer>1,000 | Paris</answer>", ["Paris", "1000"], {})   # -> 1.0 (set of items, any order)
    table_f1("<answer>the red car</answer>", "red car", {})              # -> 1.0 (articles dropped)
    fact_verification("<answer>Refuted</answer>", "false", {})           # -> 1.0

A list reference is a multi-item answer (WikiTableQuestions style): ``table_em`` compares the SET of items
(the candidate is split on "|", ";", ", " and newlines); ``table_f1`` joins the items into one token bag.
Items are compared after ``normalize_text`` (lower case, no punctuation/articles), numbers by value
("1,000" == "1000.0"). F1 is SQuAD's token F1: 2PR/(P+R) over the multiset of tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from rlvr.rewards.base import VERIFIERS, result
from rlvr.rewards.extract import extract as extract_answer
from rlvr.rewards.extract import normalize_text, not_found_reason
from rlvr.rewards.math import plain_number
from rlvr.rewards.mcqa import answer_region
from rlvr.types import RewardResult

_SPLIT = re.compile(r"\s*(?:\||;|\n|,\s)\s*")


def _item(s: Any) -> str:
    num = plain_number(str(s))
    if num is not None:
        return f"{num.numerator}/{num.denominator}" if num.denominator != 1 else str(num.numerator)
    return normalize_text(str(s))


def _items(cand: str, reference: Any) -> tuple[list[str], list[str]]:
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    gold = [_item(r) for r in refs if str(r).strip()]
    pred = [_item(c) for c in _SPLIT.split(cand.strip()) if c.strip()] if len(gold) > 1 else [_item(cand)]
    return pred, gold


@VERIFIERS.register("table_em")
def table_em(completion: str, reference: Any, metadata: dict, extract: str = "auto", **_: Any) -> RewardResult:
    """Normalised exact match (numbers by value); a list reference must match as a set of items."""
    cand, how = extract_answer(completion, extract)
    if cand is None:
        return RewardResult(0.0, reason=not_found_reason(how))
    pred, gold = _items(cand, reference)
    if not gold:
        return RewardResult(0.0, reason="error: empty reference", extracted=cand)
    return result(sorted(set(pred)) == sorted(set(gold)), cand)


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 between two strings after ``normalize_text``; 1.0 when both are empty."""
    p, g = normalize_text(pred).split(), normalize_text(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


@VERIFIERS.register("table_f1")
def table_f1(completion: str, reference: Any, metadata: dict, extract: str = "auto", **_: Any) -> RewardResult:
    """Token F1 (SQuAD) between the extracted answer and the reference, in [0, 1]."""
    cand, how = extract_answer(completion, extract)
    if cand is None:
        return RewardResult(0.0, reason=not_found_reason(how))
    gold = " ".join(map(str, reference)) if isinstance(reference, (list, tuple)) else str(reference)
    f1 = token_f1(cand, gold)
    return RewardResult(f1, reason="correct" if f1 == 1.0 else f"f1={f1:.3f}", extracted=cand)


# labels -> canonical class; longer phrases are matched (and removed) first so "not supported" is not "supported"
LABELS = {
    "true": ["entailed", "entailment", "entails", "supported", "supports", "true", "yes", "correct", "right"],
    "false": ["not entailed", "not supported", "not true", "refuted", "refutes", "contradicted", "contradiction",
              "false", "no", "incorrect", "wrong"],
    "unknown": ["not enough info", "not enough information", "nei", "unknown", "neutral", "cannot be determined",
                "insufficient information", "undetermined"],
}
_LABEL_RE = sorted(((p, c) for c, ps in LABELS.items() for p in ps), key=lambda pc: -len(pc[0]))


def labels_in(text: str) -> list[str]:
    """Canonical labels ("true"/"false"/"unknown") named in ``text``, in order of first mention."""
    norm = " " + normalize_text(text, articles=False) + " "
    found: list[tuple[int, str]] = []
    for phrase, cls in _LABEL_RE:
        pat = re.compile(r"(?<=\s)" + re.escape(phrase) + r"(?=\s)")
        for m in pat.finditer(norm):
            found.append((m.start(), cls))
        norm = pat.sub(lambda m: "#" * len(m.group(0)), norm)
    out: list[str] = []
    for _, cls in sorted(found):
        if cls not in out:
            out.append(cls)
    return out


def gold_label(reference: Any) -> str | None:
    if isinstance(reference, bool):
        return "true" if reference else "false"
    if isinstance(reference, (int, float)) and reference in (0, 1):
        return "true" if reference == 1 else "false"
    found = labels_in(str(reference))
    return found[0] if len(found) == 1 else None


@VERIFIERS.register("fact_verification")
def fact_verification(completion: str, reference: Any, metadata: dict, extract: str = "auto", **_: Any) -> RewardResult:
    """Claim labels (entailed/refuted, true/false, yes/no, supported/not supported, not enough info)."""
    gold = gold_label(reference)
    if gold is None:
        return RewardResult(0.0, reason=f"error: reference {reference!r} is not a known label")
    region = answer_region(completion, extract)
    if region is None or not region.strip():
        return RewardResult(0.0, reason="no answer found")
    named = labels_in(region)
    if not named:
        return RewardResult(0.0, reason="no label found", extracted=region.strip()[:200])
    if len(named) > 1:
        return RewardResult(0.0, reason=f"names several labels: {', '.join(named)}", extracted=region.strip()[:200])
    return result(named[0] == gold, named[0], gold=gold)
