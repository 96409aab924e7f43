"""Batch filters: which groups and which completions take part in the update."""

from __future__ import annotations

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
