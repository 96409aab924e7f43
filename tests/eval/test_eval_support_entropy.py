"""Support categories, the pass@k crossover and the entropies against hand-made examples."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.eval.entropy import answer_entropy, entropy_from_logits, forward_token_entropy, sampled_token_surprisal
from rlvr.eval.support import crossover_k, support_category, support_counts


def test_support_categories_by_hand():
    assert support_category(True, True) == "preserved"
    assert support_category(True, False) == "shrunk"
    assert support_category(False, True) == "expanded"
    assert support_category(False, False) == "out_of_support"
    # p1: 3 vs 5 correct -> preserved; p2: 1 vs 0 -> shrunk; p3: 0 vs 2 -> expanded; p4: 0 vs 0 -> out;
    # p5 only in A, p6 only in B -> not categorised
    a = {"p1": 3, "p2": 1, "p3": 0, "p4": 0, "p5": 2}
    b = {"p1": 5, "p2": 0, "p3": 2, "p4": 0, "p6": 1}
    out = support_counts(a, b)
    assert out["counts"] == {"preserved": 1, "shrunk": 1, "expanded": 1, "out_of_support": 1}
    assert out["fractions"]["shrunk"] == 0.25
    assert out["num_shared"] == 4
    assert out["only_in_a"] == ["p5"] and out["only_in_b"] == ["p6"]
    assert out["per_problem"]["p3"] == "expanded"


def test_crossover_interpolates_in_log2_k():
    ks = [1, 2, 4, 8]
    base = [0.2, 0.4, 0.6, 0.8]
    rl = [0.5, 0.55, 0.58, 0.6]  # diff: +0.3, +0.15, -0.02, -0.2 -> flips between k=2 and k=4
    # t = 0.15 / (0.15 + 0.02) in log2 space between 1 and 2 -> k = 2 ** (1 + 0.15/0.17)
    assert crossover_k(ks, base, rl) == pytest.approx(2 ** (1 + 0.15 / 0.17))
    assert crossover_k(ks, base, [x + 0.1 for x in base]) is None  # B always above: no crossing
    # the curves touch at k=2 then separate the other way -> k=2 itself
    assert crossover_k(ks, [0.2, 0.4, 0.6, 0.8], [0.3, 0.4, 0.5, 0.7]) == 2.0
    # touching without changing sides is not a crossing
    assert crossover_k(ks, [0.2, 0.4, 0.6, 0.8], [0.3, 0.4, 0.7, 0.9]) is None


def test_answer_entropy_by_hand():
    assert answer_entropy(["4", "4", " 4", "4."]) == 0.0  # one answer after normalization
    # two answers 2/2: -2 * 0.5 log 0.5 = log 2
    assert answer_entropy(["1", "2", "1", "2"]) == pytest.approx(math.log(2))
    # 4 distinct (None is one class of its own): log 4
    assert answer_entropy(["1", "2", "3", None]) == pytest.approx(math.log(4))
    # counts 2,1,1 of 4 (two Nones share a class): -(0.5 log 0.5 + 2 * 0.25 log 0.25)
    assert answer_entropy([None, "x", None, "y"]) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))


def test_sampled_surprisal_and_exact_entropy():
    # -(log .5 + log .25) - log 1 = log 2 + log 4 over 3 tokens
    total, count = sampled_token_surprisal([[math.log(0.5), math.log(0.25)], [0.0]])
    assert count == 3 and total == pytest.approx(math.log(8))
    # uniform over 4 logits: entropy log 4 at any temperature; one-hot-ish logits -> ~0
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    ent = entropy_from_logits(logits, temperature=0.7)
    assert ent[0].item() == pytest.approx(math.log(4), abs=1e-6)
    assert ent[1].item() == pytest.approx(0.0, abs=1e-6)


class _Uniform(torch.nn.Module):
    """A 'model' whose next-token logits are always 0 over V=5: every token entropy is log 5."""

    def forward(self, input_ids):
        class Out:
            logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], 5)

        return Out()


def test_forward_entropy_uniform_model():
    ent = forward_token_entropy(_Uniform(), [1, 2], [3, 4, 0], temperature=1.0)
    assert ent == pytest.approx([math.log(5)] * 3, abs=1e-6)
