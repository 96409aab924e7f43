"""Clip-Cov and KL-Cov (Cui et al. 2025, arXiv:2505.22617) against hand-computed values (ALGORITHMS.md §20)."""

import math

import pytest
import torch

from rlvr.algorithms import POLICY_LOSSES, clip_cov, kl_cov, ppo_clip, token_covariance


def test_token_covariance_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0, 9.0]])
    adv = torch.tensor([[1.0, 1.0, -2.0, 5.0]])
    mask = torch.tensor([[True, True, True, False]])
    # valid: A = 1, 1, -2 (mean 0); logp = -1, -2, -3 (mean -2) -> cov = 1*1, 1*0, -2*-1 = 1, 0, 2; masked 0
    assert torch.allclose(token_covariance(logp, adv, mask), torch.tensor([[1.0, 0.0, 2.0, 0.0]]))
    # clip_cov's eps 1e-8 in the denominator barely moves it
    assert torch.allclose(token_covariance(logp, adv, mask, eps=1e-8), torch.tensor([[1.0, 0.0, 2.0, 0.0]]))


def test_kl_cov_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -0.5]], requires_grad=True)
    old = torch.tensor([[-1.5, -2.0, -2.0, -0.5]])
    adv = torch.tensor([[1.0, 1.0, -2.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    # cov = 1, 0, 2 -> k = max(1, int(0.5 * 3)) = 1 picks token 2; rho = e^0.5, 1, e^-1
    loss, m = kl_cov(logp, old, adv, mask, cov_ratio=0.5, kl_cov_coef=0.3)
    rho = [math.exp(0.5), 1.0, math.exp(-1.0)]
    expected = (-1 * rho[0] - 1 * rho[1] + 2 * rho[2] + 0.3 * 1.0) / 3  # no clipping at all, token-mean
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert m["cov_selected_frac"].item() == pytest.approx(1 / 3)
    assert m["cov_mean"].item() == pytest.approx(1.0)
    # the unclipped surrogate: rho = e^0.5 > 1.2 still carries the gradient -A rho (ppo_clip would cut it)
    loss.backward()
    assert logp.grad[0, 0].item() == pytest.approx(-rho[0] / 3, rel=1e-6)
    lp2 = logp.detach().clone().requires_grad_(True)
    ppo_clip(lp2, old, adv, mask)[0].backward()
    assert lp2.grad[0, 0].item() == 0.0


def test_kl_cov_picks_the_top_covariance_tokens():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    adv = torch.tensor([[2.0, 1.0, -1.0, -2.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    # cov = (2)(1.5), (1)(0.5), (-1)(-0.5), (-2)(-1.5) = 3, 0.5, 0.5, 3: k = 2 picks tokens 0 and 3
    base, _ = kl_cov(logp, logp, adv, mask, cov_ratio=0.5, kl_cov_coef=0.0)
    old = logp - torch.tensor([[0.1, 0.2, 0.3, 0.4]])  # |logp - old| = 0.1 .. 0.4
    with_kl, _ = kl_cov(logp, old, adv, mask, cov_ratio=0.5, kl_cov_coef=1.0)
    without, _ = kl_cov(logp, old, adv, mask, cov_ratio=0.5, kl_cov_coef=0.0)
    assert (with_kl - without).item() == pytest.approx((0.1 + 0.4) / 4, rel=1e-5)
    assert base.item() == pytest.approx(0.0)  # rho = 1, mean(A) = 0


def test_clip_cov_zeroes_the_picked_in_band_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    old = logp.detach().clone()
    adv = torch.tensor([[1.0, 1.0, -2.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    # cov = 1, 0, 2; band (1.5, 5) holds only token 2; n = max(int(0.1 * 3), 1) = 1 -> token 2 is picked
    loss, m = clip_cov(logp, old, adv, mask, cov_ratio=0.1, cov_lb=1.5, cov_ub=5.0,
                       generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx((-1.0 - 1.0 + 0.0) / 3)  # the picked token's loss is 0, still counted
    assert m["cov_selected_frac"].item() == pytest.approx(1 / 3)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-1 / 3, -1 / 3, 0.0])


def test_clip_cov_skips_tokens_already_clipped_and_draws_from_the_generator():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    adv = torch.tensor([[2.0, 1.0, -1.0, -2.0]])  # cov = 3, 0.5, 0.5, 3 (as above)
    mask = torch.ones(1, 4, dtype=torch.bool)
    # token 0: rho = e^1 > 1.2 with A > 0 -> clipped already (pg2 > pg1), so only token 3 is in the band (2, 5)
    old = logp - torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    loss, m = clip_cov(logp, old, adv, mask, cov_ratio=0.25, cov_lb=2.0, cov_ub=5.0,
                       generator=torch.Generator().manual_seed(0))
    expected = (-2.0 * 1.2 - 1.0 + 1.0 + 0.0) / 4  # token 0 clipped at 1.2, token 3 zeroed
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # two in-band candidates, one pick: the choice follows the generator and is reproducible
    picks = set()
    for seed in range(8):
        _, m1 = clip_cov(logp, logp, adv, mask, cov_ratio=0.25, cov_lb=2.0, cov_ub=5.0,
                         generator=torch.Generator().manual_seed(seed))
        l1, _ = clip_cov(logp, logp, adv, mask, cov_ratio=0.25, cov_lb=2.0, cov_ub=5.0,
                         generator=torch.Generator().manual_seed(seed))
        l2, _ = clip_cov(logp, logp, adv, mask, cov_ratio=0.25, cov_lb=2.0, cov_ub=5.0,
                         generator=torch.Generator().manual_seed(seed))
        assert l1.item() == l2.item()
        picks.add(round(l1.item(), 6))  # zeroing token 0 (A = 2) or token 3 (A = -2) gives -(-2)/4 or -(2)/4
    assert picks == {0.5, -0.5}


def test_no_candidate_leaves_plain_ppo_clip():
    torch.manual_seed(0)
    logp, old = torch.randn(3, 5), torch.randn(3, 5)
    adv, mask = torch.randn(3, 5), torch.rand(3, 5) > 0.3
    a, _ = clip_cov(logp, old, adv, mask, cov_lb=100.0, cov_ub=200.0)
    b, _ = ppo_clip(logp, old, adv, mask)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_registered():
    assert POLICY_LOSSES.get("clip_cov") is clip_cov and POLICY_LOSSES.get("kl_cov") is kl_cov


def test_config_checks():
    from rlvr.config import ConfigError, load_config

    assert load_config(None, ["algorithm=kl_cov"]).algorithm.cov_ratio == 2e-3
    for overrides, needle in [(["algorithm.loss=clip_cov", "algorithm.cov_ratio=0"], "cov_ratio"),
                              (["algorithm.loss=clip_cov", "algorithm.cov_lb=5", "algorithm.cov_ub=1"], "cov_lb"),
                              (["algorithm=luffy", "algorithm.loss=kl_cov", "data.teacher_field=solution"],
                               "guidance")]:
        with pytest.raises(ConfigError, match=needle):
            load_config(None, overrides)
