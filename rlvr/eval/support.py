"""Empirical-support comparison of two models on the same problems, and where their pass@k curves cross.

Support categories (Wu et al. 2025, "The Invisible Leash: Why RLVR May Not Escape Its Origin",
arXiv:2507.14843; definitions reconstructed from the paper's description). A model "solves" a problem at the
largest sampling budget k = n when at least one of its n samples is correct (c > 0, i.e. pass@n > 0):

    preserved       base solves and RL solves
    shrunk          base solves, RL does not        (support shrinkage: lost correct answers)
    expanded        RL solves, base does not        (support expansion: new correct answers)
    out_of_support  neither solves

"base" is run A and "RL" run B of ``rlvr compare A B``; any two runs can be compared.

Crossover. RLVR usually lifts pass@1 while the base catches up or overtakes at large k (Yue et al. 2025,
"Does Reinforcement Learning Really Incentivize Reasoning Capacity in LLMs Beyond the Base Model?",
arXiv:2504.13837). ``crossover_k`` finds the first k where the sign of pass@k(B) - pass@k(A) flips, linearly
interpolated in log2 k between the two measured budgets around the flip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

CATEGORIES = ("preserved", "shrunk", "expanded", "out_of_support")


def support_category(solved_a: bool, solved_b: bool) -> str:
    """The Invisible Leash category of one problem from whether run A (base) and run B (RL) solve it."""
    if solved_a and solved_b:
        return "preserved"
    if solved_a:
        return "shrunk"
    if solved_b:
        return "expanded"
    return "out_of_support"


def support_counts(correct_a: Mapping[str, int], correct_b: Mapping[str, int]) -> dict:
    """Categorise every problem present in both runs by its correct counts c_A, c_B (solved = c > 0).

    correct_a / correct_b: problem key -> number of correct samples. Returns counts and fractions of each
    category, the per-problem category, and the keys present in only one run.
    """
    shared = [k for k in correct_a if k in correct_b]
    per_problem = {k: support_category(correct_a[k] > 0, correct_b[k] > 0) for k in shared}
    counts = {c: 0 for c in CATEGORIES}
    for cat in per_problem.values():
        counts[cat] += 1
    total = len(shared)
    return {
        "counts": counts,
        "fractions": {c: (counts[c] / total if total else 0.0) for c in CATEGORIES},
        "num_shared": total,
        "only_in_a": sorted(k for k in correct_a if k not in correct_b),
        "only_in_b": sorted(k for k in correct_b if k not in correct_a),
        "per_problem": per_problem,
    }


def crossover_k(ks: Sequence[int], curve_a: Sequence[float], curve_b: Sequence[float]) -> float | None:
    """The first budget k where pass@k(B) - pass@k(A) changes sign, or None if it never does.

    ks: increasing budgets; curve_a / curve_b: pass@k of each run at those ks. When the difference is exactly
    0 at a measured k between a + and a - (or the curves touch and separate), that k itself is returned;
    otherwise the zero of the difference is linearly interpolated in log2(k) between the bracketing ks.
    """
    if not (len(ks) == len(curve_a) == len(curve_b)):
        raise ValueError("crossover_k: ks and both curves must have the same length")
    diffs = [b - a for a, b in zip(curve_a, curve_b)]
    last_sign, last_i = 0, None
    for i, d in enumerate(diffs):
        sign = (d > 1e-12) - (d < -1e-12)
        if sign == 0:
            continue
        if last_sign and sign != last_sign:
            j = last_i
            if i - j > 1:  # touched zero in between: the first zero after the last nonzero point
                return float(ks[j + 1])
            x0, x1 = math.log2(ks[j]), math.log2(ks[i])
            t = diffs[j] / (diffs[j] - diffs[i])
            return float(2 ** (x0 + t * (x1 - x0)))
        last_sign, last_i = sign, i
    return None
