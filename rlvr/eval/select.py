"""Picking one answer out of n samples: first, best-of-n by a reward, majority vote, reward-weighted majority.

    rule = parse_rule("best_of_n:exact_match")
    choice = pick(rule, answers, correct, rewards)      # {"answer", "index", "votes", "of", "correct", "tally"}
    acc = accuracy_at_k(rule, answers, correct, rewards, k=4)

Inference-time scaling as in Table-R1 (Yang et al. 2025, "Table-R1: Inference-Time Scaling for Table Reasoning"):
sample n answers, then let a verifier, a judge or a reward model choose (best-of-n), or vote (self-consistency,
Wang et al. 2022, arXiv:2203.11171). Per problem, with the n samples' extracted answers a_i (None = no answer),
their correctness c_i and the rule's reward r_i:

    first              sample 0                                         (the single-sample baseline)
    best_of_n:R        argmax_i r_i, ties to the earlier sample
    majority           the most frequent normalized answer (rlvr.eval.majority: normalize_answer, ties to the
                       answer with more samples, then the earlier first appearance; no-answer samples abstain)
    weighted_majority:R  argmax_a sum_{i: a_i = a} r_i, ties to more votes, then the earlier first appearance

A voted answer is correct when the verifier accepted at least half of its samples (as maj@k). accuracy_at_k is the
rule's accuracy on a uniformly random k-subset of the n samples, in expectation over the subsets (so the curves at
different k come from the same samples and do not depend on their order, like pass@k and maj@k):

    first              mean_i c_i                                       (a random member of the subset)
    best_of_n          sum_j c_(j) C(n-1-j, k-1) / C(n, k)              c_(j): correctness of the j-th best sample
    majority           maj@k (rlvr.eval.majority.maj_at_k, exact)
    weighted_majority  the mean over every k-subset when there are at most MAX_SUBSETS of them, else over
                       MAX_SUBSETS subsets drawn with a fixed seed (a Monte Carlo estimate)
At k = n every rule's accuracy is that of its pick on all n samples.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import Any

from rlvr.eval.majority import answer_classes, maj_at_k, normalize_answer

KINDS = ("first", "best_of_n", "majority", "weighted_majority")
NEEDS_REWARD = ("best_of_n", "weighted_majority")
MAX_SUBSETS = 500


@dataclass(frozen=True)
class Rule:
    """One selection rule: ``kind`` (KINDS) and, for best_of_n / weighted_majority, the ``reward`` it ranks by (a
    registered verifier / judge / reward-model name, a reward component of the config, or file.py:function)."""

    kind: str
    reward: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.reward}" if self.reward else self.kind


def parse_rule(text: str) -> Rule:
    """"majority" -> Rule("majority"); "best_of_n:math" -> Rule("best_of_n", "math"). ValueError when malformed."""
    kind, _, reward = text.strip().partition(":")
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"--select {text!r}: unknown rule {kind!r} (one of {', '.join(KINDS)}){hint}")
    if kind in NEEDS_REWARD and not reward:
        raise ValueError(f"--select {text!r}: {kind} needs the reward to rank by, e.g. {kind}:math")
    if kind not in NEEDS_REWARD and reward:
        raise ValueError(f"--select {text!r}: {kind} takes no reward")
    return Rule(kind, reward)


def _ranked(rewards: Sequence[float]) -> list[int]:
    """Sample indices from the highest reward down, ties to the earlier sample."""
    return sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))


def _weighted_classes(answers: Sequence[str | None], correct: Sequence[bool], rewards: Sequence[float]) -> list[dict]:
    """answer_classes with a "weight" (sum of the rewards of the class's samples), sorted by weight, then count,
    then first appearance."""
    classes = answer_classes(answers, correct)
    weight = {c["answer"]: 0.0 for c in classes}
    for ans, r in zip(answers, rewards):
        key = normalize_answer(ans)
        if key is not None:
            weight[key] += float(r)
    for c in classes:
        c["weight"] = weight[c["answer"]]
    return sorted(classes, key=lambda c: (-c["weight"], -c["count"], c["first"]))


def pick(rule: Rule, answers: Sequence[str | None], correct: Sequence[bool] | None,
         rewards: Sequence[float] | None = None) -> dict[str, Any]:
    """The rule's choice among n samples.

    answers: (n,) extracted answers (None = none); correct: (n,) verdicts, or None when there is no reference;
    rewards: (n,) the rule's reward (best_of_n / weighted_majority).
    Returns {"rule", "answer" (normalized for votes, as extracted otherwise), "index" (the chosen sample, or the
    first sample of the voted answer; None when every sample abstained), "votes" (the chosen sample's reward, the
    answer's count, or its reward sum), "of" (n), "correct" (bool, or None without a reference), "tally" (answer ->
    votes, for the voting rules)}.
    """
    n = len(answers)
    flags = [bool(c) for c in correct] if correct is not None else [False] * n
    out: dict[str, Any] = {"rule": rule.name, "of": n}
    if rule.kind in NEEDS_REWARD and (rewards is None or len(rewards) != n):
        raise ValueError(f"{rule.name}: needs one reward per sample")
    if rule.kind in ("first", "best_of_n"):
        i = 0 if rule.kind == "first" else _ranked(rewards)[0]
        out.update(answer=answers[i], index=i, votes=1 if rule.kind == "first" else float(rewards[i]),
                   correct=flags[i])
    else:
        if rule.kind == "majority":
            classes = answer_classes(answers, flags)
        else:
            classes = _weighted_classes(answers, flags, rewards)
        key = "count" if rule.kind == "majority" else "weight"
        top = classes[0] if classes else None
        out.update(answer=top and top["answer"], index=top and top["first"], votes=top[key] if top else 0,
                   correct=bool(top and top["correct"]), tally={c["answer"]: c[key] for c in classes})
    if correct is None:
        out["correct"] = None
    return out


def accuracy_at_k(rule: Rule, answers: Sequence[str | None], correct: Sequence[bool],
                  rewards: Sequence[float] | None, k: int, *, max_subsets: int = MAX_SUBSETS, seed: int = 0) -> float:
    """Expected accuracy of ``rule`` on a uniform k-subset of the n samples (see the module docstring)."""
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"accuracy_at_k: need 1 <= k <= n, got k={k}, n={n}")
    flags = [bool(c) for c in correct]
    if rule.kind == "first":
        return sum(flags) / n
    if rule.kind == "majority":
        return maj_at_k(answers, flags, k)
    if rule.kind == "best_of_n":  # the j-th best sample is the subset's best iff it is in, and no better one is
        order = _ranked(rewards)
        return sum(comb(n - 1 - j, k - 1) for j, i in enumerate(order) if flags[i]) / comb(n, k)
    total = comb(n, k)
    if total <= max_subsets:
        subsets = combinations(range(n), k)
        count = total
    else:
        rng = random.Random(seed)
        subsets = (sorted(rng.sample(range(n), k)) for _ in range(max_subsets))
        count = max_subsets
    wins = 0
    for s in subsets:
        wins += pick(rule, [answers[i] for i in s], [flags[i] for i in s], [rewards[i] for i in s])["correct"]
    return wins / count


def budgets(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself: the x axis of the accuracy-against-n curves."""
    return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})
