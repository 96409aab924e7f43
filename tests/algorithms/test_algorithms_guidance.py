"""Off-policy guidance (rlvr.algorithms.guidance): injection slots, teacher choice, the teacher tokens' surrogates
and their gradients, and the mixed loss against hand-computed values and the NumPy formulas of ALGORITHMS.md 18."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlvr.algorithms import OFF_POLICY_WEIGHTS, POLICY_LOSSES, choose_teachers, injection_slots, mixed_pg_loss, sft_loss
from rlvr.algorithms.guidance import explore_advantage, guided_pg_loss
from rlvr.config import AlgorithmConfig, GuidanceConfig

CORRECT = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)


def test_injection_slots_by_trigger():
    teachers = torch.tensor([3, 2, 0])
    fail = injection_slots(CORRECT, teachers, "all_fail", 2)
    assert fail.tolist() == [[False, False, True, True], [False] * 4, [False] * 4]  # row 1 solved, row 2 no teacher
    always = injection_slots(CORRECT, teachers, "always", 1)
    assert always.tolist() == [[False, False, False, True], [False, False, False, True], [False] * 4]
    capped = injection_slots(CORRECT, torch.tensor([1, 1, 1]), "all_fail", 3)  # min(n_inject, K_p)
    assert capped.sum(1).tolist() == [1, 0, 1]
    assert not injection_slots(CORRECT, teachers, "never", 2).any()
    with pytest.raises(ValueError, match="trigger"):
        injection_slots(CORRECT, teachers, "sometimes", 1)


def test_choose_teachers_first_random_and_comprehension():
    slots = injection_slots(CORRECT, torch.tensor([3, 2, 0]), "all_fail", 2)
    first = choose_teachers(slots, torch.tensor([3, 2, 0]), "first")
    assert first.tolist() == [[-1, -1, 0, 1], [-1] * 4, [-1] * 4]
    # AMPO's threshold_0: negative scores count as 0, then the best first (ties keep row order)
    best = choose_teachers(slots, torch.tensor([3, 2, 0]), "comprehension", scores=[[-0.5, 0.2, 0.3], [0, 0], []])
    assert best[0].tolist() == [-1, -1, 2, 1]
    tie = choose_teachers(slots, torch.tensor([3, 2, 0]), "comprehension", scores=[[-0.5, -0.1, 0.0], [0, 0], []])
    assert tie[0].tolist() == [-1, -1, 0, 1]
    a = choose_teachers(slots, torch.tensor([3, 2, 0]), "random", generator=torch.Generator().manual_seed(0))
    b = choose_teachers(slots, torch.tensor([3, 2, 0]), "random", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and len(set(a[0, 2:].tolist())) == 2 and set(a[0, 2:].tolist()) <= {0, 1, 2}


def test_luffy_shaping_value_and_gradient_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.01)], requires_grad=True)
    f = OFF_POLICY_WEIGHTS.get("luffy")(logp, logp.detach(), gamma=0.1)
    assert f.tolist() == pytest.approx([0.5 / 0.6, 0.01 / 0.11])
    f.sum().backward()
    # d f / d logp = f'(p) p = gamma p / (p + gamma)^2: 0.1*0.5/0.36 and 0.1*0.01/0.0121 (the low-p token boosted
    # relative to its probability: 0.0826 / 0.01 = 8.3 vs 0.139 / 0.5 = 0.28)
    assert logp.grad.tolist() == pytest.approx([0.05 / 0.36, 0.001 / 0.0121])


def test_rlplus_weight_and_explore_advantage_by_hand():
    logp = torch.tensor([math.log(0.5)], requires_grad=True)
    old = torch.tensor([math.log(0.4)])
    w = OFF_POLICY_WEIGHTS.get("rlplus")(logp, old)
    assert w.item() == pytest.approx(0.5 / (0.75 * 0.4 + 0.25))  # = 2p / (p_old + (p_old + 1) / 2)
    assert w.item() == pytest.approx(2 * 0.5 / (0.4 + (0.4 + 1) / 2))
    w.backward()
    assert logp.grad.item() == pytest.approx(0.5 / 0.55)  # d p / d logp = p
    adv = explore_advantage(torch.tensor([2.0]), torch.tensor([math.log(0.75)]))
    assert adv.item() == pytest.approx(2.0 * 0.25 ** 0.5)


def _numpy_mixed(logp, old, adv, mask, off, kind, gamma=0.1, explore=False):
    """ALGORITHMS.md 18 in NumPy: on tokens -A rho (no clip), off tokens -A f(p) | -A_c w; token-mean."""
    p, p_old = np.exp(logp), np.exp(old)
    on_tok = -adv * np.exp(logp - old)
    a_off = adv * np.sqrt(1 - p) if explore else adv
    off_tok = -a_off * (p / (p + gamma) if kind == "luffy" else p / (0.75 * p_old + 0.25))
    tok = np.where(off, off_tok, on_tok)
    return (tok * mask).sum() / mask.sum()


@pytest.mark.parametrize("kind,explore", [("luffy", False), ("rlplus", True), ("rlplus", False)])
def test_mixed_loss_matches_the_numpy_formula(kind, explore):
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 3
    old = logp - 0.1 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 6).clone()
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    off = torch.zeros(4, 6, dtype=torch.bool)
    off[3] = True  # the teacher row
    inf = float("inf")
    on_loss = lambda *a, **k: POLICY_LOSSES.get("ppo_clip")(*a, clip_low=inf, clip_high=inf, **k)  # noqa: E731
    loss, m = mixed_pg_loss(on_loss, logp, old, adv, mask, off, off_weight=kind, gamma=0.1,
                            adv_scale="explore" if explore else "none")
    want = _numpy_mixed(logp.numpy(), old.numpy(), adv.numpy(), mask.numpy(), off.numpy(), kind, explore=explore)
    assert loss.item() == pytest.approx(want, rel=1e-10)
    assert (m["guidance/on_loss"] + m["guidance/off_loss"]).item() == pytest.approx(want, rel=1e-10)
    assert m["guidance/teacher_token_frac"].item() == pytest.approx(6 / 22)
    assert m["guidance/teacher_prob"].item() == pytest.approx(float(np.exp(logp[3].numpy()).mean()))


def test_micro_batches_add_up_and_the_off_policy_term_changes_the_gradient():
    g = torch.Generator().manual_seed(1)
    base = -torch.rand(4, 5, generator=g) * 2
    adv = torch.tensor([[1.0], [-1.0], [0.5], [1.5]]).expand(4, 5).clone()
    mask = torch.ones(4, 5, dtype=torch.bool)
    off = torch.zeros(4, 5, dtype=torch.bool)
    off[3] = True
    algo = AlgorithmConfig(agg="seq-mean-token-sum-norm", guidance=GuidanceConfig(trigger="always", on_clip=False))
    ppo = POLICY_LOSSES.get("ppo_clip")
    full, _ = guided_pg_loss(ppo, algo, base, base, adv, mask, off, agg=algo.agg, agg_norm_len=5)
    parts = sum(guided_pg_loss(ppo, algo, base[r], base[r], adv[r], mask[r], off[r], agg=algo.agg, agg_norm_len=5,
                               num_seqs=4, num_tokens=20)[0] for r in (slice(0, 2), slice(2, 4)))
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)
    # the teacher row's gradient is gamma p / (p + gamma)^2 per token (x -A / (S L)), not the plain -A / (S L)
    grads = {}
    for kind in ("luffy", "none"):
        logp = base.clone().requires_grad_(True)
        algo.guidance.off_weight = kind
        loss, _ = guided_pg_loss(ppo, algo, logp, base, adv, mask, off, agg=algo.agg, agg_norm_len=5)
        loss.backward()
        grads[kind] = logp.grad
    p = base[3].exp()
    assert torch.allclose(grads["luffy"][3], -1.5 * 0.1 * p / (p + 0.1) ** 2 / 20, atol=1e-7)
    assert torch.allclose(grads["none"][3], torch.full((5,), -1.5 / 20), atol=1e-7)
    assert torch.equal(grads["luffy"][:3], grads["none"][:3])  # on-policy rows: the same loss


def test_sft_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, 0.0, 0.0]])
    entropy = torch.tensor([[1.0, 1.0, 9.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss, m = sft_loss(logp, entropy, mask, entropy_coef=0.1)
    assert m["sft_nll"].item() == pytest.approx(3.5 / 3)
    assert loss.item() == pytest.approx(3.5 / 3 - 0.1 * 4 / 3)
    half, _ = sft_loss(logp[:1], entropy[:1], mask[:1], entropy_coef=0.1, num_tokens=3)
    other, _ = sft_loss(logp[1:], entropy[1:], mask[1:], entropy_coef=0.1, num_tokens=3)
    assert (half + other).item() == pytest.approx(loss.item())
