"""Batch filters: which groups and which completions take part in the update."""

from __future__ import annotations

import torch
from torch import Tensor


def all_equal_groups(rewards: Tensor) -> Tensor:
    """equal_p = (max_g r_pg == min_g r_pg): rewards (P, G) -> (P,) bool, True where a group's rewards all agree.

    The one "this group carries no signal" test, shared by the dynamic-sampling filter below and the trainer's
    ``frac_reward_zero_std`` metric so the two cannot disagree.  It is exact in any dtype, where ``std == 0``
    is not: the float32 std of 16 copies of 10.3 is about 5e-7.  A group of size 1 counts as all-equal.
    """
    return rewards.amax(dim=-1) == rewards.amin(dim=-1)


def zero_variance_groups(rewards: Tensor) -> Tensor:
    """DAPO dynamic sampling (Yu et al. 2025, arXiv:2503.14476): keep a group only if its rewards differ.

    rewards: (P, G) float, the G rewards of each prompt.  Returns keep: (P,) bool, True where max != min
    (for 0/1 rewards: 0 < #correct < G), i.e. ``~all_equal_groups(rewards)``.  A group with all-equal rewards
    has all-zero group-centred advantages (exactly, see ``group_stats``) and contributes no gradient; the
    trainer drops it and samples more prompts to fill the batch.
    """
    return ~all_equal_groups(rewards)


def overlong_mask(response_mask: Tensor, truncated: Tensor) -> Tensor:
    """Overlong filtering (DAPO): drop truncated completions from the loss.

    response_mask: (B, T) bool; truncated: (B,) bool (finish_reason == "length").  Returns (B, T) bool, all
    False on truncated rows.  (DAPO's *soft overlong punishment* is a reward, see rlvr.rewards.)
    """
    return response_mask.bool() & ~truncated.bool()[:, None]


def std_ema_filter(rewards: Tensor, ema: float | None, beta: float = 0.5,
                   decay: float = 0.99) -> tuple[Tensor, float]:
    """RLPR's prompt filter (Yu et al. 2025, arXiv:2506.18254): drop groups whose reward std is small relative to a
    running average of the std.

        s_p     = unbiased std of group p's G rewards                      (float64)
        ema'    = mean_p s_p                           on the first batch (ema None)
                = decay * ema + (1 - decay) * mean_p s_p   after
        keep_p  = s_p >= beta * ema'

    rewards: (P, G); ema: the running value before this batch (None: none yet). Returns keep (P,) bool and ema'.
    The threshold includes this batch (so the first batch is filtered against its own mean std). A group of one
    has std 0. It composes with dynamic sampling (``zero_variance_groups``): the trainer keeps a group only if
    both keep it. Paper values: beta 0.5, decay 0.99.
    """
    r = rewards.detach().to(torch.float64)
    std = r.std(dim=-1, unbiased=True) if r.shape[-1] > 1 else torch.zeros(r.shape[0], dtype=torch.float64)
    std = torch.where(all_equal_groups(r), torch.zeros_like(std), std)  # exact 0 for an all-equal group
    batch_mean = float(std.mean()) if std.numel() else 0.0
    new_ema = batch_mean if ema is None else decay * float(ema) + (1.0 - decay) * batch_mean
    return std >= beta * new_ema, new_ema
