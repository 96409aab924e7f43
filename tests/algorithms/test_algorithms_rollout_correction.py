"""Rollout correction (TIS / MIS, Yao et al. 2025): hand-computed weights, keep masks, metrics, and the
is_weights keyword of the policy losses."""

import math

import pytest
import torch

from rlvr.algorithms import POLICY_LOSSES, ROLLOUT_IS_MODES, rollout_is_weights

L2 = math.log(2.0)
F64 = torch.float64


def _case(dtype=F64):
    # probabilities (trainer pi_old, sampler pi_rollout) per token; column 2 of row 0 is padding with garbage
    #   row 0: (0.5, 0.25) rho = 2 (exactly C = 2)   (0.25, 0.5) rho = 0.5     | pad: old NaN, rollout -inf
    #   row 1: (0.5, 0.125) rho = 4 (> C)           (0.5, 0.5) rho = 1         (0.25, 0.25) rho = 1
    # |old - rollout| = ln2, ln2 | 2 ln2, 0, 0;   sequence log-ratio sums: row 0: ln2 - ln2 = 0 -> rho_0 = 1,
    #                                                                        row 1: 2 ln2       -> rho_1 = 4
    old = torch.tensor([[0.5, 0.25, float("nan")], [0.5, 0.5, 0.25]], dtype=F64).log()
    rollout = torch.tensor([[0.25, 0.5, 0.0], [0.125, 0.5, 0.25]], dtype=F64).log()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    return old.to(dtype), rollout.to(dtype), mask


def _close(t, expected, tol=1e-12):
    return torch.allclose(t, torch.tensor(expected, dtype=t.dtype), rtol=tol, atol=tol)


# expected weights / keep per mode for _case with C = 2 (token-level metrics shared by every mode:
# logprob_diff_mean = 4 ln2 / 5, logprob_diff_max = 2 ln2, is_ratio_mean = (2 + 0.5 + 4 + 1 + 1) / 5 = 1.7)
EXPECTED = {
    # mode: (weights, keep, is_weight_mean, is_clipped_frac)
    "none": ([[1, 1, 0], [1, 1, 1]], [[1, 1, 0], [1, 1, 1]], 1.0, 0.0),
    # min(rho, 2): 2 stays 2 (exactly C, not clipped), 4 -> 2; mean (2 + 0.5 + 2 + 1 + 1) / 5 = 1.3; 1 of 5 clipped
    "token_truncate": ([[2, 0.5, 0], [2, 1, 1]], [[1, 1, 0], [1, 1, 1]], 1.3, 0.2),
    # rho <= 2 kept (2 is kept), 4 -> 0 and leaves keep; mean (2 + 0.5 + 0 + 1 + 1) / 5 = 0.9
    "token_mask": ([[2, 0.5, 0], [0, 1, 1]], [[1, 1, 0], [0, 1, 1]], 0.9, 0.2),
    # rho_0 = 1 on row 0, rho_1 = 4 -> 2 on all 3 tokens of row 1; mean (1 + 1 + 2 + 2 + 2) / 5 = 1.6; 3/5 clipped
    "sequence_truncate": ([[1, 1, 0], [2, 2, 2]], [[1, 1, 0], [1, 1, 1]], 1.6, 0.6),
    # row 1 (rho_1 = 4 > 2) is rejected entirely; mean (1 + 1) / 5 = 0.4
    "sequence_mask": ([[1, 1, 0], [0, 0, 0]], [[1, 1, 0], [0, 0, 0]], 0.4, 0.6),
}


def test_modes_tuple():
    assert ROLLOUT_IS_MODES == ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
    assert set(EXPECTED) == set(ROLLOUT_IS_MODES)


