"""Length-aware rewards: ``overlong_soft``, ``dler_truncation``, ``laser_length``, ``cosine_length``,
``repetition_penalty``.

Length |y| is measured in tokens when the scorer passes ``metadata["completion_tokens"]`` (an int, or the list
of token ids), else in characters (param ``unit``: auto | tokens | chars).

Verifiers that need correctness read ``metadata["correct"]`` (bool or score >= 0.5) when given, else run the
verifier named by param ``base`` (default "auto" = ``metadata["verifier"]``, which the scorer sets to the
example's own verifier, falling back to "math") with ``base_params``.

Formulas (see /work/shared/design/ALGORITHMS.md §3, §13):
    overlong_soft    DAPO (Yu et al. 2025, eq. 13), L_exp = max_len - cache_len:
                     0 if |y| <= L_exp;  (L_exp - |y|) / cache_len if L_exp < |y| <= max_len;  -1 beyond.
                     A penalty in [-1, 0]: add it to the correctness reward as a second component.
    dler_truncation  DLER (NVIDIA 2025): 1[correct] * 1[|y| <= max_len].
    laser_length     LASER (Liu et al. 2025): correct -> 1 + 0.5 * 1[|y| <= target_len]; wrong -> -0.5.
                     Deviation: the three values are params (correct, wrong, bonus); the paper's LASER-D
                     adaptive target per difficulty bucket is not done here (pass target_len per example via
                     metadata["target_len"] to emulate it).
    cosine_length    "Demystifying Long CoT Reasoning" (Yeo et al. 2025):
                     CosFn(t, T, r0, rT) = rT + 0.5 * (r0 - rT) * (1 + cos(pi * t / T)), t = |y|, T = max_len;
                     correct: r0 = max_correct, rT = min_correct (shorter correct is better);
                     wrong:   r0 = min_wrong,  rT = max_wrong  (longer wrong is penalised less);
                     |y| > T: ``exceed``. Defaults follow TRL's cosine-scaled reward (1.0/0.5, -1.0/-0.5);
                     the paper uses r_c 2->1, r_w -10->0, r_exceed -10.
    repetition_penalty  as TRL / open-r1: words (lower case, whitespace split), n-grams of size ngram_size;
                     penalty = max_penalty * (1 - #distinct n-grams / #n-grams); 0 when fewer than n words.
"""

from __future__ import annotations

import math
from typing import Any

from rlvr.rewards.base import VERIFIERS, call_verifier, finite
from rlvr.types import RewardResult


def completion_length(completion: str, metadata: dict, unit: str = "auto") -> tuple[int, str]:
    """``(|y|, "tokens" | "chars")``."""
    if unit not in ("auto", "tokens", "chars"):
        raise ValueError(f"unit must be auto, tokens or chars, got {unit!r}")
    tokens = metadata.get("completion_tokens")
    if unit != "chars" and tokens is not None:
        return (len(tokens) if isinstance(tokens, (list, tuple)) else int(tokens)), "tokens"
    if unit == "tokens":
        raise ValueError("unit='tokens' but metadata has no completion_tokens")
    return len(completion), "chars"


def is_correct(completion: str, reference: Any, metadata: dict, base: str = "auto",
               base_params: dict | None = None, threshold: float = 0.5) -> tuple[bool, RewardResult | None]:
    """Correctness from ``metadata["correct"]`` or from the ``base`` verifier (its result returned too)."""
    if "correct" in metadata and metadata["correct"] is not None:
        value = metadata["correct"]
        return (value >= threshold if not isinstance(value, bool) else value), None
    name = metadata.get("verifier", "math") if base == "auto" else base
    res = call_verifier(name, completion, reference, metadata, dict(base_params or {}))
    return res.score >= threshold, res


def _with_base(score: float, reason: str, base: RewardResult | None, length: int, unit: str) -> RewardResult:
    return RewardResult(
        score=float(score),
        reason=reason,
        extracted=base.extracted if base else None,
        details={"length": length, "unit": unit, **({"base_reason": base.reason} if base else {})},
    )


