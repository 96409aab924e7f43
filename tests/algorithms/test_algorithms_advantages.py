"""Advantage estimators: hand-computed values and group properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.algorithms import ADVANTAGES, combine_group_ids

CALL = dict(token_kl=None, kl_coef=0.0, norm_by_std=True, scale="group", eps=1e-6)


def seq_values(adv):
    """The per-sequence advantage (first token) of a (B, T) advantage whose rows are constant."""
    return adv[:, 0]


def test_grpo_by_hand():
    # groups: [1, 0, 0] (prompt 7), [1, 1] (prompt 3), [1] (prompt 5, size 1)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([7, 7, 7, 3, 3, 5])
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[0, 1] = False
    adv, m = ADVANTAGES.get("grpo")(rewards, mask, groups, **CALL)
    # group [1,0,0]: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3) = 0.57735
    #   A = (2/3)/0.57735 = 1.1547, (-1/3)/0.57735 = -0.57735
    # group [1,1]: std 0 -> 0 / (0 + eps) = 0;  size-1 group: mean 0, std 1 -> 1 / (1 + 1e-6)
    expected = torch.tensor([1.1547005, -0.5773503, -0.5773503, 0.0, 0.0, 1.0])
    assert torch.allclose(seq_values(adv), expected, atol=1e-5)
    assert adv[0, 1] == 0.0  # zero outside the mask
    assert torch.allclose(adv[1:, 1], expected[1:], atol=1e-5)
    # 2 of 3 groups have all-equal rewards ([1,1] and the size-1 group)
    assert math.isclose(m["frac_zero_std_groups"].item(), 2 / 3, rel_tol=1e-6)
    # adv_mean over the 11 valid tokens: (1.1547 - 4 * 0.57735 + 2 * 1) / 11 = 0.85470 / 11
    assert math.isclose(m["adv_mean"].item(), (1.1547005 - 4 * 0.5773503 + 2.0) / 11, rel_tol=1e-4)
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())


def test_grpo_scales():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1])
    mask = torch.ones(4, 1, dtype=torch.bool)
    # group means 0.5 and 0.5: centred rewards +-0.5
    # batch: unbiased std of [1, 0, 0, 1] = sqrt(4 * 0.25 / 3) = sqrt(1/3) -> 0.5 / 0.57735 = 0.86603
    adv, _ = ADVANTAGES.get("grpo")(rewards, mask, groups, **{**CALL, "scale": "batch"})
    assert torch.allclose(adv[:, 0], torch.tensor([0.8660254, -0.8660254, -0.8660254, 0.8660254]), atol=1e-5)
    # none / norm_by_std=False / dr_grpo: just +-0.5
    half = torch.tensor([0.5, -0.5, -0.5, 0.5])
    adv, _ = ADVANTAGES.get("grpo")(rewards, mask, groups, **{**CALL, "scale": "none"})
    assert torch.allclose(adv[:, 0], half)
    adv, _ = ADVANTAGES.get("grpo")(rewards, mask, groups, **{**CALL, "norm_by_std": False})
    assert torch.allclose(adv[:, 0], half)
    adv, _ = ADVANTAGES.get("dr_grpo")(rewards, mask, groups, **CALL)
    assert torch.allclose(adv[:, 0], half)
    # group std: each group [1, 0] has unbiased std sqrt(0.5) = 0.70711 -> 0.5 / 0.70711 = 0.70711
    adv, _ = ADVANTAGES.get("grpo")(rewards, mask, groups, **CALL)
    assert torch.allclose(adv[:, 0], torch.tensor([0.7071068, -0.7071068, -0.7071068, 0.7071068]), atol=1e-5)
    with pytest.raises(ValueError):
        ADVANTAGES.get("grpo")(rewards, mask, groups, **{**CALL, "scale": "sequence"})


def test_rloo_by_hand():
    # group [1, 0, 0]: A_0 = 1 - (0 + 0)/2 = 1; A_1 = 0 - (1 + 0)/2 = -0.5; size-1 group keeps A = r = 2
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0])
    adv, _ = ADVANTAGES.get("rloo")(rewards, torch.ones(4, 3, dtype=torch.bool), torch.tensor([0, 0, 0, 1]), **CALL)
    assert torch.allclose(adv, torch.tensor([1.0, -0.5, -0.5, 2.0])[:, None].expand(4, 3))


def test_reinforce_pp_by_hand():
    # row 0: 2 valid tokens, R = 1; row 1: 3 valid tokens, R = 0; token k1 KL 0.5 everywhere, kl_coef 0.2
    # token rewards: row0 [-0.1, 1 - 0.1] -> returns [0.8, 0.9]; row1 [-0.1]*3 -> returns [-0.3, -0.2, -0.1]
    # whiten over the 5 valid values: mean 1.1/5 = 0.22; deviations .58 .68 -.52 -.42 -.32
    # unbiased var = (.3364 + .4624 + .2704 + .1764 + .1024) / 4 = 1.348 / 4 = 0.337
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    kl = torch.full((2, 3), 0.5)
    kl[0, 2] = float("nan")  # padding garbage must not leak
    adv, m = ADVANTAGES.get("reinforce_pp")(
        torch.tensor([1.0, 0.0]), mask, torch.tensor([0, 0]), **{**CALL, "token_kl": kl, "kl_coef": 0.2}
    )
    std = math.sqrt(0.337)
    expected = torch.tensor([[0.58, 0.68, 0.0], [-0.52, -0.42, -0.32]]) / std
    assert torch.allclose(adv, expected, atol=1e-4)
    assert abs(m["adv_mean"].item()) < 1e-6


def test_reinforce_pp_without_kl_puts_the_reward_on_every_token():
    # gamma = 1 and no KL: the return at every valid token is R; rewards [2, 0] on rows of length 1 and 2
    # valid values 2, 0, 0: mean 2/3, unbiased var ((4/3)^2 + 2 (2/3)^2) / 2 = (16/9 + 8/9)/2 = 4/3
    mask = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    adv, _ = ADVANTAGES.get("reinforce_pp")(torch.tensor([2.0, 0.0]), mask, torch.tensor([0, 1]), **CALL)
    s = math.sqrt(4 / 3)
    assert torch.allclose(adv, torch.tensor([[4 / 3 / s, 0.0], [-2 / 3 / s, -2 / 3 / s]]), atol=1e-5)


def test_reinforce_pp_baseline_by_hand():
    # rewards [1, 0 | 1, 1], lengths 2, 1, 1, 1: centred [0.5, -0.5, 0, 0]
    # token values 0.5, 0.5, -0.5, 0, 0: mean 0.1; deviations .4 .4 -.6 -.1 -.1; unbiased var 0.7 / 4 = 0.175
    mask = torch.tensor([[1, 1], [1, 0], [1, 0], [1, 0]], dtype=torch.bool)
    adv, _ = ADVANTAGES.get("reinforce_pp_baseline")(
        torch.tensor([1.0, 0.0, 1.0, 1.0]), mask, torch.tensor([0, 0, 1, 1]), **CALL
    )
    std = math.sqrt(0.175)
    expected = torch.tensor([[0.4, 0.4], [-0.6, 0.0], [-0.1, 0.0], [-0.1, 0.0]]) / std
    assert torch.allclose(adv, expected, atol=1e-4)


def test_combine_group_ids():
    # pairs (0,0) (0,1) (1,0) (1,0) (0,0): three distinct pairs, equal pairs share an id
    ids = combine_group_ids(torch.tensor([0, 0, 1, 1, 0]), torch.tensor([0, 1, 0, 0, 0]))
    assert ids[2] == ids[3] and ids[0] == ids[4]
    assert len({ids[0].item(), ids[1].item(), ids[2].item()}) == 3


@st.composite
def grouped(draw):
    P = draw(st.integers(1, 4))
    G = draw(st.integers(2, 5))
    rewards = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, 3.0]), min_size=P * G, max_size=P * G))
    lengths = draw(st.lists(st.integers(1, 4), min_size=P * G, max_size=P * G))
    return P, G, torch.tensor(rewards, dtype=torch.float64), torch.tensor(lengths)


@settings(max_examples=50, deadline=None)
@given(grouped())
def test_group_advantages_sum_to_zero(data):
    P, G, rewards, lengths = data
    groups = torch.arange(P).repeat_interleave(G)
    mask = torch.arange(4)[None, :] < lengths[:, None]
    for name in ("grpo", "dr_grpo", "rloo"):
        adv, _ = ADVANTAGES.get(name)(rewards, mask, groups, **CALL)
        per_seq = adv[:, 0].reshape(P, G)
        assert torch.allclose(per_seq.sum(-1), torch.zeros(P, dtype=adv.dtype), atol=1e-9), name
        assert (adv[~mask] == 0).all()
        assert ((adv == adv[:, :1]) | ~mask).all()  # constant over a sequence's tokens
    for name in ("reinforce_pp", "reinforce_pp_baseline"):
        adv, _ = ADVANTAGES.get(name)(rewards, mask, groups, **CALL)
        assert abs(adv[mask].mean().item()) < 1e-6, name
        assert (adv[~mask] == 0).all()
