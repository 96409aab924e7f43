"""Rollout correction: importance weights for tokens sampled by another engine than the trainer (vLLM, SGLang).

The sampler reports log pi_rollout(o_t) for every token it drew; the trainer recomputes log pi_old(o_t) with
its own kernels before the update.  They should be equal and are not (other kernels, bf16 vs fp32, weights one
sync behind), so the batch is slightly off-policy *before* the first gradient step, and PPO's ratio
pi_theta / pi_old does not see it.  Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You
Off-Policy RL Training" (https://fengyao.notion.site/off-policy-rl), correct for it with a second, truncated
importance ratio rho = pi_old / pi_rollout that multiplies the per-token policy loss:

    L = agg_t( w_t * L_t(pi_theta / pi_old) ),       w = f(rho) detached      (see losses.py, ``is_weights``)

    weights, keep, metrics = rollout_is_weights(old_logp, rollout_logp, response_mask, "token_truncate", cap=2.0)
    loss, m = POLICY_LOSSES.get("ppo_clip")(logp, old_logp, adv, keep, is_weights=weights, ...)

Modes (``ROLLOUT_IS_MODES``), C = ``cap``, log ratios clamped to +-20 before exp (as losses.py):

    none               w_t = 1                                        (diagnostic only: metrics, no correction)
    token_truncate     rho_t = exp(old_t - rollout_t),  w_t = min(rho_t, C)               (TIS, Yao et al.)
    token_mask         w_t = rho_t if rho_t <= C else 0, and the token leaves ``keep``   (MIS)
    sequence_truncate  rho_i = exp(sum_{t in o_i} (old_t - rollout_t)),  w_it = min(rho_i, C)
    sequence_mask      w_it = rho_i if rho_i <= C else 0, and the whole sequence leaves ``keep``

A ratio exactly equal to C is kept (truncate: w = C, not counted as clipped; mask: kept).  verl implements the
same family in ``verl/trainer/ppo/rollout_corr_helper.py`` (token/sequence IS, token/sequence/geometric
rejection sampling); this module is the minimal, pure-tensor subset.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.masks import masked_mean

ROLLOUT_IS_MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")

LOG_RATIO_CLAMP = 20.0  # same bound as losses.LOG_RATIO_CLAMP: exp(20) ~ 4.9e8, never inf


def rollout_is_weights(
    old_logp: Tensor, rollout_logp: Tensor, mask: Tensor, mode: str, cap: float = 2.0
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Importance weights pi_old / pi_rollout (truncated or masked at ``cap``) for the policy loss.

    old_logp (B,T): log pi_old of the trainer (recomputed); rollout_logp (B,T): log-probs the sampler reported;
    mask (B,T) bool response tokens.
    Returns weights (B,T) float, detached, 0 outside mask; keep (B,T) bool (mask minus rejected tokens); metrics.

    Formulas (C = cap; every log ratio is clamped to +-20 before exp):
        none:              w_t = 1 on mask, keep = mask.
        token_truncate:    rho_t = exp(old_t - rollout_t); w_t = min(rho_t, C)          (TIS, Yao et al. 2025)
        token_mask:        w_t = rho_t if rho_t <= C else 0; such tokens leave keep      (MIS, Yao et al. 2025)
        sequence_truncate: rho_i = exp(sum_{t: mask} (old_it - rollout_it)); w_it = min(rho_i, C) on i's tokens
        sequence_mask:     w_it = rho_i if rho_i <= C else 0; a rejected sequence leaves keep entirely
    Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"
    (https://fengyao.notion.site/off-policy-rl); verl's rollout correction (rollout_corr_helper.py).

    weights are in the promoted dtype of the inputs, at least float32 (a sum of bf16 log-probs is too coarse).
    metrics (0-dim detached tensors, over the tokens of ``mask``; all 0 for an empty mask):
        logprob_diff_mean  mean |old - rollout|        logprob_diff_max  max |old - rollout|
        is_ratio_mean      mean token rho_t (before truncation, token-level in every mode)
        is_weight_mean     mean w_t (masked tokens count as 0)
        is_clipped_frac    fraction of tokens whose weight was truncated or masked (0 for ``none``)
    Raises ValueError for an unknown mode, and for cap < 1 (or NaN) in the truncate / mask modes (with C < 1 even
    on-policy tokens, rho = 1, would be down-weighted or rejected); cap = inf is plain, untruncated IS.
    """
    if mode not in ROLLOUT_IS_MODES:
        raise ValueError(f"unknown rollout_is mode {mode!r}; choose one of {', '.join(ROLLOUT_IS_MODES)}")
    if mode != "none" and not cap >= 1.0:
        raise ValueError(f"rollout_is_cap must be >= 1 for mode {mode!r}, got {cap}")
    if old_logp.shape != rollout_logp.shape or old_logp.shape != mask.shape:
        raise ValueError(
            f"old_logp, rollout_logp and mask need the same (B, T) shape, got "
            f"{tuple(old_logp.shape)}, {tuple(rollout_logp.shape)}, {tuple(mask.shape)}"
        )
    mask = mask.bool()
    dtype = torch.promote_types(torch.promote_types(old_logp.dtype, rollout_logp.dtype), torch.float32)
    zero = torch.zeros((), dtype=dtype, device=old_logp.device)
    # torch.where, not * mask: padding may hold -inf / NaN and must not leak into a sum
    diff = torch.where(mask, old_logp.detach().to(dtype) - rollout_logp.detach().to(dtype), zero)  # (B, T)
    token_rho = torch.exp(diff.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # (B, T), 1 outside mask

    if mode == "none":
        rho, over = torch.ones_like(token_rho), torch.zeros_like(mask)
    else:
        if mode.startswith("token"):
            rho = token_rho
        else:
            seq_log = diff.sum(dim=-1, keepdim=True).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B, 1)
            rho = torch.exp(seq_log).expand_as(token_rho)
        over = rho > cap  # (B, T): the ratio is above C (exactly C is kept)
    if mode.endswith("truncate"):
        weights = torch.where(over, torch.as_tensor(cap, dtype=dtype, device=rho.device), rho)  # min(rho, C)
        keep = mask
    elif mode.endswith("mask"):
        weights = torch.where(over, zero, rho)
        keep = mask & ~over
    else:  # none
        weights, keep = rho, mask
    weights = torch.where(mask, weights, zero)

    abs_diff = diff.abs()
    diff_max = abs_diff.max() if abs_diff.numel() else zero  # 0 outside mask, |.| >= 0: empty mask -> 0
    metrics = {
        "logprob_diff_mean": masked_mean(abs_diff, mask),
        "logprob_diff_max": diff_max,
        "is_ratio_mean": masked_mean(token_rho, mask),
        "is_weight_mean": masked_mean(weights, mask),
        "is_clipped_frac": masked_mean((over & mask).to(dtype), mask),
    }
    return weights, keep, metrics