@pytest.mark.parametrize("mode", ROLLOUT_IS_MODES)
def test_every_mode_by_hand(mode):
    old, rollout, mask = _case()
    w, keep, m = rollout_is_weights(old, rollout, mask, mode, cap=2.0)
    weights, kept, weight_mean, clipped = EXPECTED[mode]
    assert w.dtype == F64 and w.shape == (2, 3) and keep.dtype == torch.bool
    assert _close(w, weights), (mode, w)
    assert torch.equal(keep, torch.tensor(kept, dtype=torch.bool)), mode
    assert torch.isfinite(w).all() and w[0, 2] == 0  # padding garbage (NaN, -inf) does not leak
    assert set(m) == {"logprob_diff_mean", "logprob_diff_max", "is_ratio_mean", "is_weight_mean", "is_clipped_frac"}
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())
    assert math.isclose(m["logprob_diff_mean"].item(), 4 * L2 / 5, rel_tol=1e-12)
    assert math.isclose(m["logprob_diff_max"].item(), 2 * L2, rel_tol=1e-12)
    assert math.isclose(m["is_ratio_mean"].item(), 1.7, rel_tol=1e-12)  # token rho, before truncation, every mode
    assert math.isclose(m["is_weight_mean"].item(), weight_mean, rel_tol=1e-12)
    assert math.isclose(m["is_clipped_frac"].item(), clipped, rel_tol=1e-12)


def test_ratio_exactly_at_cap_is_kept_and_above_is_cut():
    # log(0.5) - log(0.25) = ln2 exactly in floating point, so rho = 2.0 exactly
    old = torch.tensor([[0.5, 0.5]], dtype=F64).log()
    rollout = torch.tensor([[0.25, 0.2]], dtype=F64).log()  # rho = 2 (= C) and 2.5 (> C)
    mask = torch.ones(1, 2, dtype=torch.bool)
    w, keep, m = rollout_is_weights(old, rollout, mask, "token_truncate", cap=2.0)
    assert w[0, 0].item() == 2.0 and w[0, 1].item() == 2.0 and keep.all()
    assert m["is_clipped_frac"].item() == 0.5  # only the 2.5 was truncated
    w, keep, m = rollout_is_weights(old, rollout, mask, "token_mask", cap=2.0)
    assert w[0, 0].item() == 2.0 and w[0, 1].item() == 0.0
    assert keep.tolist() == [[True, False]] and m["is_clipped_frac"].item() == 0.5
    # a larger cap keeps both untouched: 2 and 2.5
    w, _, m = rollout_is_weights(old, rollout, mask, "token_truncate", cap=3.0)
    assert _close(w, [[2.0, 2.5]]) and m["is_clipped_frac"].item() == 0.0
    # cap = inf: plain (untruncated) importance sampling
    w, keep, _ = rollout_is_weights(old, rollout, mask, "token_mask", cap=math.inf)
    assert _close(w, [[2.0, 2.5]]) and keep.all()
    # sequence at exactly C: one token of rho 2 and one of rho 1 -> rho_i = 2, kept by sequence_mask
    rollout = torch.tensor([[0.25, 0.5]], dtype=F64).log()
    w, keep, m = rollout_is_weights(old, rollout, mask, "sequence_mask", cap=2.0)
    assert w.tolist() == [[2.0, 2.0]] and keep.all() and m["is_clipped_frac"].item() == 0.0


def test_sequence_ratio_is_the_product_not_the_geometric_mean():
    # two tokens of rho 2 each: every token is at C (kept), but the sequence ratio is 2 * 2 = 4 > C
    # (sum of the token log ratios 2 ln2, not their mean ln2); a third, padded token must not enter the sum
    old = torch.tensor([[0.5, 0.5, 0.9]], dtype=F64).log()
    rollout = torch.tensor([[0.25, 0.25, 0.1]], dtype=F64).log()  # pad would add ln 9
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    w, keep, _ = rollout_is_weights(old, rollout, mask, "token_mask", cap=2.0)
    assert w.tolist() == [[2.0, 2.0, 0.0]] and keep.tolist() == [[True, True, False]]
    w, keep, m = rollout_is_weights(old, rollout, mask, "sequence_truncate", cap=2.0)
    assert w.tolist() == [[2.0, 2.0, 0.0]] and keep.tolist() == [[True, True, False]]
    assert m["is_clipped_frac"].item() == 1.0  # both valid tokens carry the truncated sequence weight
    w, keep, _ = rollout_is_weights(old, rollout, mask, "sequence_truncate", cap=5.0)
    assert _close(w, [[4.0, 4.0, 0.0]])  # rho_i = 4 broadcast over the sequence's valid tokens (9 * 4 if pad leaked)
    w, keep, _ = rollout_is_weights(old, rollout, mask, "sequence_mask", cap=3.0)
    assert w.tolist() == [[0.0, 0.0, 0.0]] and not keep.any()


