"""Advantage estimators of the GRPO family: one scalar reward per completion -> a (B, T) advantage per token.

Every estimator has the same call (unused keywords are ignored, so the trainer never branches on the name):

    advantages, metrics = ADVANTAGES[name](rewards, response_mask, group_ids,
                                           token_kl=None, kl_coef=0.0, norm_by_std=True, scale="group", eps=1e-6)

    rewards:       (B,) float   one scalar reward per completion (the verifier's score).
    response_mask: (B, T) bool  valid response tokens.
    group_ids:     (B,) long    completions sharing an id share a baseline (the G completions of one prompt;
                                refine with ``combine_group_ids`` for per-(prompt, task type x role) baselines).
    token_kl:      (B, T)       k1 KL per token (only ``reinforce_pp`` uses it), treated as a constant.
    -> advantages  (B, T) in the rewards' dtype (float32 for integer rewards), zero outside the mask, detached
                   (advantages are constants in the loss);
       metrics     {"adv_mean", "adv_std", "frac_zero_std_groups"} as 0-dim detached tensors.

Group statistics follow verl: unbiased (N-1) std, eps = 1e-6 added to the std, and a group of size 1 gets
mean 0 and std 1 (its advantage is its reward).  ``frac_zero_std_groups`` counts groups whose rewards are all
equal (size-1 groups included): for grpo / dr_grpo / rloo they carry no learning signal.

Exactness: statistics are computed in float64 and an all-equal group (max == min) has its common value as
mean, so every group estimator gives such a group (size >= 2) an advantage of exactly 0.0 in any dtype, and the
batch-whitening estimators give exactly 0.0 to a batch whose rewards are all equal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.masks import masked_mean, masked_var, masked_whiten
from rlvr.registry import Registry

ADVANTAGES = Registry("advantage estimator")


# ---------------------------------------------------------------------------------------------------------
# group statistics


def combine_group_ids(prompt_ids: Tensor, key_ids: Tensor) -> Tensor:
    """One id per distinct (prompt_ids[i], key_ids[i]) pair: (B,) long, (B,) long -> (B,) long in [0, #pairs).

    E.g. Absolute Zero's TRR++ baselines per task type x role: key_ids = type_id * 2 + role_id.
    """
    pairs = torch.stack([prompt_ids.long(), key_ids.long()], dim=-1)
    return torch.unique(pairs, dim=0, return_inverse=True)[1]


def _out_dtype(rewards: Tensor) -> torch.dtype:
    """The dtype advantages come back in: the rewards' own floating dtype, float32 for integer rewards."""
    return rewards.dtype if rewards.is_floating_point() else torch.float32


def group_stats(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-completion group mean, unbiased group std, group size, and the "all equal" flag per group.

        mean_g = sum_{i in g} r_i / n_g,   std_g = sqrt(sum_{i in g} (r_i - mean_g)^2 / (n_g - 1))

    computed in float64, and where max_g == min_g (the max == min test of ``filters.all_equal_groups``)
    mean_g is that common value, so r_i - mean_g = 0 and std_g = 0 exactly: an all-equal group gets exactly
    zero advantage in every estimator, as DeepSeekMath's (r - mean) / std.  (A float32 sum of 16 x 10.3 misses
    the mean by one ulp, and the std around the wrong mean gave GRPO advantages of 0.48.)

    rewards: (B,) float; group_ids: (B,) any integer ids.
    Returns float64 mean (B,), std (B,), size (B,) (each the value of the completion's group; size-1 groups:
    mean 0, std 1 as in verl, so their advantage is their reward) and zero_std (num_groups,) bool.
    """
    r = rewards.detach().to(torch.float64)
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    zeros = r.new_zeros(uniq.numel())
    size = zeros.index_add(0, inv, torch.ones_like(r))
    g_max = torch.full_like(zeros, float("-inf")).scatter_reduce(0, inv, r, "amax")
    g_min = torch.full_like(zeros, float("inf")).scatter_reduce(0, inv, r, "amin")
    zero_std = g_max == g_min
    mean = torch.where(zero_std, g_max, zeros.index_add(0, inv, r) / size)
    std = torch.sqrt(zeros.index_add(0, inv, (r - mean[inv]) ** 2) / (size - 1).clamp(min=1))
    single = size < 2
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    return mean[inv], std[inv], size[inv], zero_std


def _broadcast(per_seq: Tensor, response_mask: Tensor) -> Tensor:
    """(B,) -> (B, T): the sequence's value on every valid token, 0 elsewhere."""
    mask = response_mask.bool()
    return torch.where(mask, per_seq[:, None], torch.zeros((), dtype=per_seq.dtype, device=per_seq.device))


def _metrics(adv: Tensor, response_mask: Tensor, zero_std: Tensor) -> dict[str, Tensor]:
    mask = response_mask.bool()
    return {
        "adv_mean": masked_mean(adv, mask).detach(),
        "adv_std": masked_var(adv, mask).sqrt().detach(),
        "frac_zero_std_groups": zero_std.float().mean().detach() if zero_std.numel() else adv.new_zeros(()),
    }


# ---------------------------------------------------------------------------------------------------------
# estimators


@ADVANTAGES.register("grpo")
def grpo(
    rewards: Tensor,
    response_mask: Tensor,
    group_ids: Tensor,
    *,
    norm_by_std: bool = True,
    scale: str = "group",
    eps: float = 1e-6,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO: A_i = (r_i - mean_group(r)) / (std + eps) on every token of completion i.

    Shao et al. 2024, "DeepSeekMath" (arXiv:2402.03300), outcome supervision.
    scale: where the std comes from: "group" (the group's unbiased std, the paper), "batch" (the unbiased std
    of all B rewards: group mean, batch std, as "Tricks or Traps" Lite PPO / DLER), "none" (no division, the
    same as norm_by_std=False, i.e. Dr. GRPO).
    With group_ids per (task type x role) instead of per prompt this is Absolute Zero's TRR++ (Zhao et al. 2025,
    arXiv:2505.03335): one mean/std per task type x role.
    """
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"grpo: scale must be group, batch or none, got {scale!r}")
    mean, std, _size, zero_std = group_stats(rewards, group_ids)
    r = rewards.detach().to(mean.dtype)
    centred = r - mean  # exactly 0 in an all-equal group, whatever the scale below
    if norm_by_std and scale == "group":
        centred = centred / (std + eps)
    elif norm_by_std and scale == "batch":
        batch_std = r.std() if r.numel() > 1 else torch.ones((), dtype=r.dtype, device=r.device)
        centred = centred / (batch_std + eps)
    adv = _broadcast(centred.to(_out_dtype(rewards)), response_mask)
    return adv, _metrics(adv, response_mask, zero_std)


@ADVANTAGES.register("dr_grpo")
def dr_grpo(rewards: Tensor, response_mask: Tensor, group_ids: Tensor, **_) -> tuple[Tensor, dict[str, Tensor]]:
    """Dr. GRPO: A_i = r_i - mean_group(r), no std division (ignores norm_by_std / scale).

    Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv:2503.20783).
    """
    mean, _std, _size, zero_std = group_stats(rewards, group_ids)
    adv = _broadcast((rewards.detach().to(mean.dtype) - mean).to(_out_dtype(rewards)), response_mask)
    return adv, _metrics(adv, response_mask, zero_std)


@ADVANTAGES.register("rloo")
def rloo(rewards: Tensor, response_mask: Tensor, group_ids: Tensor, **_) -> tuple[Tensor, dict[str, Tensor]]:
    """RLOO: A_i = r_i - mean_{j != i} r_j = G/(G-1) * (r_i - mean_group(r)); a group of size 1 keeps A = r.

    Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization" (arXiv:2402.14740);
    Kool et al. 2019 "Buy 4 REINFORCE samples, get a baseline for free".
    """
    mean, _std, size, zero_std = group_stats(rewards, group_ids)
    r = rewards.detach().to(mean.dtype)
    factor = torch.where(size > 1, size / (size - 1).clamp(min=1), torch.ones_like(size))
    adv = _broadcast((factor * (r - mean)).to(_out_dtype(rewards)), response_mask)
    return adv, _metrics(adv, response_mask, zero_std)


def _last_token_onehot(response_mask: Tensor) -> Tensor:
    """(B, T) bool -> (B, T) bool, True only at the last valid token of each row (rows with none: all False)."""
    mask = response_mask.bool()
    T = mask.shape[-1]
    pos = torch.arange(T, device=mask.device).expand_as(mask)
    last = torch.where(mask, pos, torch.full_like(pos, -1)).max(dim=-1).values  # (B,) -1 when empty
    return pos == last[:, None]


@ADVANTAGES.register("reinforce_pp")
def reinforce_pp(
    rewards: Tensor,
    response_mask: Tensor,
    group_ids: Tensor,
    *,
    token_kl: Tensor | None = None,
    kl_coef: float = 0.0,
    eps: float = 1e-8,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE++: token reward r_t = R * 1[t = last valid] - kl_coef * kl_t; return G_t = sum_{s >= t} r_s
    (gamma = 1); advantages = the returns whitened over all valid tokens of the batch (no group baseline).

    Hu 2025, "REINFORCE++" (arXiv:2501.03262).  token_kl: (B, T) k1 KL (logp_old - ref_logp); None = no KL.
    There is no group baseline: without KL, a batch whose rewards are all equal gets exactly 0 (the returns are
    all R and ``masked_whiten`` centres equal values exactly); constant groups in a mixed batch do not.
    """
    mask = response_mask.bool()
    dtype = torch.float64  # returns and whitening in float64, advantages back in the rewards' dtype
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    token_r = torch.where(_last_token_onehot(mask), rewards.detach().to(dtype)[:, None], zero)
    if token_kl is not None and kl_coef:
        token_r = token_r - kl_coef * torch.where(mask, token_kl.detach().to(dtype), zero)
    returns = torch.flip(torch.cumsum(torch.flip(token_r, dims=[-1]), dim=-1), dims=[-1])
    adv = masked_whiten(returns, mask, eps=eps).to(_out_dtype(rewards))
    _m, _s, _n, zero_std = group_stats(rewards, group_ids)
    return adv, _metrics(adv, mask, zero_std)


