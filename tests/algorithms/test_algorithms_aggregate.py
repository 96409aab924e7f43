"""Masked reductions and loss aggregation modes, including exact micro-batch splitting."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.algorithms import AGGREGATIONS, masked_mean, masked_sum, masked_whiten

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)


def test_masked_sum_mean_ignore_padding_even_nan():
    values = VALUES.clone()
    values[0, 2] = float("nan")  # garbage under the mask must not leak
    # valid: 1 + 2 + 4 = 7 over 3 tokens
    assert masked_sum(values, MASK).item() == 7.0
    assert math.isclose(masked_mean(values, MASK).item(), 7 / 3, rel_tol=1e-6)
    # per row: [1+2, 4, 0] / [2, 1, max(0,1)]
    assert torch.allclose(masked_mean(values, MASK, dim=-1), torch.tensor([1.5, 4.0, 0.0]))


def test_masked_whiten_by_hand():
    # valid values 1, 2, 4: mean 7/3; deviations -4/3, -1/3, 5/3; unbiased var = (16+1+25)/9/2 = 42/18 = 7/3
    out = masked_whiten(VALUES, MASK, eps=0.0)
    std = math.sqrt(7 / 3)
    expected = torch.tensor([[-4 / 3 / std, -1 / 3 / std, 0.0], [5 / 3 / std, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_aggregations_by_hand():
    # rows: [1, 2] (len 2), [4] (len 1), [] (fully masked: not counted as a sequence)
    agg = {n: AGGREGATIONS.get(n) for n in AGGREGATIONS}
    assert math.isclose(agg["token-mean"](VALUES, MASK).item(), 7 / 3, rel_tol=1e-6)  # (1+2+4)/3
    assert math.isclose(agg["seq-mean-token-mean"](VALUES, MASK).item(), 2.75)  # (1.5 + 4) / 2
    assert math.isclose(agg["seq-mean-token-sum"](VALUES, MASK).item(), 3.5)  # (3 + 4) / 2
    # (3/4 + 4/4) / 2 = 0.875
    assert math.isclose(agg["seq-mean-token-sum-norm"](VALUES, MASK, norm_len=4).item(), 0.875)
    # explicit whole-batch counts override the local ones: 7 / 10 tokens, 7 / 5 sequences
    assert math.isclose(agg["token-mean"](VALUES, MASK, num_tokens=10).item(), 0.7, rel_tol=1e-6)
    assert math.isclose(agg["seq-mean-token-sum"](VALUES, MASK, num_seqs=5).item(), 1.4, rel_tol=1e-6)


def test_empty_mask_gives_zero_not_nan():
    empty = torch.zeros(2, 3, dtype=torch.bool)
    for name in AGGREGATIONS:
        assert AGGREGATIONS.get(name)(VALUES[:2], empty, norm_len=3).item() == 0.0


@st.composite
def batches(draw):
    B = draw(st.integers(1, 6))
    T = draw(st.integers(1, 5))
    vals = draw(st.lists(st.floats(-10, 10), min_size=B * T, max_size=B * T))
    mask = draw(st.lists(st.booleans(), min_size=B * T, max_size=B * T))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(B - 1, 1)), max_size=3)))) if B > 1 else []
    return (torch.tensor(vals, dtype=torch.float64).reshape(B, T), torch.tensor(mask).reshape(B, T), cuts)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_micro_batch_split_sums_to_full_batch(batch):
    values, mask, cuts = batch
    num_seqs = int(mask.any(-1).sum())
    num_tokens = int(mask.sum())
    bounds = [0, *cuts, values.shape[0]]
    for name in AGGREGATIONS:
        fn = AGGREGATIONS.get(name)
        full = fn(values, mask, norm_len=7)
        parts = sum(
            fn(values[a:b], mask[a:b], norm_len=7, num_seqs=num_seqs, num_tokens=num_tokens)
            for a, b in zip(bounds[:-1], bounds[1:])
        )
        assert torch.allclose(parts, full, atol=1e-9), name


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_modes_agree_when_every_sequence_has_the_same_length(B, T, seed):
    # with all B rows fully valid (length T): seq-mean-token-mean = token-mean = sum / (B T);
    # seq-mean-token-sum = T * token-mean; seq-mean-token-sum-norm with norm_len = T = token-mean
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.bool)
    tm = AGGREGATIONS.get("token-mean")(values, mask)
    assert torch.allclose(AGGREGATIONS.get("seq-mean-token-mean")(values, mask), tm)
    assert torch.allclose(AGGREGATIONS.get("seq-mean-token-sum")(values, mask), T * tm)
    assert torch.allclose(AGGREGATIONS.get("seq-mean-token-sum-norm")(values, mask, norm_len=T), tm)
