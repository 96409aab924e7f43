"""Decoupled PPO and the staleness bound (rlvr/algorithms/off_policy.py) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.losses import ppo_clip
from rlvr.algorithms.off_policy import decoupled_ppo_loss, staleness, staleness_histogram, within_staleness

LOGP = torch.log(torch.tensor([[0.6, 0.3]]))  # pi_theta
PROX = torch.log(torch.tensor([[0.5, 0.5]]))  # pi_prox: ratios r = 1.2, 0.6
BEHAV = torch.log(torch.tensor([[0.25, 0.5]]))  # mu: pi_prox / mu = 2, 1
ADV = torch.tensor([[1.0, -1.0]])
MASK = torch.ones(1, 2, dtype=torch.bool)


def test_decoupled_ppo_by_hand():
    # token 1: r = 1.2 (at the clip edge), A = 1: -min(1.2, 1.2) = -1.2, w = min(2, 2) = 2 -> -2.4
    # token 2: r = 0.6, A = -1: -min(-0.6, -0.8) = 0.8, w = 1 -> 0.8;   token-mean: (-2.4 + 0.8) / 2 = -0.8
    loss, m = decoupled_ppo_loss(LOGP.clone().requires_grad_(), PROX, BEHAV, ADV, MASK, is_mode="token_truncate",
                                 is_cap=2.0)
    assert float(loss) == pytest.approx(-0.8, abs=1e-6)
    assert float(m["is_weight_mean"]) == pytest.approx(1.5, abs=1e-6)
    assert float(m["logprob_diff_max"]) == pytest.approx(math.log(2), abs=1e-6)


def test_decoupled_ppo_truncates_and_masks_the_behaviour_weight():
    # cap 1.5, truncate: w1 = 1.5 -> (-1.8 + 0.8) / 2 = -0.5
    loss, _ = decoupled_ppo_loss(LOGP, PROX, BEHAV, ADV, MASK, is_mode="token_truncate", is_cap=1.5)
    assert float(loss) == pytest.approx(-0.5, abs=1e-6)
    # cap 1.5, mask: token 1 leaves the loss -> 0.8 / 1
    loss, m = decoupled_ppo_loss(LOGP, PROX, BEHAV, ADV, MASK, is_mode="token_mask", is_cap=1.5)
    assert float(loss) == pytest.approx(0.8, abs=1e-6)
    assert float(m["is_clipped_frac"]) == pytest.approx(0.5)


def test_the_gradient_is_weighted_by_pi_prox_over_mu():
    # token 2 with A = 1 (r = 0.6 is not clipped for A > 0): d/dlogp2 of (w2 * -r2) / 2 = -w2 * 0.6 / 2 = -0.3 with
    # w2 = 1; with mu2 = 0.25 (w2 = 2): -0.6
    behav = torch.log(torch.tensor([[0.25, 0.25]]))
    for mu, want in ((BEHAV, -0.3), (behav, -0.6)):
        logp = LOGP.clone().requires_grad_()
        loss, _ = decoupled_ppo_loss(logp, PROX, mu, torch.ones(1, 2), MASK, is_mode="token_truncate", is_cap=4.0)
        loss.backward()
        assert float(logp.grad[0, 1]) == pytest.approx(want, abs=1e-6)


def test_decoupled_ppo_reduces_to_ppo_when_mu_is_pi_prox():
    want, _ = ppo_clip(LOGP, PROX, ADV, MASK)
    for mode in ("token_truncate", "token_mask", "sequence_truncate", "none"):
        got, _ = decoupled_ppo_loss(LOGP, PROX, PROX, ADV, MASK, is_mode=mode, is_cap=2.0)
        assert torch.equal(got, want), mode


def test_staleness_and_the_bound_per_sample():
    versions = torch.tensor([3, 2, 0, 1])
    assert staleness(versions, 3).tolist() == [0, 1, 3, 2]
    assert within_staleness(versions, 3, 1).tolist() == [True, True, False, False]
    assert within_staleness(versions, 3, 0).tolist() == [True, False, False, False]
    assert staleness_histogram(staleness(versions, 3), 2) == {
        "async/staleness_hist_0": 1.0, "async/staleness_hist_1": 1.0, "async/staleness_hist_2": 1.0}
    with pytest.raises(ValueError, match="newer"):
        staleness(torch.tensor([4]), 3)
    with pytest.raises(ValueError):
        within_staleness(versions, 3, -1)