def test_log_ratios_are_clamped_to_20():
    # token log ratio 30 -> 20; a sequence of two tokens of log ratio 15 sums to 30 -> clamped to 20
    old = torch.tensor([[0.0, -1.0], [0.0, 0.0]], dtype=F64)
    rollout = torch.tensor([[-30.0, -1.0], [-15.0, -15.0]], dtype=F64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    w, _, m = rollout_is_weights(old, rollout, mask, "token_mask", cap=math.inf)
    assert _close(w, [[math.exp(20), 1.0], [math.exp(15), math.exp(15)]])
    assert math.isclose(m["logprob_diff_max"].item(), 30.0)  # the diagnostic reports the raw difference
    w, _, _ = rollout_is_weights(old, rollout, mask, "sequence_truncate", cap=math.inf)
    assert _close(w, [[math.exp(20)] * 2, [math.exp(20)] * 2])
    assert torch.isfinite(w).all()


def test_empty_mask_gives_zero_metrics_and_no_nan():
    old, rollout, _ = _case()
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for mode in ROLLOUT_IS_MODES:
        w, keep, m = rollout_is_weights(old, rollout, mask, mode)
        assert (w == 0).all() and not keep.any(), mode
        assert all(v.item() == 0.0 for v in m.values()), (mode, m)
    # a zero-size batch does not crash either
    empty = torch.zeros(0, 3, dtype=F64)
    w, keep, m = rollout_is_weights(empty, empty, torch.zeros(0, 3, dtype=torch.bool), "token_truncate")
    assert w.shape == (0, 3) and all(v.item() == 0.0 for v in m.values())


def test_fully_masked_row_in_a_sequence_mode():
    # a row with no valid token gets weight 0 and stays out of keep; the other row is unaffected (rho_0 = 2)
    old = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=F64).log()
    rollout = torch.tensor([[0.25, 0.5], [0.01, 0.01]], dtype=F64).log()
    mask = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)
    w, keep, m = rollout_is_weights(old, rollout, mask, "sequence_mask", cap=2.0)
    assert w.tolist() == [[2.0, 2.0], [0.0, 0.0]] and keep.tolist() == [[True, True], [False, False]]
    assert m["is_weight_mean"].item() == 2.0


def test_float32_and_bf16_inputs():
    old, rollout, mask = _case(torch.float32)
    w, keep, m = rollout_is_weights(old, rollout, mask, "token_mask", cap=2.0)
    assert w.dtype == torch.float32 and w[0, 0].item() == 2.0  # rho = C exactly in float32 too: kept
    assert _close(w, EXPECTED["token_mask"][0], tol=1e-6)
    # bf16 log-probs are promoted to float32 before the sums (0.5 and 0.25 are exact in bf16)
    w, _, _ = rollout_is_weights(old.to(torch.bfloat16), rollout.to(torch.bfloat16), mask, "sequence_truncate")
    assert w.dtype == torch.float32 and _close(w, EXPECTED["sequence_truncate"][0], tol=1e-6)


def test_integer_mask_is_accepted():
    old, rollout, mask = _case()
    w_bool, keep_bool, _ = rollout_is_weights(old, rollout, mask, "token_mask")
    w_int, keep_int, _ = rollout_is_weights(old, rollout, mask.long(), "token_mask")
    assert torch.equal(w_bool, w_int) and torch.equal(keep_bool, keep_int)


def test_weights_carry_no_gradient():
    old, rollout, mask = _case()
    old = old.clone().requires_grad_(True)
    rollout = rollout.clone().requires_grad_(True)
    for mode in ROLLOUT_IS_MODES:
        w, _, m = rollout_is_weights(old, rollout, mask, mode)
        assert not w.requires_grad and w.grad_fn is None, mode
        assert all(not v.requires_grad for v in m.values()), mode


