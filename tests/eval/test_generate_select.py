"""Selection rules (rlvr.eval.select) against hand-computed choices and subset accuracies."""

from __future__ import annotations

from itertools import combinations

import pytest

from rlvr.eval.generate import select_rows, selection_curves
from rlvr.eval.select import Rule, accuracy_at_k, budgets, parse_rule, pick

# six samples: "5" is the right answer (2 votes), "7" is wrong (3 votes), one sample has no answer
ANSWERS = ["5", "7", " 5 ", None, "7.", "7"]
CORRECT = [1, 0, 1, 0, 0, 0]
REWARDS = [0.6, 0.1, 0.9, 1.0, 0.3, 0.1]  # the no-answer sample has the highest reward


def test_parse_rule():
    assert parse_rule("majority") == Rule("majority")
    assert parse_rule("best_of_n:math").name == "best_of_n:math"
    with pytest.raises(ValueError, match="did you mean 'majority'"):
        parse_rule("majorty")
    with pytest.raises(ValueError, match="needs the reward"):
        parse_rule("weighted_majority")
    with pytest.raises(ValueError, match="takes no reward"):
        parse_rule("first:math")


def test_hand_computed_choices():
    first = pick(parse_rule("first"), ANSWERS, CORRECT)
    assert (first["index"], first["answer"], first["correct"]) == (0, "5", True)

    best = pick(parse_rule("best_of_n:r"), ANSWERS, CORRECT, REWARDS)
    assert (best["index"], best["answer"], best["votes"], best["correct"]) == (3, None, 1.0, False)

    majority = pick(parse_rule("majority"), ANSWERS, CORRECT)  # "7", "7." and "7" are one answer: 3 votes
    assert (majority["answer"], majority["index"], majority["votes"], majority["correct"]) == ("7", 1, 3, False)
    assert majority["tally"] == {"7": 3, "5": 2}

    weighted = pick(parse_rule("weighted_majority:r"), ANSWERS, CORRECT, REWARDS)  # "5": 0.6+0.9, "7": 0.1+0.3+0.1
    assert (weighted["answer"], weighted["index"], weighted["correct"]) == ("5", 0, True)
    assert weighted["votes"] == pytest.approx(1.5)
    assert weighted["tally"] == pytest.approx({"5": 1.5, "7": 0.5})


def test_ties():
    # best-of-n: equal rewards go to the earlier sample
    best = pick(parse_rule("best_of_n:r"), ["1", "2", "3"], [0, 1, 0], [0.5, 0.9, 0.9])
    assert best["index"] == 1 and best["correct"] is True
    # weighted majority: equal weights go to the answer with more votes, then to the earlier one
    w = pick(parse_rule("weighted_majority:r"), ["a", "b", "b"], [1, 0, 0], [1.0, 0.5, 0.5])
    assert w["answer"] == "b"
    w = pick(parse_rule("weighted_majority:r"), ["a", "b"], [0, 1], [0.5, 0.5])
    assert w["answer"] == "a" and w["correct"] is False
    # majority: equal counts go to the earlier answer; everyone abstaining picks nothing
    assert pick(parse_rule("majority"), ["x", "y"], [0, 1])["answer"] == "x"
    empty = pick(parse_rule("majority"), [None, None], [0, 0])
    assert (empty["answer"], empty["index"], empty["correct"]) == (None, None, False)
    # no reference: the choice is made, its correctness unknown
    assert pick(parse_rule("majority"), ["x", "x", "y"], None)["correct"] is None


