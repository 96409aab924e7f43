"""Off-policy teacher guidance: which group slots a teacher completion takes, the teacher tokens' surrogate, and
the mixed on/off-policy loss (LUFFY, RL-PLUS, AMPO; ReLIFT's supervised loss). docs/guidance.md.

    slots = injection_slots(correct (P, G) bool, n_teachers (P,) long, "all_fail", n_inject=2)   # (P, G) bool
    which = choose_teachers(slots, n_teachers, "comprehension", scores=[[...], ...])             # (P, G) long
    loss, m = mixed_pg_loss(on_loss, logp, old_logp, advantages, mask, off_mask, off_weight="luffy", gamma=0.1,
                            agg="token-mean", num_seqs=S, num_tokens=N)

Shapes: P prompts, G slots per group, K_p teacher completions of prompt p; logp / old_logp / advantages / masks
(B, T) as in losses.py. ``off_mask`` (B, T) bool marks the teacher tokens (whole responses: the prefix ratio 1.0
that all four papers use). A teacher token's surrogate s_t (OFF_POLICY_WEIGHTS) enters the loss as -A_t * s_t:

    luffy   s = f(p) = p / (p + gamma), p = pi_theta(token), gamma = 0.1     LUFFY (Yan et al. 2025, arXiv:2504.14945;
            gradient f'(p) p = gamma p / (p + gamma)^2: low-probability      ElliottYan/LUFFY mix_core_alg.py) and
            teacher tokens are boosted ("policy shaping"; pi_teacher = 1)    AMPO (arXiv:2510.02227) off-policy term
    rlplus  s = p / (0.75 p_old + 0.25): the multiple importance sampling    RL-PLUS (Dong et al. 2025,
            weight 2p / (p_old + (p_old + 1) / 2), the teacher's unknown     arXiv:2508.00222; rlplus_core_alg.py)
            probability replaced by a mixture with 1
    none    s = exp(logp - old_logp): the on-policy ratio, unclipped (the teacher tokens treated as sampled)

adv_scale "explore" (RL-PLUS's exploration advantage): A_t <- A_t * (1 - sg[p_t])^0.5 on the teacher tokens.
The on-policy tokens keep the configured policy loss (ppo_clip ...), unclipped when the caller passes infinite
clip bounds (LUFFY / RL-PLUS release scripts: loss_remove_clip). Both parts are aggregated with the same
whole-batch counts, so on + off is exactly the aggregation of the per-token mix (gradient accumulation stays exact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rlvr.algorithms.aggregate import AGGREGATIONS
from rlvr.algorithms.masks import masked_mean
from rlvr.registry import Registry

OFF_POLICY_WEIGHTS = Registry("off-policy token weight")


@OFF_POLICY_WEIGHTS.register("luffy")
def luffy_shaping(logp: Tensor, old_logp: Tensor, *, gamma: float = 0.1, **_) -> Tensor:
    """LUFFY's policy shaping f(p) = p / (p + gamma), p = exp(logp) (with grad). (B, T)."""
    p = torch.exp(logp)
    return p / (p + gamma)


@OFF_POLICY_WEIGHTS.register("rlplus")
def rlplus_mis(logp: Tensor, old_logp: Tensor, **_) -> Tensor:
    """RL-PLUS's multiple importance sampling weight p / (0.75 p_old + 0.25) (p with grad, p_old detached). (B, T)."""
    return torch.exp(logp) / (0.75 * torch.exp(old_logp.detach()) + 0.25)


@OFF_POLICY_WEIGHTS.register("none")
def plain_ratio(logp: Tensor, old_logp: Tensor, **_) -> Tensor:
    """The unclipped ratio exp(logp - old_logp): teacher tokens weighted like the policy's own. (B, T)."""
    return torch.exp((logp - old_logp.detach()).clamp(-20.0, 20.0))


def explore_advantage(advantages: Tensor, logp: Tensor, exponent: float = 0.5) -> Tensor:
    """RL-PLUS's exploration-based advantage A * (1 - sg[p])^exponent: low-probability teacher tokens count more."""
    return advantages * (1.0 - torch.exp(logp.detach())).clamp(min=0.0) ** exponent


def injection_slots(correct: Tensor, n_teachers: Tensor, trigger: str, n_inject: int) -> Tensor:
    """(P, G) bool: the slots of each group a teacher completion replaces (the LAST ones of the group).

    always:   min(n_inject, K_p) slots of every group with a teacher (LUFFY / RL-PLUS: 1 of 8);
    all_fail: only groups with no correct rollout, min(n_inject, K_p, #incorrect = G) slots (AMPO's adaptive
              injection, default 2 of 8); never: none.
    correct (P, G) bool, n_teachers (P,) int.
    """
    p, g = correct.shape
    if trigger == "never":
        return torch.zeros((p, g), dtype=torch.bool)
    if trigger not in ("always", "all_fail"):
        raise ValueError(f"trigger must be never, always or all_fail, got {trigger!r}")
    count = torch.clamp(torch.as_tensor(n_teachers, dtype=torch.long), max=min(n_inject, g))
    if trigger == "all_fail":
        count = torch.where(correct.bool().any(dim=1), torch.zeros_like(count), count)
    return torch.arange(g).unsqueeze(0) >= (g - count).unsqueeze(1)


