"""Math answers: ``math`` (equivalence via math-verify, with fast paths for plain numbers) and ``exact_match``.

    math("... \\boxed{\\frac{1}{2}}", "0.5", {})                # -> 1.0, extracted "\\frac{1}{2}", path "number"
    math("Therefore the probability is \\frac{1}{3}", "1/3", {})  # -> 1.0, extracted "\\frac{1}{3}", path "math_verify_full"

Pipeline of ``math`` for one completion (param ``extract``, default "auto"; a list reference = any of these):
1. explicit markers first (rlvr.rewards.extract.extract_explicit): the last ``<answer>`` tag, else the last
   ``\\boxed{}``, else the text after the last "the answer is" / "final answer:". The candidate is then
   a. fast path (``simple_number``): when candidate and reference are both plain numbers ("-12", "1,000",
      "0.25", "3/4", "$7$") or digit-only LaTeX fractions (``\\frac{1}{2}``, ``\\dfrac``, ``\\tfrac``, ``\\cfrac``,
      ``\\frac13``, ``-\\frac{10}{9}``, inside ``$..$`` / ``\\(..\\)`` or not), compared exactly as fractions or
      equal after rounding to 6 decimals when one side is written as a decimal (math-verify's float_rounding:
      1/3 = 0.333333 but 1/3 != 333333/1000000); no parsing (tens of microseconds);
   b. the same text as the reference (whitespace and outer ``$`` aside): correct, no parse (path "same_text");
   c. otherwise math-verify on ``\\boxed{candidate}``; when that parse is empty or has free symbols that are not
      an equation ("10 dollars" -> 10*a*d*...), the bare candidate is parsed too and either parse may match
      (verdicts cached per process by (candidate, reference), except those that ran into the timeout);
   d. a boxed or "answer is" candidate judged wrong by (c) gets one more try, math-verify on the whole
      completion, when that could read it differently: several ``\\boxed{}`` (math-verify joins them into one
      set: ``\\boxed{1}, \\boxed{2}`` = ``{1,2}``) or an "answer is" candidate that is not a simple number.
      math-verify anchors on the same markers, so this only adds math-verify's own verdict. An ``<answer>``
      tag is the protocol and is never second-guessed.
2. no marker at all (``auto`` only): the whole completion goes to math-verify's ``parse`` with its default
   extraction (LatexExtractionConfig + ExprExtractionConfig) -- no last-number guess, which read
   ``\\frac{1}{3}`` as ``3``. A completion that is only a simple number ("42", "$\\frac13$") takes the fast path.
   ``extracted`` is what math-verify found, ``details["path"]`` is "math_verify_full".
An explicitly requested mode (``answer_tag``, ``boxed``, ``answer_is``, ``last_number``, ``none``) means exactly
that extractor, then 1a-1c; no whole-completion parse.

The reference: a simple number takes the fast path; a gold with ``$`` or ``\\boxed`` is parsed as it is
(``$x \\leq 5$``, ``$(p,q)=(3,2)$``), any other is parsed as ``\\boxed{ref}`` (a bare gold such as ``\\sqrt{2}`` or
"x^2+1" is not found otherwise) and, if that finds nothing, bare. Parsed references are cached per process (the
G completions of a prompt share one reference). verify() uses math-verify's defaults (float_rounding 6, strict).

math-verify interrupts itself with ``signal.alarm``, which only works in the main thread: in the main thread
(e.g. a scorer worker) its timeouts are on (``mv_timeout`` seconds, default 5); in other threads they are off
and the caller (the scorer's hard kill) is the only guard.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool, result
from rlvr.rewards.extract import extract as extract_answer  # `extract` is also the param name
from rlvr.rewards.extract import NO_ANSWER_SPAN, answer_span, extract_explicit, normalize_text, not_found_reason, strip_latex
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


_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_FRAC_ARG = r"(?:\{\s*([-+]?\d+)\s*\}|(\d))"
_LATEX_FRAC = re.compile(r"([-+]?)\s*\\[dtc]?frac\s*" + _FRAC_ARG + r"\s*" + _FRAC_ARG)


def _unwrap(s: str) -> str:
    """``s`` stripped, without one pair of outer math delimiters (``$$..$$``, ``$..$``, ``\\(..\\)``, ``\\[..\\]``)."""
    s = s.strip()
    for left, right in _DELIMS:
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            return s[len(left): len(s) - len(right)].strip()
    return s


def simple_number(s: str) -> Fraction | None:
    """``plain_number``, or a digit-only LaTeX fraction: ``\\frac{1}{3}``, ``\\dfrac{-1}{2}``, ``\\frac13``,
    ``-\\tfrac{10}{9}``, ``$\\frac{3}{4}$``, ``\\(0.5\\)``. None for anything else (``\\frac{x}{2}``, ``\\frac{1}{2}x``)."""
    s = s.strip()
    if "\\" not in s:
        return plain_number(s)
    s = _unwrap(s)
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    m = _LATEX_FRAC.fullmatch(s)
    if m is None:
        return plain_number(s) if "\\" not in s else None
    sign, num_b, num_d, den_b, den_d = m.groups()
    num, den = Fraction(num_b or num_d), Fraction(den_b or den_d)
    if den == 0:
        return None
    return -num / den if sign == "-" else num / den


def numbers_equal(a: Fraction, b: Fraction, digits: int = 6, rounded: bool = True) -> bool:
    """Exact, or (``rounded``) equal after rounding both to ``digits`` decimals, as math-verify's
    float_rounding=6. Like math-verify, round only when one side was written as a decimal: 1/3 = 0.333333,
    but 1/3 != 333333/1000000."""
    return a == b or (rounded and round(a, digits) == round(b, digits))


def _has_decimal(*texts: str) -> bool:
    """Whether any text holds a decimal fraction ("0.5", ".25"): then numbers compare after rounding."""
    return any(re.search(r"\.\d", t) for t in texts)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _quiet_math_verify() -> None:
    # math-verify warns once per process when timeouts are off; we say why in the docstring instead.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str, timeout: int | None) -> list:
    from math_verify import parse

    return parse(text, parsing_timeout=timeout)


def cache_unless_timed_out(maxsize: int) -> Callable:
    """An LRU cache (on the positional arguments, the last one being the timeout in seconds or None) that keeps
    no result of a call that took at least half its timeout: math-verify turns a timed-out parse or verify into
    "no match", and such a verdict must not stick to the item for the rest of the run (the same item may well
    finish in time on the next step, on a less loaded machine)."""
    def wrap(fn: Callable) -> Callable:
        cache: OrderedDict = OrderedDict()

        @functools.wraps(fn)
        def cached(*args):
            if args in cache:
                cache.move_to_end(args)
                return cache[args]
            start = time.perf_counter()
            value = fn(*args)
            timeout = args[-1]
            if timeout is None or time.perf_counter() - start < 0.5 * timeout:
                cache[args] = value
                if len(cache) > maxsize:
                    cache.popitem(last=False)
            return value

        cached.cache_clear = cache.clear  # type: ignore[attr-defined]
        cached.cache = cache  # type: ignore[attr-defined]
        return cached

    return wrap


@cache_unless_timed_out(maxsize=4096)
def _parse_gold(gold: str, timeout: int | None) -> tuple:
    if "\\boxed" in gold or "$" in gold:
        return tuple(_parse(gold, timeout))
    return tuple(_parse("\\boxed{" + gold + "}", timeout) or _parse(gold, timeout))


@functools.lru_cache(maxsize=4096)
def _simple_ref(ref: str) -> Fraction | None:
    return simple_number(ref)


def _shown(parsed: list) -> str:
    """The text math-verify extracted (its second item), else the parsed expression."""
    return str(parsed[-1] if len(parsed) > 1 and isinstance(parsed[-1], str) else parsed[0])


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


def _timeout(timeout: int | None) -> int | None:
    _quiet_math_verify()
    return timeout if _in_main_thread() else None


def math_verify_equal(candidate: str, reference: str, timeout: int | None = 5) -> tuple[bool, str]:
    """``(equivalent?, what was compared)`` via math-verify; ``timeout`` is dropped outside the main thread.
    Cached per process: the G completions of a prompt often give the same answer."""
    return _math_verify_equal(candidate, reference, _timeout(timeout))


def _same_text(candidate: str, reference: str) -> bool:
    """The same text once whitespace and outer ``$``/``\\(``/``\\[`` delimiters are gone (no parse needed)."""
    a = "".join(_unwrap(candidate).split())
    return bool(a) and a == "".join(_unwrap(reference).split())


@cache_unless_timed_out(maxsize=8192)
def _math_verify_equal(candidate: str, reference: str, timeout: int | None) -> tuple[bool, str]:
    from math_verify import verify

    gold = list(_parse_gold(reference, timeout))
    if not gold:
        return False, "reference did not parse"
    pred = _parse("\\boxed{" + candidate + "}", timeout)
    if pred and verify(gold, pred, timeout_seconds=timeout):
        return True, "correct"
    if _needs_bare_retry(pred):  # only now: the bare parse is as slow as the first one
        bare = _parse(candidate, timeout)
        if bare and verify(gold, bare, timeout_seconds=timeout):
            return True, "correct"
        pred = pred or bare
    return (False, "wrong") if pred else (False, "answer did not parse")


def math_verify_full(completion: str, refs: list[str], timeout: int | None = 5) -> tuple[bool | None, str | None]:
    """math-verify's own ``parse`` (default extraction) of the whole completion against each reference:
    ``(True/False, what it extracted)``, ``(None, None)`` when it finds nothing."""
    from math_verify import verify

    timeout = _timeout(timeout)
    pred = _parse(completion, timeout)
    if not pred:
        return None, None
    for ref in refs:
        gold = list(_parse_gold(ref, timeout))
        if gold and verify(gold, pred, timeout_seconds=timeout):
            return True, _shown(pred)
    return False, _shown(pred)


def _full_retry(completion: str, cand: str, how: str) -> bool:
    """Would math-verify on the whole completion read this boxed / answer-is candidate differently?"""
    if how == "boxed":
        return completion.count("\\boxed") + completion.count("\\fbox") > 1
    return how == "answer_is" and simple_number(cand) is None


_NOTHING_FOUND = "no answer found (no <answer> tag, \\boxed{}, 'the answer is', and math-verify found no math)"


@VERIFIERS.register("math")
def math(completion: str, reference: Any, metadata: dict, extract: str = "auto", mv_timeout: int = 5,
         fast_path: bool = True, answer_format: str = "any", **_: Any) -> RewardResult:
    """Math answer equivalence (explicit markers, else math-verify on the whole text; number fast path); 1 or 0.

    answer_format: any (the ``extract`` order above) | tag | boxed | tag_or_boxed: only that span is read, and a
    completion without it scores 0, reason "no answer span", ``details["no_answer_span"]`` True."""
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)
    refs = [str(r).strip() for r in (reference if isinstance(reference, (list, tuple)) else [reference])
            if r is not None and str(r).strip()]
    timeout = int(mv_timeout) if mv_timeout else None
    fast = as_bool(fast_path)
    answer_format = str(answer_format or "any")
    if answer_format != "any":
        cand, how = answer_span(completion, answer_format), answer_format
        if cand is None:
            return RewardResult(0.0, reason=NO_ANSWER_SPAN, extracted=None, details={"no_answer_span": True})
        extract = answer_format  # not "auto": no whole-completion retry below
    elif extract == "auto":
        cand, how = extract_explicit(completion)
    else:
        cand, how = extract_answer(completion, extract)
        if cand is None:
            return RewardResult(0.0, reason=not_found_reason(how), extracted=None)
    if cand is None:  # auto, no marker: math-verify reads the whole completion
        if not refs:
            return RewardResult(0.0, reason="error: empty reference", extracted=None)
        a = simple_number(completion) if fast else None
        if a is not None and all(_simple_ref(r) is not None for r in refs):
            ok = any(numbers_equal(a, _simple_ref(r), rounded=_has_decimal(completion, r)) for r in refs)
            return result(ok, completion.strip(), path="number")
        ok, shown = math_verify_full(completion, refs, timeout)
        if ok is None:
            return RewardResult(0.0, reason=_NOTHING_FOUND, extracted=None, details={"path": "math_verify_full"})
        return result(ok, shown, path="math_verify_full")
    if not refs:
        return RewardResult(0.0, reason="error: empty reference", extracted=cand)
    why, path = "wrong", "number"
    a = simple_number(cand) if fast else None
    for ref in refs:  # a list reference = any of these answers
        if a is not None:
            b = _simple_ref(ref)
            if b is not None:
                if numbers_equal(a, b, rounded=_has_decimal(cand, ref)):
                    return result(True, cand, path="number")
                continue
        if fast and _same_text(cand, ref):
            return result(True, cand, path="same_text")
        path = "math_verify"
        ok, why = math_verify_equal(cand, ref, timeout)
        if ok:
            return result(True, cand, path=path)
    if extract == "auto" and _full_retry(completion, cand, how):
        ok, shown = math_verify_full(completion, refs, timeout)
        if ok:
            return result(True, shown, path="math_verify_full")
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
