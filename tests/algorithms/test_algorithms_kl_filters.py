"""KL estimators, the adaptive KL controller, batch filters and forking-token selection."""

import math

import pytest
import torch

from rlvr.algorithms import KL_ESTIMATORS, adaptive_kl_coef, forking_token_mask, overlong_mask, zero_variance_groups


def test_kl_estimators_by_hand():
    # pi = 0.5, pi_ref = 0.25: log(pi/pi_ref) = log 2 = 0.693147
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    l2 = math.log(2)
    assert math.isclose(KL_ESTIMATORS.get("k1")(logp, ref).item(), l2, rel_tol=1e-6)
    assert math.isclose(KL_ESTIMATORS.get("k2")(logp, ref).item(), 0.5 * l2**2, rel_tol=1e-6)  # 0.240227
    # k3: r = pi_ref/pi = 0.5 -> r - log r - 1 = 0.5 + 0.693147 - 1 = 0.193147
    assert math.isclose(KL_ESTIMATORS.get("k3")(logp, ref).item(), 0.5 + l2 - 1, rel_tol=1e-6)
    assert KL_ESTIMATORS.get("low_var_kl") is KL_ESTIMATORS.get("k3")
    # identical policies: every estimator is 0
    for name in KL_ESTIMATORS:
        assert KL_ESTIMATORS.get(name)(logp, logp).item() == 0.0


def test_k3_clamps_like_verl():
    # ref - logp = 30 is clamped to 20: exp(20) - 21 ~ 4.85e8, then clamped to 10
    # ref - logp = -30 -> -20: exp(-20) + 20 - 1 ~ 19 -> clamped to 10
    logp = torch.tensor([[0.0, 0.0]])
    ref = torch.tensor([[30.0, -30.0]])
    assert torch.equal(KL_ESTIMATORS.get("k3")(logp, ref), torch.tensor([[10.0, 10.0]]))


def test_adaptive_kl_coef_by_hand():
    # observed 0.2 vs target 0.1: error 1 clipped to 0.2; 0.1 * (1 + 0.2 * 100/1000) = 0.102
    assert math.isclose(adaptive_kl_coef(0.1, 0.2, 0.1, 1000, 100), 0.102)
    # observed 0.09: error -0.1; 0.1 * (1 - 0.1 * 0.1) = 0.099
    assert math.isclose(adaptive_kl_coef(0.1, 0.09, 0.1, 1000, 100), 0.099)
    # on target: unchanged; tensors are accepted for the observed KL
    assert math.isclose(adaptive_kl_coef(0.1, torch.tensor(0.1), 0.1, 1000, 100), 0.1, rel_tol=1e-6)  # fp32 0.1
    with pytest.raises(ValueError):
        adaptive_kl_coef(0.1, 0.1, 0.0, 1000, 100)


def test_zero_variance_groups():
    # keep groups whose rewards differ: [1,0,1] yes, [1,1,1] no, [0,0,0] no, [.5,.5,.2] yes
    rewards = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.2]])
    assert zero_variance_groups(rewards).tolist() == [True, False, False, True]


def test_overlong_mask():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out = overlong_mask(mask, torch.tensor([False, True]))
    assert out.tolist() == [[True, True, False], [False, False, False]]


def test_forking_token_mask_by_hand():
    # 7 valid tokens (the padding has the highest entropy 5.0 and must not be picked)
    entropy = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.7, 0.2, 0.8, 5.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    # k = ceil(0.3 * 7) = ceil(2.1) = 3 -> entropies 0.9, 0.8, 0.7
    kept, m = forking_token_mask(entropy, mask, 0.3, return_metrics=True)
    assert kept.tolist() == [[False, True, False, False], [True, False, True, False]]
    assert m["forking_tokens_kept"].item() == 3 and math.isclose(m["forking_frac_kept"].item(), 3 / 7, rel_tol=1e-6)
    assert math.isclose(m["forking_entropy_threshold"].item(), 0.7, rel_tol=1e-6)
    # top_frac 1 keeps the mask as is; the plain call returns only the mask
    assert torch.equal(forking_token_mask(entropy, mask, 1.0), mask)
    with pytest.raises(ValueError):
        forking_token_mask(entropy, mask, 0.0)


def test_forking_token_mask_exact_k_despite_float_rounding_and_ties():
    # 0.2 * 15 = 3.0000000000000004 in floating point; ceil must still give 3, and ties must not add more
    entropy = torch.ones(3, 5)
    mask = torch.ones(3, 5, dtype=torch.bool)
    assert forking_token_mask(entropy, mask, 0.2).sum().item() == 3
    # 0.2 * 10 = 2 exactly -> 2 tokens; ceil(0.25 * 10) = 3
    assert forking_token_mask(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), 0.2).sum().item() == 2
    assert forking_token_mask(torch.rand(2, 5), torch.ones(2, 5, dtype=torch.bool), 0.25).sum().item() == 3
