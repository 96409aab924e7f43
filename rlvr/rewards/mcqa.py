"""Multiple-choice answers: ``mcqa``.

    mcqa("<answer>(B) Paris</answer>", "B", {"options": ["London", "Paris"]})   # -> 1.0

Reference: an option letter ("B", "(B)"), or the text of one option (looked up in ``metadata["options"]``),
or a 0-based option index (int). Options come from ``metadata["options"]`` (or ``"choices"``): a list (letters
A, B, C ... in order) or a dict ``{"A": "text", ...}``.

Where the answer is read (param ``extract``): "auto" = the <answer> tag, else the last \\boxed{}, else the text
after "the answer is" / "Answer:", else the last non-empty line; or one of "answer_tag", "boxed", "answer_is",
"none" (whole text). In that text the answer is recognised as:
    a letter, alone or at the start: "B", "(B)", "B.", "B)", "**B**", "B) Paris", "Answer: B"
    letters named anywhere in it: "I pick (B)", "B and D" (a capital "A" followed by a lower-case word is
    read as the article, not an option)
    an option's text: "Paris" (normalised comparison; the longest matching option wins over its substrings)
An answer that names two different options scores 0 ("names several options: A, B").
"""

from __future__ import annotations

import re
from typing import Any

from rlvr.rewards.base import VERIFIERS, result
from rlvr.rewards.extract import NO_ANSWER_SPAN, answer_is, answer_span, answer_tag, boxed, normalize_text
from rlvr.types import RewardResult

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PREFIX = re.compile(
    r"^\s*(?:(?:final\s+)?answer\s*[:：]\s*)?[\(\[]?\**\s*([A-Z])\s*\**[\)\]]?(?:[.):：,]|\s*$)", re.IGNORECASE
)
_ANSWER_COLON = re.compile(r"answer\s*[:：]\s*(.+)", re.IGNORECASE)
_PAREN = re.compile(r"[\(\[]([A-Z])[\)\]]")
_BARE = re.compile(r"(?<![A-Za-z0-9'’])\**([A-Z])\**(?![A-Za-z0-9'’])(?!\s+(?!(?:or|and|nor|vs)\b)[a-z])")


def options_of(metadata: dict) -> dict[str, str]:
    """``{"A": text, ...}`` from ``metadata["options"]`` / ``["choices"]`` (list or dict); ``{}`` when absent."""
    raw = metadata.get("options", metadata.get("choices"))
    if isinstance(raw, dict):
        return {str(k).strip().strip("()").upper(): str(v) for k, v in raw.items()}
    if isinstance(raw, (list, tuple)):
        return {LETTERS[i]: str(v) for i, v in enumerate(raw[: len(LETTERS)])}
    return {}


def gold_letter(reference: Any, options: dict[str, str]) -> str | None:
    if isinstance(reference, int) and not isinstance(reference, bool):
        return LETTERS[reference] if 0 <= reference < len(LETTERS) else None
    ref = str(reference).strip()
    m = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\].]?", ref)
    if m and (not options or m.group(1).upper() in options):
        return m.group(1).upper()
    norm = normalize_text(ref)
    for letter, text in options.items():
        if normalize_text(text) == norm:
            return letter
    m = _PREFIX.match(ref)
    return m.group(1).upper() if m else None


def answer_region(completion: str, mode: str) -> str | None:
    if mode == "none":
        return completion
    if mode == "answer_tag":
        return answer_tag(completion)
    if mode == "boxed":
        return boxed(completion)
    if mode == "answer_is":
        found = answer_is(completion)
        if found is None:
            m = _ANSWER_COLON.findall(completion)
            found = m[-1].strip() if m else None
        return found
    if mode != "auto":
        raise ValueError(f"unknown extract mode {mode!r} for mcqa; choices: auto, answer_tag, boxed, answer_is, none")
    for m in ("answer_tag", "boxed", "answer_is"):
        found = answer_region(completion, m)
        if found is not None:
            return found
    lines = [ln for ln in completion.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else None


def letters_named(text: str, options: dict[str, str]) -> list[str]:
    """The distinct option letters ``text`` names, in order of first mention."""
    valid = set(options) if options else set(LETTERS[:10])
    m = _PREFIX.match(text)
    if m and m.group(1).upper() in valid and (m.group(1).isupper() or len(text.strip()) <= 3):
        return [m.group(1).upper()]
    found = []
    for letter in _PAREN.findall(text) + _BARE.findall(text):
        if letter in valid and letter not in found:
            found.append(letter)
    if found:
        return found
    norm = normalize_text(text)
    if not norm:
        return []
    texts = {k: normalize_text(v) for k, v in options.items() if normalize_text(v)}
    exact = [k for k, v in texts.items() if v == norm]
    if exact:
        return exact[:1]
    hits = [k for k, v in texts.items() if re.search(r"(?<!\w)" + re.escape(v) + r"(?!\w)", norm)]
    # drop options whose text is part of a longer matched option ("1" inside "10")
    return [k for k in hits if not any(k != j and texts[k] in texts[j] for j in hits)]


@VERIFIERS.register("mcqa")
def mcqa(completion: str, reference: Any, metadata: dict, extract: str = "auto", answer_format: str = "any",
         **_: Any) -> RewardResult:
    """Multiple choice: the option letter (or the option's text) must match; two options named scores 0."""
    options = options_of(metadata)
    gold = gold_letter(reference, options)
    if gold is None:
        return RewardResult(0.0, reason=f"error: reference {reference!r} is not an option letter or option text")
    answer_format = str(answer_format or "any")
    if answer_format != "any":  # tag | boxed | tag_or_boxed: only that span, else 0 "no answer span"
        region = answer_span(completion if isinstance(completion, str) else str(completion or ""), answer_format)
        if region is None:
            return RewardResult(0.0, reason=NO_ANSWER_SPAN, extracted=None, details={"no_answer_span": True})
    else:
        region = answer_region(completion, extract)
    if region is None or not region.strip():
        return RewardResult(0.0, reason="no answer found", extracted=None)
    named = letters_named(region, options)
    if not named:
        return RewardResult(0.0, reason="no option found", extracted=region.strip()[:200])
    if len(named) > 1:
        return RewardResult(0.0, reason=f"names several options: {', '.join(named)}", extracted=region.strip()[:200])
    return result(named[0] == gold, named[0], gold=gold)
