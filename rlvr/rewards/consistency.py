"""``think_answer_consistency``: the answer the reasoning arrives at agrees with the <answer> span (TACO).

    think_answer_consistency("<think>3 red ... so the answer is 3</think><answer>3</answer>", None, {})   # 1.0

TACO (Kan et al. 2025, "TACO: Think-Answer Consistency for Optimized Long-Chain Reasoning and Efficient Data
Learning via Reinforcement Learning in LVLMs") rewards responses whose final answer is the one their reasoning
reached, against the "right answer, unrelated reasoning" outputs that accuracy-only rewards leave alone. Here:
the conclusion of the <think> span is its "the answer is X" / "Answer: X" phrase when it has one, else its last
number (when the answer is a number), else its last non-empty line; it agrees with the <answer> span when both
normalise to the same text or parse to the same number. Score 1 when they agree, 0 otherwise (no <think> or
<answer> span, or no conclusion: the reason says which). The reference is not used: a consistency term to add
to an accuracy component (``reward.components``), not a correctness reward on its own.
Deviation: TACO asks a model whether the two agree; this rule-based check needs no judge.
"""

from __future__ import annotations

import re
from typing import Any

from rlvr.rewards.base import VERIFIERS
from rlvr.rewards.extract import answer_is, answer_tag, last_number, normalize_text
from rlvr.types import RewardResult

_THINK = re.compile(r"<think>(.*?)</think>", re.S)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def conclusion(think: str, answer: str) -> str | None:
    """What the reasoning concludes: its "the answer is" phrase, else its last number (numeric answers), else
    its last non-empty line."""
    stated = answer_is(think)
    if stated:
        return stated
    if _number(answer) is not None:
        return last_number(think)
    lines = [line.strip() for line in think.splitlines() if line.strip()]
    return lines[-1] if lines else None


@VERIFIERS.register("think_answer_consistency")
def think_answer_consistency(completion: str, reference: Any, metadata: dict, **_: Any) -> RewardResult:
    """1 when the <think> span's conclusion agrees with the <answer> span (module docstring), else 0."""
    thinks = _THINK.findall(completion)
    answer = answer_tag(completion)
    if not thinks:
        return RewardResult(0.0, reason="no <think> span")
    if answer is None:
        return RewardResult(0.0, reason="no <answer> span", details={"no_answer_span": True})
    said = conclusion(thinks[-1], answer)
    if said is None:
        return RewardResult(0.0, reason="the reasoning states no conclusion")
    a, b = _number(said), _number(answer)
    agree = (a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))) or \
        normalize_text(said) == normalize_text(answer)
    return RewardResult(float(agree), reason="consistent" if agree else f"reasoning says {said[:40]!r}, answer "
                        f"{answer[:40]!r}", extracted=said[:100])
