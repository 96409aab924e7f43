"""Sample-based accuracy metrics for one problem: unbiased pass@k, avg@n, best-of-n.

For one problem we draw n completions and the verifier marks c of them correct.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv:2107.03374, eq. 1):
the probability that at least one of k completions drawn *without replacement* from the n is correct,

    pass@k = 1 - C(n - c, k) / C(n, k)
           = 1 - prod_{i = n-c+1}^{n} (1 - k / i)        (numerically stable product form)
           = 1                                           when n - c < k.

Averaged over problems it is an unbiased estimate of the model's pass@k for any k <= n, with lower variance
than "take the first k samples". pass@1 equals avg@n = c / n.

best-of-n: the verifier picks the best of the n completions; with a binary verifier this is pass@n, with a
graded reward it is the mean over problems of max_i score_i.
"""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct out of ``n`` samples (Chen et al. 2021).

    Uses the product form 1 - prod_{i=n-c+1..n} (1 - k/i), which never forms the huge binomials C(n, k).
    ``k`` must satisfy 1 <= k <= n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def avg_at_n(correct: Sequence[bool]) -> float:
    """avg@n (verl's mean@N): the fraction of the n samples that are correct; equals unbiased pass@1."""
    if not correct:
        raise ValueError("avg_at_n: no samples")
    return sum(bool(x) for x in correct) / len(correct)


def best_of_n(scores: Sequence[float]) -> float:
    """Best-of-n with the verifier as the selector: the highest reward among the n samples."""
    if not scores:
        raise ValueError("best_of_n: no samples")
    return max(float(s) for s in scores)


def pass_at_k_curve(n: int, c: int, ks: Sequence[int]) -> dict[int, float]:
    """pass@k for every k in ``ks`` (ks larger than n are skipped: the estimator needs k <= n)."""
    return {k: pass_at_k(n, c, k) for k in ks if 1 <= k <= n}
