"""Pull the final answer out of a completion.

    extract("... <answer> 42 </answer>", "answer_tag")   # -> ("42", "answer_tag")
    extract("so \\boxed{\\frac{1}{2}}.", "auto")          # -> ("\\frac{1}{2}", "boxed")
    extract_explicit("the probability is \\frac{1}{3}")   # -> (None, "auto"): no marker, no guess

Modes (the ``extract`` param of every answer-comparing verifier):
    answer_tag   the content of the LAST ``<answer>...</answer>`` (an unclosed tag does not count)
    boxed        the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced
    answer_is    the text after the LAST "the answer is" / "final answer:" up to the end of the sentence or line
                 (repeated markers such as "Final Answer: The final answer is $5$" count as one)
    last_number  the last number in the text ("-1,234.5", "3/4", ".5")
    auto         answer_tag, then boxed, then answer_is, then last_number: the first that finds something
    none         the whole completion, stripped

``extract_explicit`` is ``auto`` without the last-number guess (answer_tag, boxed, answer_is only). The ``math``
verifier uses it for ``auto``: when no explicit marker is found it hands the whole completion to math-verify
(LaTeX and expression extraction) instead of taking the last number, which reads ``\\frac{1}{3}`` as ``3``
(see rlvr.rewards.math). ``exact_match``, ``table_em`` and ``table_f1`` keep the full ``auto`` order.

Also the text normalisation shared by exact-match style verifiers (``normalize_text``), in the spirit of the
SQuAD evaluation script (lower case, no punctuation, no articles, single spaces).
"""

from __future__ import annotations

import re
import string

MODES = ("auto", "answer_tag", "boxed", "answer_is", "last_number", "none")
AUTO_ORDER = ("answer_tag", "boxed", "answer_is", "last_number")
EXPLICIT_ORDER = ("answer_tag", "boxed", "answer_is")  # markers the model wrote on purpose; no guessing

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_SPACE = re.compile(r"\\boxed +([^\s$]+)")
_ANSWER_IS = re.compile(
    r"(?:(?:the\s+(?:final\s+|correct\s+)?answer\s+is|final\s+answer\s*(?:is)?)\s*[:：]?\s*)+(.+?)(?=\.\s|\.$|\n|$)",
    re.IGNORECASE | re.DOTALL,
)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+]?\.\d+")


def answer_tag(text: str) -> str | None:
    found = _ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces (None when the last one never closes)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
        # unbalanced: try the previous \boxed
    found = _BOXED_SPACE.findall(text)
    return found[-1].strip() if found else None


def answer_is(text: str) -> str | None:
    found = _ANSWER_IS.findall(text)
    if not found:
        return None
    ans = found[-1].strip()
    ans = re.sub(r"^\*+|\*+$", "", ans).strip()  # markdown bold
    if len(ans) >= 2 and ans[0] == "$" and ans[-1] == "$":
        ans = ans.strip("$").strip()
    ans = ans.rstrip(".").strip()
    return ans or None


def last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return re.sub(r"\s+", "", found[-1]) if found else None


_EXTRACTORS = {"answer_tag": answer_tag, "boxed": boxed, "answer_is": answer_is, "last_number": last_number}


def extract(text: str, mode: str = "auto") -> tuple[str | None, str]:
    """``(answer or None, the mode that found it)``; raises ValueError for an unknown mode."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if mode == "none":
        return text.strip(), "none"
    if mode == "auto":
        for name in AUTO_ORDER:
            found = _EXTRACTORS[name](text)
            if found is not None:
                return found, name
        return None, "auto"
    if mode not in _EXTRACTORS:
        raise ValueError(f"unknown extract mode {mode!r}; choices: {', '.join(MODES)}")
    return _EXTRACTORS[mode](text), mode


def extract_explicit(text: str) -> tuple[str | None, str]:
    """``auto`` without the last-number guess: ``(answer, mode)`` from answer_tag / boxed / answer_is, or
    ``(None, "auto")`` when the completion has none of these markers."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    for name in EXPLICIT_ORDER:
        found = _EXTRACTORS[name](text)
        if found is not None:
            return found, name
    return None, "auto"


ANSWER_FORMATS = ("any", "tag", "boxed", "tag_or_boxed")
NO_ANSWER_SPAN = "no answer span"


def answer_span(text: str, answer_format: str) -> str | None:
    """The span an ``answer_format`` accepts (the ``math`` / ``mcqa`` verifier param), None when there is none:
    tag = the last ``<answer>`` tag, boxed = the last ``\\boxed{}``, tag_or_boxed = the tag, else the box.
    ``any`` is not a span (the verifier's own ``extract`` order, math-verify on the whole text) and raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if answer_format == "tag":
        return answer_tag(text)
    if answer_format == "boxed":
        return boxed(text)
    if answer_format == "tag_or_boxed":
        found = answer_tag(text)
        return found if found is not None else boxed(text)
    raise ValueError(f"unknown answer_format {answer_format!r}; choices: {', '.join(ANSWER_FORMATS)}")


def not_found_reason(mode: str) -> str:
    if mode == "auto":
        return "no answer found (no <answer> tag, \\boxed{}, 'the answer is' or number)"
    return {
        "answer_tag": "no <answer> tag",
        "boxed": "no \\boxed{}",
        "answer_is": "no 'the answer is'",
        "last_number": "no number",
    }.get(mode, "no answer found")


# ----------------------------------------------------------------------------------------------------------
# normalisation

_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit)\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# punctuation, except a minus sign before a digit and . , / between digits ("-3.5", "1,000", "3/4" stay numbers)
_PUNCT = re.compile(r"(?!-(?=\d))(?!(?<=\d)[.,/](?=\d))[" + re.escape(string.punctuation) + "]")


def strip_latex(s: str) -> str:
    """Remove ``$``/``\\(`` delimiters and ``\\text{..}``-style wrappers: ``$\\text{Paris}$`` -> ``Paris``."""
    s = s.strip()
    s = _LATEX_TEXT.sub(r"\1", s)
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def normalize_text(s: str, *, articles: bool = True, punctuation: bool = True) -> str:
    """Lower case, LaTeX wrappers removed, punctuation and articles dropped, whitespace collapsed."""
    s = strip_latex(str(s)).lower()
    if punctuation:
        s = _PUNCT.sub(" ", s)
    if articles:
        s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())
