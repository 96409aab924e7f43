"""Math answers: ``math`` (equivalence via math-verify, with a fast path for plain numbers) and ``exact_match``.

    math("... \\boxed{\\frac{1}{2}}", "0.5", {})          # -> score 1.0, extracted "\\frac{1}{2}"

Pipeline of ``math`` for one completion:
1. extract the candidate answer (param ``extract``, default "auto": <answer> tag, \\boxed{}, "the answer is",
   last number; see rlvr.rewards.extract). A list reference means "any of these answers";
2. fast path: when candidate and reference are both plain numbers ("-12", "1,000", "0.25", "3/4", "+7.0"),
   compare them exactly as fractions, or equal after rounding to 6 decimals (math-verify's float_rounding);
   no parsing (tens of microseconds);
3. otherwise math-verify: the reference is parsed as ``\\boxed{ref}`` (a bare gold such as "x^2+1" is not
   found otherwise), the candidate as ``\\boxed{cand}``; when that parse is empty or has free symbols that
   are not an equation ("10 dollars" -> 10*a*d*...), the bare candidate is parsed as well and either parse
   may match. Handles fractions, LaTeX, sets, intervals, percentages, units, equations ``x = 5``.
   Parsed references are cached per process (the G completions of a prompt share one reference).

math-verify interrupts itself with ``signal.alarm``, which only works in the main thread: in the main thread
(e.g. a scorer worker) its timeouts are on (``mv_timeout`` seconds, default 5); in other threads they are off
and the caller (the scorer's hard kill) is the only guard. Deviation from math-verify defaults: none besides
the gold wrapping and the bare-candidate retry.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from fractions import Fraction
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool, result
from rlvr.rewards.extract import extract as extract_answer  # `extract` is also the param name
from rlvr.rewards.extract import normalize_text, not_found_reason, strip_latex
from rlvr.types import RewardResult

_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def plain_number(s: str) -> Fraction | None:
    """``Fraction`` for a plain number ("1,000", "-0.5", "3/4", "$12$"), None for anything else."""
    s = s.strip()
    if s.startswith("$") and s.endswith("$"):
        s = s.strip("$").strip()
    s = s.rstrip(".") if s.endswith(".") and not s[:-1].endswith(".") else s
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    s = s.replace(" ", "")
    if not _PLAIN_NUMBER.fullmatch(s):
        return None
    try:
        if "/" in s:
            num, den = s.split("/")
            if Fraction(den) == 0:
                return None
            return Fraction(num) / Fraction(den)
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(a: Fraction, b: Fraction, digits: int = 6) -> bool:
    """Exact, or equal after rounding both to ``digits`` decimals (as math-verify's float_rounding=6)."""
    return a == b or round(a, digits) == round(b, digits)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _quiet_math_verify() -> None:
    # math-verify warns once per process when timeouts are off; we say why in the docstring instead.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str, timeout: int | None) -> list:
    from math_verify import parse

    return parse(text, parsing_timeout=timeout)


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int | None) -> tuple:
    wrapped = gold if ("\\boxed" in gold or "$" in gold) else "\\boxed{" + gold + "}"
    return tuple(_parse(wrapped, timeout))


def _needs_bare_retry(parsed: list) -> bool:
    if not parsed:
        return True
    expr = parsed[0]
    try:
        from sympy import Basic
        from sympy.core.relational import Relational

        return isinstance(expr, Basic) and not isinstance(expr, Relational) and bool(expr.free_symbols)
    except Exception:  # noqa: BLE001
        return False


def math_verify_equal(candidate: str, reference: str, timeout: int | None = 5) -> tuple[bool, str]:
    """``(equivalent?, what was compared)`` via math-verify; ``timeout`` is dropped outside the main thread."""
    from math_verify import verify

    _quiet_math_verify()
    if not _in_main_thread():
        timeout = None
    gold = list(_parse_gold(reference, timeout))
    if not gold:
        return False, "reference did not parse"
    preds = [_parse("\\boxed{" + candidate + "}", timeout)]
    if _needs_bare_retry(preds[0]):
        preds.append(_parse(candidate, timeout))
    if not any(preds):
        return False, "answer did not parse"
    for pred in preds:
        if pred and verify(gold, pred, timeout_seconds=timeout):
            return True, "correct"
    return False, "wrong"


@VERIFIERS.register("math")
def math(completion: str, reference: Any, metadata: dict, extract: str = "auto", mv_timeout: int = 5,
         fast_path: bool = True, **_: Any) -> RewardResult:
    """Math answer equivalence (math-verify, plain-number fast path); 1 correct, 0 otherwise."""
    cand, how = extract_answer(completion, extract)
    if cand is None:
        return RewardResult(0.0, reason=not_found_reason(how), extracted=None)
    refs = [str(r).strip() for r in (reference if isinstance(reference, (list, tuple)) else [reference])
            if r is not None and str(r).strip()]
    if not refs:
        return RewardResult(0.0, reason="error: empty reference", extracted=cand)
    why, path = "wrong", "number"
    for ref in refs:  # a list reference = any of these answers
        if as_bool(fast_path):
            a, b = plain_number(cand), plain_number(ref)
            if a is not None and b is not None:
                if numbers_equal(a, b):
                    return result(True, cand, path="number")
                continue
        path = "math_verify"
        ok, why = math_verify_equal(cand, ref, int(mv_timeout) if mv_timeout else None)
        if ok:
            return result(True, cand, path=path)
    return result(False, cand, why, path=path)


@VERIFIERS.register("exact_match")
def exact_match(completion: str, reference: Any, metadata: dict, extract: str = "auto",
                case_sensitive: bool = False, **_: Any) -> RewardResult:
    """Normalised string equality (lower case, no punctuation/articles/LaTeX wrappers); a list = any of."""
    cand, how = extract_answer(completion, extract)
    if cand is None:
        return RewardResult(0.0, reason=not_found_reason(how), extracted=None)
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    if as_bool(case_sensitive):
        norm = lambda s: " ".join(strip_latex(str(s)).split())  # noqa: E731
    else:
        norm = normalize_text
    ok = any(norm(cand) == norm(r) for r in refs if r is not None)
    return result(ok, cand)
