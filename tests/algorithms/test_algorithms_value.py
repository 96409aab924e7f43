"""GAE, token rewards, the clipped value loss and explained variance against hand-computed values."""

import pytest
import torch

from rlvr.algorithms import ADVANTAGES, explained_variance, gae, masked_whiten, token_rewards, value_loss


def test_token_rewards_put_the_outcome_on_the_last_model_token_and_the_kl_on_every_one():
    rewards = torch.tensor([1.0, 0.5])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)  # row 1: an observation hole at t = 1
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.9], [0.1, 0.5, 0.2, 0.4]])
    got = token_rewards(rewards, mask, kl, kl_coef=0.5)
    want = torch.tensor([[-0.05, -0.1, 1 - 0.15, 0.0], [-0.05, 0.0, -0.1, 0.5 - 0.2]], dtype=torch.float64)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(token_rewards(rewards, mask), torch.tensor(
        [[0, 0, 1.0, 0], [0, 0, 0, 0.5]], dtype=torch.float64))


def test_gae_by_hand_with_different_lengths_and_a_hole():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 7.0, 0.0, 1.0]])  # the 7 sits in the hole: never read
    v = torch.tensor([[0.5, 0.4, 0.6, 99.0], [0.2, 99.0, 0.3, 0.5]])
    adv, ret = gae(r, v, mask, gamma=0.9, lam=0.8)
    # row 0: A2 = 1 - 0.6 = 0.4; A1 = (0.9*0.6 - 0.4) + 0.72*0.4 = 0.428; A0 = (0.9*0.4 - 0.5) + 0.72*0.428
    # row 1: A3 = 1 - 0.5; A2 = (0.9*0.5 - 0.3) + 0.72*0.5 = 0.51; hole; A0 = (0.9*0.3 - 0.2) + 0.72*0.51
    want_adv = torch.tensor([[0.16816, 0.428, 0.4, 0.0], [0.4372, 0.0, 0.51, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(adv, want_adv)
    torch.testing.assert_close(ret, torch.tensor([[0.66816, 0.828, 1.0, 0.0], [0.6372, 0.0, 0.81, 1.0]],
                                                 dtype=torch.float64))


def test_a_hole_is_invisible_to_gae():
    """A row with observation tokens gives its model tokens the advantages of the same row with them removed."""
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 1]], dtype=torch.bool)
    r, v = torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)
    adv, ret = gae(r, v, mask, gamma=0.95, lam=0.9)
    keep = mask[0]
    dense_adv, dense_ret = gae(r[:, keep], v[:, keep], torch.ones(1, int(keep.sum()), dtype=torch.bool),
                               gamma=0.95, lam=0.9)
    torch.testing.assert_close(adv[:, keep], dense_adv)
    torch.testing.assert_close(ret[:, keep], dense_ret)
    assert adv[:, ~keep].abs().sum() == 0 and ret[:, ~keep].abs().sum() == 0


def test_gamma_lambda_one_is_the_monte_carlo_return_minus_the_value():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    rewards = torch.tensor([2.0, -1.0])
    v = torch.tensor([[0.5, 1.0, 1.5], [0.25, -0.5, 3.0]])
    adv, ret = gae(token_rewards(rewards, mask), v, mask)
    torch.testing.assert_close(ret, torch.tensor([[2.0, 2, 2], [-1, -1, 0]], dtype=torch.float64))
    torch.testing.assert_close(adv, torch.tensor([[1.5, 1.0, 0.5], [-1.25, -0.5, 0]], dtype=torch.float64))


def test_the_gae_estimator_whitens_over_the_batch_and_returns_the_returns():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    rewards = torch.tensor([2.0, -1.0])
    v = torch.tensor([[0.5, 1.0, 1.5], [0.25, -0.5, 3.0]])
    adv, m = ADVANTAGES.get("gae")(rewards, mask, torch.tensor([0, 0]), values=v)
    raw, ret = gae(token_rewards(rewards, mask), v, mask)
    torch.testing.assert_close(adv, masked_whiten(raw, mask, eps=1e-8).float())
    torch.testing.assert_close(m["returns"], ret.float())
    assert float(m["returns_mean"]) == pytest.approx((2 * 3 - 1 * 2) / 5)
    unwhitened, _ = ADVANTAGES.get("gae")(rewards, mask, torch.tensor([0, 0]), values=v, norm_by_std=False)
    torch.testing.assert_close(unwhitened, raw.float())
    with pytest.raises(ValueError, match="critic"):
        ADVANTAGES.get("gae")(rewards, mask, torch.tensor([0, 0]))


def test_value_loss_by_hand_clipped_and_not():
    values = torch.tensor([[1.0, 2.0, 5.0]], requires_grad=True)
    old = torch.tensor([[0.5, 2.0, 0.0]])
    returns = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    loss, m = value_loss(values, old, returns, mask, clip_value=0.2)
    # token 0: V - old = 0.5 -> V_clip = 0.7; (1 - 2)^2 = 1 < (0.7 - 2)^2 = 1.69. token 1: both 1.
    assert float(loss.detach()) == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    assert float(m["value_clip_frac"]) == pytest.approx(0.5)
    loss.backward()  # token 0's larger term is the clipped one, constant in V: no gradient; token 1: (V - G) / 2
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, 0.5, 0.0]]))
    plain, m0 = value_loss(values, old, returns, mask, clip_value=0.0, num_tokens=4)
    assert float(plain) == pytest.approx(0.5 * (1.0 + 1.0) / 4) and float(m0["value_clip_frac"]) == 0.0


def test_explained_variance_by_hand():
    mask = torch.tensor([[1, 1, 1, 1]], dtype=torch.bool)
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert float(explained_variance(g, g, mask)) == pytest.approx(1.0)
    assert float(explained_variance(torch.full_like(g, 7.0), g, mask)) == pytest.approx(0.0)
    v = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # G - V = (0, 0, 0, -2): var 1, var(G) = 5/3
    assert float(explained_variance(v, g, mask)) == pytest.approx(1 - 1.0 / (5 / 3))