def test_accuracy_at_k_hand_computed():
    answers, correct, rewards = ["a", "b", "a"], [1, 0, 1], [0.1, 0.5, 0.3]
    # k=2 subsets: {0,1} {0,2} {1,2}
    # best-of-n picks 1 (wrong), 2 (right), 1 (wrong)              -> 1/3
    # weighted majority: b 0.5 > a 0.1 (wrong), a (right), b 0.5 > a 0.3 (wrong)  -> 1/3
    # majority: ties go to "a", the class with more samples overall -> 1
    assert accuracy_at_k(parse_rule("best_of_n:r"), answers, correct, rewards, 2) == pytest.approx(1 / 3)
    assert accuracy_at_k(parse_rule("weighted_majority:r"), answers, correct, rewards, 2) == pytest.approx(1 / 3)
    assert accuracy_at_k(parse_rule("majority"), answers, correct, rewards, 2) == 1.0
    assert accuracy_at_k(parse_rule("first"), answers, correct, rewards, 2) == pytest.approx(2 / 3)
    # k = n: the rule's pick on all samples; k = 1: one random sample
    assert accuracy_at_k(parse_rule("best_of_n:r"), answers, correct, rewards, 3) == 0.0
    assert accuracy_at_k(parse_rule("weighted_majority:r"), answers, correct, rewards, 3) == 0.0  # b 0.5 > a 0.1+0.3
    for rule in ("best_of_n:r", "weighted_majority:r", "majority"):
        assert accuracy_at_k(parse_rule(rule), answers, correct, rewards, 1) == pytest.approx(2 / 3)


def test_best_of_n_formula_equals_enumeration():
    answers = [str(i % 3) for i in range(7)]
    correct = [1, 0, 0, 1, 1, 0, 1]
    rewards = [0.3, 0.8, 0.8, 0.1, 0.5, 0.9, 0.3]
    rule = parse_rule("best_of_n:r")
    for k in range(1, 8):
        subsets = list(combinations(range(7), k))
        brute = sum(pick(rule, [answers[i] for i in s], [correct[i] for i in s], [rewards[i] for i in s])["correct"]
                    for s in subsets) / len(subsets)
        assert accuracy_at_k(rule, answers, correct, rewards, k) == pytest.approx(brute)


def test_weighted_majority_monte_carlo_is_close_to_exact():
    answers = ["a", "b", "a", "c", "b", "a", "b", "c", "a", "b"]
    correct = [int(a == "a") for a in answers]
    rewards = [0.2, 0.9, 0.4, 0.1, 0.3, 0.5, 0.2, 0.8, 0.1, 0.6]
    rule = parse_rule("weighted_majority:r")
    exact = accuracy_at_k(rule, answers, correct, rewards, 5)  # 252 subsets, enumerated
    estimate = accuracy_at_k(rule, answers, correct, rewards, 5, max_subsets=200)
    assert estimate == accuracy_at_k(rule, answers, correct, rewards, 5, max_subsets=200)  # seeded
    assert abs(estimate - exact) < 0.1


def test_rows_selections_and_curves():
    rows = [
        {"completions": ["x"] * 4, "extracted": ["1", "2", "2", "1"], "correct": [1, 0, 0, 1],
         "rewards": {"r": [0.9, 0.1, 0.2, 0.0]}},
        {"completions": ["x"] * 4, "extracted": ["3", "3", "4", None], "correct": [0, 0, 1, 0],
         "rewards": {"r": [0.0, 0.1, 0.2, 0.3]}},
    ]
    rules = [parse_rule("first"), parse_rule("majority"), parse_rule("best_of_n:r")]
    select_rows(rows, rules)
    assert rows[0]["selections"]["majority"]["answer"] == "1"  # 2-2 tie: the earlier answer
    assert rows[1]["selections"]["best_of_n:r"]["index"] == 3  # the no-answer sample: wrong
    curves = selection_curves(rows, rules)
    assert budgets(4) == [1, 2, 4] and list(curves["first"]) == [1, 2, 4]
    assert curves["first"][4] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert curves["majority"][4] == pytest.approx((1 + 0) / 2)
    assert curves["best_of_n:r"][4] == pytest.approx((1 + 0) / 2)
    # best-of-2, problem 1: ranks 0 (right), 2, 1, 3 (right): P(best is rank 0) = 3/6, rank 3 never best -> 0.5;
    # problem 2: ranks 3, 2 (right), 1, 0: P(rank 2 = best) = C(2,1)/6 = 1/3
    assert curves["best_of_n:r"][2] == pytest.approx((0.5 + 1 / 3) / 2)
