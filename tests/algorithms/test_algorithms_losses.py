"""Policy losses: hand-computed clipped surrogate, GSPO, gradcheck and micro-batch exactness."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.algorithms import AGGREGATIONS, POLICY_LOSSES

KW = dict(clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg="token-mean", agg_norm_len=1)


def _case():
    # tokens (ratio, A): (1.5, +1) (0.5, -1) | (1.1, +2) (5.0, -1); third column is padding with garbage logp
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.1, 5.0, 1.0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 0.0], [2.0, -1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    old = torch.full((2, 3), -1.0, dtype=torch.float64)
    logp = (old + ratios.log()).clone()
    logp[:, 2] = float("-inf")
    return logp.requires_grad_(True), old, adv, mask


def test_ppo_clip_by_hand():
    logp, old, adv, mask = _case()
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **KW)
    # (1.5,+1): max(-1.5, -1.28) = -1.28 (high clipped)   (0.5,-1): max(0.5, 0.8) = 0.8 (low clipped)
    # (1.1,+2): max(-2.2, -2.2) = -2.2                      (5.0,-1): max(5, 1.28) = 5 -> dual clip min(5, 3) = 3
    # token-mean: (-1.28 + 0.8 - 2.2 + 3) / 4 = 0.08
    assert math.isclose(loss.item(), 0.08, abs_tol=1e-12)
    assert m["clip_frac_low"].item() == 0.25 and m["clip_frac_high"].item() == 0.25
    assert m["clip_frac"].item() == 0.5 and m["dual_clip_frac"].item() == 0.25
    assert math.isclose(m["ratio_mean"].item(), (1.5 + 0.5 + 1.1 + 5.0) / 4)
    assert math.isclose(m["ratio_max"].item(), 5.0)
    loss.backward()
    # only the unclipped token (1.1, +2) has a gradient: d(-A rho)/dlogp = -A rho = -2.2, / 4 tokens = -0.55
    expected = torch.tensor([[0.0, 0.0, 0.0], [-0.55, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(logp.grad, expected)


def test_ppo_clip_without_dual_clip_and_other_aggregations():
    logp, old, adv, mask = _case()
    kw = {**KW, "dual_clip": 0.0}
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **kw)
    # token losses -1.28, 0.8, -2.2, 5.0 -> mean 2.32 / 4 = 0.58
    assert math.isclose(loss.item(), 0.58, abs_tol=1e-12) and m["dual_clip_frac"].item() == 0.0
    # seq-mean-token-sum: rows (-1.28 + 0.8) = -0.48 and (-2.2 + 5) = 2.8 -> mean 1.16
    loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **{**kw, "agg": "seq-mean-token-sum"})
    assert math.isclose(loss.item(), 1.16, abs_tol=1e-12)
    # seq-mean-token-sum-norm, L = 4: 1.16 / 4 = 0.29
    loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **{**kw, "agg": "seq-mean-token-sum-norm", "agg_norm_len": 4})
    assert math.isclose(loss.item(), 0.29, abs_tol=1e-12)


def test_loss_is_minus_mean_advantage_at_ratio_one():
    # ratio 1 everywhere (first epoch): token-mean loss = -mean(A); its gradient is -A / N per token, not 0
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, logp.detach(), adv, mask, **KW)
    loss.backward()
    assert loss.item() == 0.0 and m["ratio_mean"].item() == 1.0
    assert torch.allclose(logp.grad, -adv / 4)


def test_gspo_by_hand():
    # one sequence, log ratios 0.1 and 0.3: log s = 0.2, s = e^0.2 = 1.2214
    old = torch.tensor([[-1.0, -2.0, 0.0]], dtype=torch.float64)
    logp = (old + torch.tensor([[0.1, 0.3, 0.0]], dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    kw = dict(clip_low=3e-4, clip_high=4e-4, agg="seq-mean-token-mean")
    s = math.exp(0.2)
    # A = +1: s > 1 + 4e-4 -> clipped: loss -(1 + 4e-4), no gradient
    loss, m = POLICY_LOSSES.get("gspo")(logp, old, torch.ones(1, 3, dtype=torch.float64), mask, **kw)
    assert math.isclose(loss.item(), -(1 + 4e-4), rel_tol=1e-12)
    assert m["clip_frac_high"].item() == 1.0 and math.isclose(m["ratio_mean"].item(), s)
    loss.backward()
    assert torch.all(logp.grad == 0)
    # A = -1: max(s, 1 + 4e-4) = s, unclipped; loss s; gradient per token = s * (1/|o|) = 1.2214 / 2
    logp.grad = None
    loss, m = POLICY_LOSSES.get("gspo")(logp, old, -torch.ones(1, 3, dtype=torch.float64), mask, **kw)
    loss.backward()
    assert math.isclose(loss.item(), s, rel_tol=1e-12) and m["clip_frac"].item() == 0.0
    assert torch.allclose(logp.grad, torch.tensor([[s / 2, s / 2, 0.0]], dtype=torch.float64))


def test_gspo_token_form_equals_sequence_objective():
    # the paper's sequence form: J = mean_i max(-A_i s_i, -A_i clip(s_i)), s_i = exp(mean_t log rho_it)
    g = torch.Generator().manual_seed(0)
    B, T = 5, 6
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    logp = (old + 0.002 * torch.randn(B, T, generator=g, dtype=torch.float64)).requires_grad_(True)
    mask = torch.arange(T)[None] < torch.tensor([6, 3, 1, 4, 5])[:, None]
    a = torch.randn(B, generator=g, dtype=torch.float64)
    adv = a[:, None].expand(B, T)
    loss, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, clip_low=3e-4, clip_high=4e-4, agg="seq-mean-token-mean")
    (grad_token,) = torch.autograd.grad(loss, logp)
    s = torch.exp(((logp - old) * mask).sum(-1) / mask.sum(-1))
    ref = torch.maximum(-a * s, -a * s.clamp(1 - 3e-4, 1 + 4e-4)).mean()
    (grad_seq,) = torch.autograd.grad(ref, logp)
    assert torch.allclose(loss, ref) and torch.allclose(grad_token, grad_seq)


def test_gradcheck_float64():
    # points away from the clip kinks (ratios near 1 or far beyond the clip), so finite differences are valid
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(3, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([[0.05, -0.05, 0.7, -0.9], [0.01, 0.02, -0.03, 0.0], [1.5, 0.04, -0.06, 0.1]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, -2.0, 1.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    logp = (old + shift).requires_grad_(True)
    for agg in AGGREGATIONS:
        f = lambda x: POLICY_LOSSES.get("ppo_clip")(x, old, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg=agg, agg_norm_len=5)[0]
        assert torch.autograd.gradcheck(f, (logp,))
    # GSPO: the token form's gradient is the true derivative of its value only when A is constant over a
    # sequence (with token-level A it is, by design, the GSPO-token surrogate gradient)
    small = (old + shift * 0.1).requires_grad_(True)  # sequence ratios near 1, inside and outside a 0.01 clip
    seq_adv = adv[:, :1].expand_as(adv)
    for agg in ("seq-mean-token-mean", "token-mean"):
        f = lambda x: POLICY_LOSSES.get("gspo")(x, old, seq_adv, mask, clip_low=0.01, clip_high=0.01, agg=agg)[0]
        assert torch.autograd.gradcheck(f, (small,))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 2**31 - 1), st.sampled_from(["ppo_clip", "gspo"]))
def test_micro_batches_add_up_to_the_full_batch_loss_and_gradient(B, T, seed, name):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=torch.float64)
    logp = (old + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)).requires_grad_(True)
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = torch.rand(B, T, generator=g) < 0.7
    cut = int(torch.randint(1, B, (1,), generator=g))
    for agg in AGGREGATIONS:
        kw = dict(clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg=agg, agg_norm_len=T)
        full, _ = POLICY_LOSSES.get(name)(logp, old, adv, mask, **kw)
        (g_full,) = torch.autograd.grad(full, logp)
        counts = dict(num_seqs=int(mask.any(-1).sum()), num_tokens=int(mask.sum()))
        parts = [
            POLICY_LOSSES.get(name)(logp[a:b], old[a:b], adv[a:b], mask[a:b], **kw, **counts)[0]
            for a, b in ((0, cut), (cut, B))
        ]
        (g_parts,) = torch.autograd.grad(parts[0] + parts[1], logp)
        assert torch.allclose(parts[0] + parts[1], full, atol=1e-12), agg
        assert torch.allclose(g_parts, g_full, atol=1e-12), agg


@settings(max_examples=40, deadline=None)
@given(st.floats(-5, 5), st.floats(-3, 3), st.floats(0.01, 0.5), st.floats(0.01, 0.5))
def test_clipped_token_loss_bounds(log_ratio, a, clip_low, clip_high):
    # the clipped surrogate is a pessimistic bound: L >= -A rho and L >= -A clip(rho), and never rewards a
    # positive-advantage token beyond 1 + clip_high: L >= -A (1 + clip_high) when A > 0
    old = torch.zeros(1, 1, dtype=torch.float64)
    logp = torch.tensor([[log_ratio]], dtype=torch.float64)
    adv = torch.tensor([[a]], dtype=torch.float64)
    mask = torch.ones(1, 1, dtype=torch.bool)
    loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, clip_low=clip_low, clip_high=clip_high)
    rho = math.exp(log_ratio)
    assert loss.item() >= -a * rho - 1e-12
    assert loss.item() >= -a * min(max(rho, 1 - clip_low), 1 + clip_high) - 1e-12
    if a > 0:
        assert loss.item() >= -a * (1 + clip_high) - 1e-12


def test_every_registered_function_takes_the_trainer_keywords_and_survives_an_empty_mask():
    # the trainer calls each function of a kind with the same keywords; an all-masked micro-batch must give
    # a finite 0 loss (0 / max(count, 1)) and finite metrics
    from rlvr.algorithms import ADVANTAGES

    B, T = 4, 3
    mask = torch.zeros(B, T, dtype=torch.bool)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    for name in ADVANTAGES:
        adv, m = ADVANTAGES.get(name)(rewards, mask, torch.tensor([0, 0, 1, 1]), token_kl=torch.zeros(B, T),
                                      kl_coef=0.1, norm_by_std=True, scale="group", eps=1e-6,
                                      values=torch.zeros(B, T), gamma=1.0, lam=1.0)
        assert adv.shape == (B, T) and (adv == 0).all() and all(torch.isfinite(v).all() for v in m.values()), name
    logp = torch.zeros(B, T, requires_grad=True)
    for name in POLICY_LOSSES:
        for agg in AGGREGATIONS:
            loss, m = POLICY_LOSSES.get(name)(logp, logp.detach(), torch.ones(B, T), mask, clip_low=0.2,
                                              clip_high=0.28, dual_clip=3.0, agg=agg, agg_norm_len=3,
                                              num_seqs=None, num_tokens=None)
            assert loss.item() == 0.0 and all(torch.isfinite(v) and v.dim() == 0 for v in m.values()), (name, agg)
