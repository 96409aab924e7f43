"""The verifier registry and the small helpers every verifier shares.

A verifier scores ONE completion against ONE reference:

    @VERIFIERS.register("my_check")
    def my_check(completion: str, reference: Any, metadata: dict, **params) -> RewardResult: ...

It must be a module-level function (the scorer runs it in worker processes by name), must not raise for a bad
completion (return ``RewardResult(0.0, reason=...)`` instead; an exception still becomes score 0 with reason
"error: ..." in the scorer) and must return a finite score.
"""

from __future__ import annotations

import math
from typing import Any

from rlvr.registry import Registry
from rlvr.types import RewardResult

VERIFIERS = Registry("verifier")


def result(correct: bool, extracted: str | None, reason: str | None = None, **details: Any) -> RewardResult:
    """A 1.0 / 0.0 result with the usual reasons ("correct" / "wrong")."""
    return RewardResult(
        score=1.0 if correct else 0.0,
        reason=reason or ("correct" if correct else "wrong"),
        extracted=extracted,
        details=dict(details),
    )


def finite(score: Any) -> float | None:
    """``float(score)`` when it is a finite real number (bools count as 0/1), else None."""
    try:
        value = float(score)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def as_bool(value: Any) -> bool:
    """Read a params/metadata flag that may come from YAML or a command line ("true", "0", 1 ...)."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    return bool(value)


def call_verifier(name: str, completion: str, reference: Any, metadata: dict, params: dict) -> RewardResult:
    """Run a registered verifier in this process, turning exceptions and bad scores into score 0 with a reason."""
    try:
        fn = VERIFIERS.get(name)
        out = fn(completion if isinstance(completion, str) else str(completion), reference, metadata or {}, **params)
    except Exception as err:  # noqa: BLE001 - a verifier must never crash training
        return RewardResult(0.0, reason=f"error: {type(err).__name__}: {err}"[:300])
    if not isinstance(out, RewardResult):
        value = finite(out)
        if value is None:
            return RewardResult(0.0, reason=f"error: verifier {name!r} returned {type(out).__name__}, not a RewardResult")
        return RewardResult(value, reason="score")
    value = finite(out.score)
    if value is None:
        return RewardResult(0.0, reason=f"error: non-finite score {out.score!r}", extracted=out.extracted)
    out.score = value
    return out
