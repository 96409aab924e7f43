"""pass@k, avg@n, best-of-n, maj@k against brute-force enumeration of subsets and hand-made examples."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from rlvr.eval.majority import answer_classes, maj_at_k, normalize_answer
from rlvr.eval.passk import avg_at_n, best_of_n, pass_at_k, pass_at_k_curve


def brute_pass_at_k(flags: list[bool], k: int) -> float:
    """Fraction of the C(n, k) subsets of size k that contain at least one correct sample (the definition)."""
    subsets = list(itertools.combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_matches_subset_enumeration(n):
    for c in range(n + 1):
        flags = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(flags, k), abs=1e-12)


def test_pass_at_k_hand_values_and_edges():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # pass@1 = c/n
    assert pass_at_k(16, 3, 1) == pytest.approx(3 / 16)
    # n - c < k -> 1 exactly (every k-subset must hit a correct sample)
    assert pass_at_k(10, 8, 3) == 1.0
    assert pass_at_k(10, 0, 10) == 0.0
    # large n stays finite and equals the binomial form: 1 - C(900, 100) / C(1000, 100)
    expected = 1 - math.comb(900, 100) / math.comb(1000, 100)
    assert pass_at_k(1000, 100, 100) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    # ks above n are skipped by the curve helper
    assert sorted(pass_at_k_curve(4, 1, [1, 2, 8])) == [1, 2]


def test_avg_and_best_of_n():
    assert avg_at_n([True, False, False, True]) == 0.5  # 2 of 4
    assert best_of_n([0.1, 0.7, 0.3]) == 0.7
    with pytest.raises(ValueError):
        avg_at_n([])


def brute_maj_at_k(answers, flags, k):
    """Enumerate every k-subset, vote among non-None normalized answers, break ties by overall rank
    (count over all n descending, then first appearance), score the winner by its class correctness."""
    keys = [normalize_answer(a) for a in answers]
    total = Counter(x for x in keys if x is not None)
    first = {}
    for i, x in enumerate(keys):
        if x is not None:
            first.setdefault(x, i)
    cls_ok = {x: 2 * sum(flags[i] for i in range(len(keys)) if keys[i] == x) >= total[x] for x in total}
    wins = 0
    subsets = list(itertools.combinations(range(len(keys)), k))
    for s in subsets:
        votes = Counter(keys[i] for i in s if keys[i] is not None)
        if not votes:
            continue
        winner = min(votes, key=lambda x: (-votes[x], -total[x], first[x]))
        wins += cls_ok[winner]
    return wins / len(subsets)


def test_maj_at_k_matches_subset_enumeration_random():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 9)
        pool = ["1", "2", "3", "4", None]
        answers = [rng.choice(pool[: rng.randint(1, 5)]) for _ in range(n)]
        flags = [a == "1" for a in answers]  # "1" is the correct answer
        for k in range(1, n + 1):
            assert maj_at_k(answers, flags, k) == pytest.approx(brute_maj_at_k(answers, flags, k), abs=1e-12), (
                answers,
                k,
            )


def test_maj_at_k_hand_example():
    # answers 1,1,2,None,2 with "1" correct, k=3: 10 subsets. "1" wins with 2 votes (3 subsets), and with one
    # vote when the other two picks are {2,None} or {None,2'}: 2 ones x 2 = 4 (ties go to "1": same count,
    # earlier first appearance). 7/10.
    assert maj_at_k(["1", "1", "2", None, "2"], [1, 1, 0, 0, 0], 3) == pytest.approx(0.7)
    # maj@1 = fraction of samples whose answer class is correct = 2/5 here
    assert maj_at_k(["1", "1", "2", None, "2"], [1, 1, 0, 0, 0], 1) == pytest.approx(0.4)
    # maj@n is the plain majority: 3 x "7" (wrong) beat 2 x "5" (right)
    assert maj_at_k(["7", "5", "7", "5", "7"], [0, 1, 0, 1, 0], 5) == 0.0
    # every sample abstains -> nothing to vote for -> 0
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    # two spellings of one answer are one class after normalization: " 1/2 " == "1/2." == "$1/2$"
    assert maj_at_k([" 1/2 ", "1/2.", "$1/2$", "3"], [1, 1, 1, 0], 4) == 1.0


def test_normalize_answer_by_hand():
    assert normalize_answer(" $1/2$. ") == "1/2"  # spaces, outer $, final period
    assert normalize_answer(r"\dfrac{1}{2}") == r"\frac{1}{2}"
    assert normalize_answer(r"\left( 1, 2 \right)") == "(1,2)"
    assert normalize_answer(r"1\,000") == "1000"
    assert normalize_answer(r"x \rightarrow y") == r"x\rightarrowy"  # \right inside \rightarrow is kept
    assert normalize_answer("B") == "b"
    assert normalize_answer("  ") is None and normalize_answer(None) is None


def test_answer_classes_rank_and_correctness():
    # class "a" 2 samples (one judged correct -> 1/2 >= 1/2 -> correct), "b" 2 samples but appears later
    classes = answer_classes(["b", "a", "a", "b", None, "c"], [0, 1, 0, 0, 0, 1])
    assert [c["answer"] for c in classes] == ["b", "a", "c"]
    assert [c["correct"] for c in classes] == [False, True, True]