@VERIFIERS.register("overlong_soft")
def overlong_soft(completion: str, reference: Any, metadata: dict, max_len: int = 20480, cache_len: int = 4096,
                  unit: str = "auto", **_: Any) -> RewardResult:
    """DAPO soft overlong punishment in [-1, 0]: 0 up to max_len - cache_len, linear to -1 at max_len."""
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"need 0 <= cache_len <= max_len, got cache_len={cache_len}, max_len={max_len}")
    n, unit = completion_length(completion, metadata, unit)
    expected = max_len - cache_len
    if n <= expected:
        return _with_base(0.0, f"length {n} <= {expected}", None, n, unit)
    if n <= max_len:
        return _with_base((expected - n) / cache_len, f"length {n} in the overlong buffer", None, n, unit)
    return _with_base(-1.0, f"length {n} > {max_len}", None, n, unit)


@VERIFIERS.register("dler_truncation")
def dler_truncation(completion: str, reference: Any, metadata: dict, max_len: int = 4096, unit: str = "auto",
                    base: str = "auto", base_params: dict | None = None, **_: Any) -> RewardResult:
    """DLER truncation reward: 1[correct] * 1[|y| <= max_len]."""
    n, unit = completion_length(completion, metadata, unit)
    if n > max_len:
        return _with_base(0.0, f"too long ({n} > {max_len})", None, n, unit)
    ok, res = is_correct(completion, reference, metadata, base, base_params)
    return _with_base(1.0 if ok else 0.0, "correct" if ok else "wrong", res, n, unit)


@VERIFIERS.register("laser_length")
def laser_length(completion: str, reference: Any, metadata: dict, target_len: int = 4096, correct: float = 1.0,
                 wrong: float = -0.5, bonus: float = 0.5, unit: str = "auto", base: str = "auto",
                 base_params: dict | None = None, **_: Any) -> RewardResult:
    """LASER: +correct if right (+bonus if |y| <= target_len), wrong (-0.5) otherwise."""
    target = int(metadata.get("target_len", target_len))
    n, unit = completion_length(completion, metadata, unit)
    ok, res = is_correct(completion, reference, metadata, base, base_params)
    if not ok:
        return _with_base(wrong, "wrong", res, n, unit)
    short = n <= target
    return _with_base(correct + (bonus if short else 0.0), "correct, short" if short else "correct, long", res, n, unit)


def cosfn(t: float, big_t: float, r0: float, r_t: float) -> float:
    """CosFn(t, T, r0, rT) = rT + 0.5 (r0 - rT)(1 + cos(pi t / T)): r0 at t = 0, rT at t = T."""
    return r_t + 0.5 * (r0 - r_t) * (1.0 + math.cos(math.pi * t / big_t))


@VERIFIERS.register("cosine_length")
def cosine_length(completion: str, reference: Any, metadata: dict, max_len: int = 1000, max_correct: float = 1.0,
                  min_correct: float = 0.5, min_wrong: float = -1.0, max_wrong: float = -0.5,
                  exceed: float = -1.0, unit: str = "auto", base: str = "auto", base_params: dict | None = None,
                  **_: Any) -> RewardResult:
    """Cosine length scaling (Yeo et al. 2025): short correct best, long wrong least penalised."""
    if max_len <= 0:
        raise ValueError(f"max_len must be > 0, got {max_len}")
    n, unit = completion_length(completion, metadata, unit)
    ok, res = is_correct(completion, reference, metadata, base, base_params)
    if n > max_len:
        return _with_base(exceed, f"too long ({n} > {max_len})", res, n, unit)
    score = cosfn(n, max_len, max_correct, min_correct) if ok else cosfn(n, max_len, min_wrong, max_wrong)
    return _with_base(score, "correct" if ok else "wrong", res, n, unit)


@VERIFIERS.register("repetition_penalty")
def repetition_penalty(completion: str, reference: Any, metadata: dict, ngram_size: int = 3,
                       max_penalty: float = -1.0, **_: Any) -> RewardResult:
    """N-gram repetition penalty in [max_penalty, 0]: max_penalty * (1 - distinct n-grams / n-grams)."""
    if max_penalty > 0:
        raise ValueError(f"max_penalty must be <= 0, got {max_penalty}")
    words = completion.lower().split()
    if len(words) < ngram_size or ngram_size < 1:
        return RewardResult(0.0, reason=f"fewer than {ngram_size} words")
    grams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
    repeated = 1.0 - len(set(grams)) / len(grams)
    score = finite(repeated * max_penalty) or 0.0
    return RewardResult(score, reason=f"repeated n-gram fraction {repeated:.3f}", details={"ngrams": len(grams)})
