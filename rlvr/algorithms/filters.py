"""Batch filters: which groups and which completions take part in the update."""

from __future__ import annotations

from torch import Tensor


def zero_variance_groups(rewards: Tensor) -> Tensor:
    """DAPO dynamic sampling (Yu et al. 2025, arXiv:2503.14476): keep a group only if its rewards differ.

    rewards: (P, G) float, the G rewards of each prompt.  Returns keep: (P,) bool, True where max != min
    (for 0/1 rewards: 0 < #correct < G).  A group with all-equal rewards has all-zero group-centred advantages
    and contributes no gradient; the trainer drops it and samples more prompts to fill the batch.
    """
    return rewards.amax(dim=-1) != rewards.amin(dim=-1)


def overlong_mask(response_mask: Tensor, truncated: Tensor) -> Tensor:
    """Overlong filtering (DAPO): drop truncated completions from the loss.

    response_mask: (B, T) bool; truncated: (B,) bool (finish_reason == "length").  Returns (B, T) bool, all
    False on truncated rows.  (DAPO's *soft overlong punishment* is a reward, see rlvr.rewards.)
    """
    return response_mask.bool() & ~truncated.bool()[:, None]
