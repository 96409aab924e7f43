"""Majority voting (self-consistency) over the verifier's extracted answers: maj@k.

Self-consistency (Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning in Language
Models", arXiv:2203.11171): sample k reasoning paths, take the most frequent final answer, score that answer.

Definition used here (the *expected* maj@k, the analogue of unbiased pass@k):

    maj@k = E_{S ~ uniform k-subsets of the n samples} [ 1{ vote(S) is a correct answer } ]

computed exactly (no Monte Carlo) from the answer counts. Choices, all deterministic:
  * answers are grouped by ``normalize_answer(extracted)``; a sample with no extracted answer (None) abstains;
    a subset where every sample abstains votes for nothing and scores 0;
  * an answer class counts as correct when the verifier accepted at least half of its samples (classes are
    usually all-correct or all-wrong; the rule only matters for verifiers that look beyond the answer);
  * ties between the top classes of a subset go to the class ranked first overall: more samples among all n
    first, then the earliest first appearance in sample order.
Deviation: "majority over the first k samples" is the other common definition (simpler, but it depends on the
sample order and has higher variance); maj@n is the same under both.

Exact formula. Let class a have n_a samples, none-abstaining count n_0, and ranks r_a. Class c wins a subset
where it has j votes iff every class ranked above c has <= j-1 votes and every class ranked below has <= j:

    P(c wins) = sum_j C(n_c, j) * [t^{k-j}] ( (1+t)^{n_0} prod_{a != c} sum_{x <= cap_a(j)} C(n_a, x) t^x ) / C(n, k)

Classes with n_a <= cap_a(j) contribute the full (1+t)^{n_a}, so only the few large classes are expanded
(cost about n * k^2 integer operations per problem).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from math import comb

_WS = re.compile(r"\s+")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\left(?![a-zA-Z])|\\right(?![a-zA-Z])")  # \, \; \: \! "\ " \left \right
_LATEX_FRAC = re.compile(r"\\[dt]frac")


def normalize_answer(answer: str | None) -> str | None:
    """The key answers are grouped by: LaTeX spacing and \\left/\\right dropped, \\dfrac/\\tfrac -> \\frac,
    whitespace removed, case-folded, outer ``$`` and a final period dropped.

    Equivalent forms that differ in more than spelling ("1/2" vs "0.5") stay distinct classes.
    """
    if answer is None:
        return None
    text = _LATEX_FRAC.sub(r"\\frac", _LATEX_SPACING.sub("", str(answer)))
    text = _WS.sub("", text).casefold().rstrip(".").strip("$").rstrip(".")
    return text if text else None


def answer_classes(answers: Sequence[str | None], correct: Sequence[bool]) -> list[dict]:
    """Group the n samples by normalized answer, in tie-break rank order.

    Returns a list of ``{"answer", "count", "correct", "first"}`` (abstaining samples excluded), sorted by
    count descending, then first appearance ascending.
    """
    if len(answers) != len(correct):
        raise ValueError(f"answer_classes: {len(answers)} answers but {len(correct)} correctness flags")
    groups: dict[str, dict] = {}
    for i, (ans, ok) in enumerate(zip(answers, correct)):
        key = normalize_answer(ans)
        if key is None:
            continue
        g = groups.setdefault(key, {"answer": key, "count": 0, "n_correct": 0, "first": i})
        g["count"] += 1
        g["n_correct"] += bool(ok)
    classes = sorted(groups.values(), key=lambda g: (-g["count"], g["first"]))
    return [
        {"answer": g["answer"], "count": g["count"], "correct": 2 * g["n_correct"] >= g["count"], "first": g["first"]}
        for g in classes
    ]


def _truncated_binomial(n: int, cap: int, deg: int) -> list[int]:
    """Coefficients of sum_{x=0}^{min(n, cap, deg)} C(n, x) t^x, as a list of length deg + 1."""
    return [comb(n, x) if x <= min(n, cap) else 0 for x in range(deg + 1)]


def _poly_mul(a: list[int], b: list[int], deg: int) -> list[int]:
    out = [0] * (deg + 1)
    for i, ai in enumerate(a):
        if ai:
            for j in range(deg + 1 - i):
                if b[j]:
                    out[i + j] += ai * b[j]
    return out


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """Expected maj@k over uniform k-subsets of the n samples (exact; see the module docstring).

    answers: (n,) extracted final answers (None = no answer); correct: (n,) the verifier's verdicts.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k: need 1 <= k <= n, got k={k}, n={n}")
    classes = answer_classes(answers, correct)
    n_abstain = n - sum(c["count"] for c in classes)
    wins = 0  # number of k-subsets whose vote is a correct class (an exact integer)
    for ci, cls in enumerate(classes):
        if not cls["correct"]:
            continue
        for j in range(1, min(k, cls["count"]) + 1):
            rest = k - j
            free = n_abstain  # samples whose class is never constrained: they form (1+t)^free
            poly = [1] + [0] * rest
            for ai, other in enumerate(classes):
                if ai == ci:
                    continue
                cap = j - 1 if ai < ci else j
                if other["count"] <= cap:
                    free += other["count"]
                else:
                    poly = _poly_mul(poly, _truncated_binomial(other["count"], cap, rest), rest)
            # [t^rest] poly(t) * (1+t)^free
            ways = sum(poly[x] * comb(free, rest - x) for x in range(rest + 1) if poly[x])
            wins += comb(cls["count"], j) * ways
    return wins / comb(n, k)