@ADVANTAGES.register("reinforce_pp_baseline")
def reinforce_pp_baseline(
    rewards: Tensor, response_mask: Tensor, group_ids: Tensor, *, eps: float = 1e-8, **_
) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE++-baseline: A_i = r_i - mean_group(r) on every token, then whitened over all valid tokens.

    Hu 2025, "REINFORCE++" (arXiv:2501.03262), the variant with a group-mean baseline (verl
    ``reinforce_plus_plus_baseline``).  An all-equal group centres to exactly 0; the whitening then maps it to
    -mean/std of the batch's centred tokens (0 when the whole batch is all-equal groups), as in verl.
    """
    mean, _std, _size, zero_std = group_stats(rewards, group_ids)
    centred = _broadcast(rewards.detach().to(mean.dtype) - mean, response_mask)
    adv = masked_whiten(centred, response_mask, eps=eps).to(_out_dtype(rewards))
    return adv, _metrics(adv, response_mask, zero_std)


@ADVANTAGES.register("brpo")
def brpo(rewards: Tensor, response_mask: Tensor, group_ids: Tensor, *, eps: float = 1e-6,
         **_) -> tuple[Tensor, dict[str, Tensor]]:
    """BRPO: A_i = sign(r_i) on every token (+1 / -1; 0 where |r_i| <= eps or i's group is all-equal).

    Bootstrapped Relative Policy Optimization, Jia et al. 2025, "Writing-Zero" (arXiv:2506.00103): per group one
    completion is the temporary reference and a pairwise judge compares each other completion with it; the +-1
    outcome is the advantage of the usual clipped update (no group mean or std). The comparison happens when
    scoring: the ``pairwise_judge`` reward picks the reference (seeded, rlvr.rewards.pairwise) and gives
    r_i = +1 / -1 / 0 (0 for ties, failed comparisons and the reference itself), so this estimator takes the
    sign. Config validation requires that reward, with every other component at weight 0 (another component
    would move the reference off 0). An all-equal group gets exactly 0, as in every estimator here (with the
    judge's rewards that group is all ties anyway).
    rewards (B,), response_mask (B, T), group_ids (B,) -> advantages (B, T); ``frac_ties`` = share with A_i = 0.
    """
    r = rewards.detach().to(torch.float64)
    _m, _s, _n, zero_std = group_stats(rewards, group_ids)
    flat = zero_std[torch.unique(group_ids, return_inverse=True)[1]]  # (B,) whether i's group is all-equal
    sign = torch.where((r.abs() <= eps) | flat, torch.zeros_like(r), torch.sign(r))
    adv = _broadcast(sign.to(_out_dtype(rewards)), response_mask)
    metrics = _metrics(adv, response_mask, zero_std)
    metrics["frac_ties"] = (sign == 0).float().mean().detach() if sign.numel() else adv.new_zeros(())
    return adv, metrics