def test_validation():
    old, rollout, mask = _case()
    with pytest.raises(ValueError, match="token_truncate, token_mask, sequence_truncate, sequence_mask"):
        rollout_is_weights(old, rollout, mask, "tis")
    for mode in ROLLOUT_IS_MODES[1:]:
        for bad in (0.0, -1.0, 0.5, math.nan):
            with pytest.raises(ValueError, match="cap"):
                rollout_is_weights(old, rollout, mask, mode, cap=bad)
        rollout_is_weights(old, rollout, mask, mode, cap=1.0)  # C = 1 is allowed
    rollout_is_weights(old, rollout, mask, "none", cap=0.0)  # cap is unused by the diagnostic mode
    with pytest.raises(ValueError, match="shape"):
        rollout_is_weights(old, rollout[:, :2], mask, "none")


# --------------------------------------------------------------------------------------------------------------
# policy losses with is_weights

KW = dict(clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg="token-mean", agg_norm_len=1)


def _loss_case():
    # the case of test_algorithms_losses: tokens (ratio, A): (1.5, +1) (0.5, -1) | (1.1, +2) (5.0, -1), pad col 2
    # per-token losses: -1.28 (high clipped), 0.8 (low clipped) | -2.2 (unclipped), 3.0 (dual clip)
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.1, 5.0, 1.0]], dtype=F64)
    adv = torch.tensor([[1.0, -1.0, 0.0], [2.0, -1.0, 0.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    old = torch.full((2, 3), -1.0, dtype=F64)
    logp = (old + ratios.log()).clone()
    logp[:, 2] = float("-inf")
    return logp.requires_grad_(True), old, adv, mask


def test_ppo_clip_multiplies_the_token_loss_by_the_weights():
    logp, old, adv, mask = _loss_case()
    w = torch.tensor([[2.0, 0.5, float("nan")], [1.5, 0.0, 7.0]], dtype=F64)  # padding: garbage, ignored
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **KW, is_weights=w)
    # weighted: 2 * -1.28 = -2.56,  0.5 * 0.8 = 0.4,  1.5 * -2.2 = -3.3,  0 * 3 = 0  -> sum -5.46, / 4 = -1.365
    assert math.isclose(loss.item(), -1.365, rel_tol=1e-12)
    loss.backward()
    # only the unclipped token (1.1, +2) has a gradient: w * (-A rho) / 4 = 1.5 * -2.2 / 4 = -0.825
    expected = torch.tensor([[0.0, 0.0, 0.0], [-0.825, 0.0, 0.0]], dtype=F64)
    assert torch.allclose(logp.grad, expected, rtol=1e-12, atol=1e-12)
    # the clip metrics do not depend on the weights
    _, m0 = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **KW)
    assert all(torch.equal(m[k], m0[k]) for k in m0)
    # with keep (the rejected token leaves the denominator): token-mean over 3 tokens: -5.46 / 3 = -1.82
    keep = mask & (w != 0)
    loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, keep, **KW, is_weights=w)
    assert math.isclose(loss.item(), -1.82, rel_tol=1e-12)


def test_ppo_clip_without_weights_is_unchanged():
    logp, old, adv, mask = _loss_case()
    loss_ref, m_ref = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **KW)
    (g_ref,) = torch.autograd.grad(loss_ref, logp)
    assert math.isclose(loss_ref.item(), 0.08, abs_tol=1e-12)  # the hand value of test_ppo_clip_by_hand
    for w in (None, torch.ones(2, 3, dtype=F64)):
        loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, mask, **KW, is_weights=w)
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.equal(loss, loss_ref) and torch.equal(g, g_ref)  # bit-identical
        assert all(torch.equal(m[k], m_ref[k]) for k in m_ref)


