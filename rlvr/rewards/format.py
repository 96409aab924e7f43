"""Output format: ``think_format``.

    think_format("<think>\\n2+2=4\\n</think>\\n<answer>4</answer>", None, {})   # -> 1.0

R1-style format reward (DeepSeek-R1, §2.2.2): 1 when the completion is one <think>...</think> block followed by
one <answer>...</answer> block, else 0.
    mode="strict"  nothing but whitespace around and between the two blocks, each tag exactly once
    mode="soft"    a <think>...</think> block somewhere before an <answer>...</answer> block; text around is fine
Param ``prefix_think=true`` is for prompts that already end with "<think>" (the R1 template): the completion is
read as if it began with "<think>".
"""

from __future__ import annotations

import re
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool
from rlvr.types import RewardResult

_STRICT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_SOFT = re.compile(r"<think>(.*?)</think>.*?<answer>(.*?)</answer>", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@VERIFIERS.register("think_format")
def think_format(completion: str, reference: Any, metadata: dict, mode: str = "strict",
                 prefix_think: bool = False, **_: Any) -> RewardResult:
    """R1 format: <think>...</think> then <answer>...</answer> (mode strict | soft); 1 or 0."""
    if mode not in ("strict", "soft"):
        raise ValueError(f"think_format mode must be 'strict' or 'soft', got {mode!r}")
    text = ("<think>" + completion) if as_bool(prefix_think) else completion
    counts = {tag: text.count(tag) for tag in _TAGS}
    missing = [tag for tag, n in counts.items() if n == 0]
    if missing:
        return RewardResult(0.0, reason=f"missing {', '.join(missing)}")
    if mode == "strict":
        repeated = [tag for tag, n in counts.items() if n > 1]
        if repeated:
            return RewardResult(0.0, reason=f"repeated {', '.join(repeated)}")
        m = _STRICT.fullmatch(text)
        if not m:
            return RewardResult(0.0, reason="text outside or tags out of order")
    else:
        m = _SOFT.search(text)
        if not m:
            return RewardResult(0.0, reason="tags out of order")
    if not m.group(2).strip():
        return RewardResult(0.0, reason="empty <answer>", extracted="")
    return RewardResult(1.0, reason="format ok", extracted=m.group(2).strip())