def choose_teachers(slots: Tensor, n_teachers: Tensor, select: str, scores: Sequence[Sequence[float]] | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """(P, G) long: the teacher completion each injected slot gets (-1 elsewhere); no teacher is used twice.

    first: teachers 0, 1, ... in row order; random: a seeded permutation; comprehension: the highest
    max(score, 0) first (AMPO's "threshold_0" shaping; ties by row order), ``scores[p][k]`` for teacher k of prompt p.
    """
    out = torch.full(slots.shape, -1, dtype=torch.long)
    for p in range(slots.shape[0]):
        cols = torch.nonzero(slots[p]).flatten()
        k = int(n_teachers[p])
        if not len(cols):
            continue
        if select == "first":
            order = torch.arange(k)
        elif select == "random":
            order = torch.randperm(k, generator=generator)
        elif select == "comprehension":
            if scores is None:
                raise ValueError("select comprehension needs scores")
            shaped = torch.tensor([max(float(s), 0.0) for s in scores[p][:k]], dtype=torch.float64)
            order = torch.sort(-shaped, stable=True).indices
        else:
            raise ValueError(f"select must be first, random or comprehension, got {select!r}")
        out[p, cols] = order[: len(cols)]
    return out


def mixed_pg_loss(
    on_loss: Callable[..., tuple[Tensor, dict]],
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    off_mask: Tensor,
    *,
    off_weight: str = "luffy",
    gamma: float = 0.1,
    adv_scale: str = "none",
    agg: str = "token-mean",
    agg_norm_len: int = 1,
    num_seqs: int | Tensor | None = None,
    num_tokens: int | Tensor | None = None,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """On-policy loss on ``mask & ~off_mask`` plus -agg(A_t * s_t) on the teacher tokens ``mask & off_mask``.

    on_loss(logp, old_logp, advantages, mask, *, agg, agg_norm_len, num_seqs, num_tokens, is_weights) is the
    configured policy loss with its clip settings bound (losses.POLICY_LOSSES). Counts default to ``mask``'s (the
    whole batch's, shared by both parts). Rollout-correction ``is_weights`` apply to the on-policy part only.
    Metrics: the on-policy loss's (clip fractions over its tokens), plus guidance/on_loss, guidance/off_loss (the two
    parts, each normalised by the whole batch's counts), guidance/teacher_prob (mean p of the teacher tokens),
    guidance/teacher_token_frac.
    """
    mask, off_mask = mask.bool(), off_mask.bool()
    num_seqs = mask.any(-1).sum() if num_seqs is None else num_seqs
    num_tokens = mask.sum() if num_tokens is None else num_tokens
    counts = dict(agg=agg, agg_norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    on, off = mask & ~off_mask, mask & off_mask
    on_part, metrics = on_loss(logp, old_logp, advantages, on, is_weights=is_weights, **counts)
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    adv = torch.where(off, advantages.detach().to(logp.dtype), zero)
    if adv_scale == "explore":
        adv = explore_advantage(adv, logp)
    elif adv_scale != "none":
        raise ValueError(f"adv_scale must be none or explore, got {adv_scale!r}")
    surrogate = OFF_POLICY_WEIGHTS.get(off_weight)(logp, old_logp, gamma=gamma)
    token_loss = torch.where(off, -adv * surrogate, zero)
    off_part = AGGREGATIONS.get(agg)(token_loss, off, norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    metrics = {**metrics, "guidance/on_loss": on_part.detach(), "guidance/off_loss": off_part.detach(),
               "guidance/teacher_prob": masked_mean(torch.exp(logp.detach()), off),
               "guidance/teacher_token_frac": off.sum() / mask.sum().clamp(min=1)}
    return on_part + off_part, metrics


def sft_loss(logp: Tensor, entropy: Tensor | None, mask: Tensor, *, entropy_coef: float = 0.001,
             num_tokens: int | Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """ReLIFT's supervised step (TheRoadQaQ/ReLIFT actor.py sft_update_policy): token-mean NLL of the
    demonstrations minus entropy_coef x token-mean entropy. logp, entropy (B, T), mask (B, T) bool; num_tokens:
    the whole batch's count when called per micro-batch."""
    mask = mask.bool()
    n = (mask.sum() if num_tokens is None else torch.as_tensor(num_tokens)).to(logp.dtype).clamp(min=1)
    nll = -torch.where(mask, logp, torch.zeros((), dtype=logp.dtype, device=logp.device)).sum() / n
    loss, metrics = nll, {"sft_nll": nll.detach()}
    if entropy is not None:
        ent = torch.where(mask, entropy, torch.zeros((), dtype=logp.dtype, device=logp.device)).sum() / n
        loss = loss - entropy_coef * ent
        metrics["sft_entropy"] = ent.detach()
    return loss, metrics


def guided_pg_loss(policy_loss: Callable[..., tuple[Tensor, dict]], algo, logp: Tensor, old_logp: Tensor,
                   advantages: Tensor, mask: Tensor, off_mask: Tensor, **counts) -> tuple[Tensor, dict[str, Tensor]]:
    """`mixed_pg_loss` with the settings of an AlgorithmConfig ``algo`` (its guidance section): the on-policy part
    is ``policy_loss`` with algo's clip bounds, or unclipped (infinite bounds) with guidance.on_clip false."""
    g = algo.guidance
    low, high = (algo.clip_low, algo.clip_high) if g.on_clip else (float("inf"), float("inf"))

    def on_loss(lp, old, adv, m, **kwargs):
        return policy_loss(lp, old, adv, m, clip_low=low, clip_high=high, dual_clip=algo.dual_clip, **kwargs)

    return mixed_pg_loss(on_loss, logp, old_logp, advantages, mask, off_mask, off_weight=g.off_weight, gamma=g.gamma,
                         adv_scale=g.adv_scale, **counts)