def test_gspo_multiplies_the_token_loss_by_the_weights():
    # one sequence, log ratios 0.1 and 0.3: s = e^0.2; A = -1 -> unclipped, per-token loss s
    old = torch.tensor([[-1.0, -2.0, 0.0]], dtype=F64)
    logp = (old + torch.tensor([[0.1, 0.3, 0.0]], dtype=F64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    adv = -torch.ones(1, 3, dtype=F64)
    kw = dict(clip_low=3e-4, clip_high=4e-4, agg="seq-mean-token-mean")
    s = math.exp(0.2)
    w = torch.tensor([[2.0, 0.5, float("nan")]], dtype=F64)
    loss, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, **kw, is_weights=w)
    # seq-mean-token-mean: (2 s + 0.5 s) / 2 = 1.25 s
    assert math.isclose(loss.item(), 1.25 * s, rel_tol=1e-12)
    loss.backward()
    # GSPO-token: d(s_t)/d logp_t = s, so token t gets w_t * s / |o| : 2 s / 2 = s and 0.5 s / 2 = s / 4
    assert torch.allclose(logp.grad, torch.tensor([[s, s / 4, 0.0]], dtype=F64), rtol=1e-12)
    # a sequence weight (sequence_truncate gives every token of the sequence the same w) scales the objective
    seq_w = torch.tensor([[2.0, 2.0, 0.0]], dtype=F64)
    loss, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, **kw, is_weights=seq_w)
    assert math.isclose(loss.item(), 2 * s, rel_tol=1e-12)
    # None: bit-identical to the call without the keyword (the hand value of test_gspo_by_hand)
    ref, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, **kw)
    same, _ = POLICY_LOSSES.get("gspo")(logp, old, adv, mask, **kw, is_weights=None)
    assert torch.equal(ref, same) and math.isclose(ref.item(), s, rel_tol=1e-12)


def test_every_registered_loss_takes_is_weights_detached():
    # w = 2 on every token doubles the loss exactly (a power of two); no gradient flows into the weights
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(3, 4, generator=g, dtype=F64)
    logp = (old + 0.1 * torch.randn(3, 4, generator=g, dtype=F64)).requires_grad_(True)
    adv = torch.randn(3, 1, generator=g, dtype=F64).expand(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    # every loss registered by rlvr (tests elsewhere register stateful wrappers in the same registry)
    names = [n for n in POLICY_LOSSES if POLICY_LOSSES.get(n).__module__ == "rlvr.algorithms.losses"]
    assert {"ppo_clip", "gspo"} <= set(names)
    for name in names:
        base, _ = POLICY_LOSSES.get(name)(logp, old, adv, mask, **KW)
        w = torch.full((3, 4), 2.0, dtype=F64, requires_grad=True)
        loss, _ = POLICY_LOSSES.get(name)(logp, old, adv, mask, **KW, is_weights=w)
        assert torch.equal(loss, 2 * base), name
        loss.backward()
        assert w.grad is None and logp.grad is not None, name
        logp.grad = None
        with pytest.raises(ValueError, match="is_weights"):
            POLICY_LOSSES.get(name)(logp, old, adv, mask, **KW, is_weights=torch.ones(3, 1, dtype=F64))


def test_end_to_end_with_rollout_is_weights():
    # the trainer's use: weights and keep from rollout_is_weights, keep as the loss mask.  With pi_theta = pi_old
    # (rho = 1, first step) and A = 1, each token's loss is -w, so token-mean = -mean_keep(w)
    old, rollout, mask = _case()
    old = torch.where(mask, old, torch.zeros((), dtype=F64))
    logp = old.clone().requires_grad_(True)
    adv = torch.ones(2, 3, dtype=F64)
    for mode, (weights, kept, _, _) in EXPECTED.items():
        w, keep, _ = rollout_is_weights(old, rollout, mask, mode, cap=2.0)
        loss, _ = POLICY_LOSSES.get("ppo_clip")(logp, old, adv, keep, **KW, is_weights=w)
        wt = torch.tensor(weights, dtype=F64)
        expected = -wt.sum() / max(int(torch.tensor(kept).sum()), 1)
        assert math.isclose(loss.item(), expected.item(), rel_tol=1e-12), mode
