"""Loss aggregation: how a (B, T) matrix of per-token losses becomes one number.

The choice changes the gradient, not just the scale: ``token-mean`` weights every token equally (long answers
count more, DAPO), ``seq-mean-token-mean`` weights every sequence equally (GRPO paper; long answers get a smaller
per-token weight, the "length bias" Dr. GRPO points out), ``seq-mean-token-sum-norm`` divides by a constant
(Dr. GRPO, no length bias).

Micro-batches: pass ``num_seqs`` / ``num_tokens``, the counts of the *whole* batch (mini-batch), and the losses
of the micro-batches add up exactly to the loss of the whole batch, so gradient accumulation is exact:

    sum_k agg(values_k, mask_k, num_seqs=S, num_tokens=N) == agg(values, mask)

With the defaults (None) the counts are taken from ``mask``.  A sequence counts towards ``num_seqs`` when it
has at least one valid token (a fully masked row, e.g. an overlong-filtered completion, does not dilute the
mean) — count the same way when you pass it: ``num_seqs = mask.any(-1).sum()``, ``num_tokens = mask.sum()``
(ints or 0-dim tensors; tensors avoid a device sync).

All functions: values (B, T) float, mask (B, T) bool -> 0-dim tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.masks import masked_sum
from rlvr.registry import Registry

AGGREGATIONS = Registry("loss aggregation")


def _count(given: int | float | Tensor | None, default: Tensor, like: Tensor) -> Tensor:
    """The denominator: the caller's whole-batch count, else the local one; never below 1."""
    count = default if given is None else torch.as_tensor(given, device=like.device)
    return count.to(like.dtype).clamp(min=1)


def _seq_count(mask: Tensor, num_seqs: int | Tensor | None, like: Tensor) -> Tensor:
    return _count(num_seqs, mask.bool().any(dim=-1).sum(), like)


@AGGREGATIONS.register("token-mean")
def token_mean(values: Tensor, mask: Tensor, *, num_tokens: int | Tensor | None = None, **_) -> Tensor:
    """Mean over all valid tokens of the batch: sum_{i,t} x_it / sum_i |o_i| (DAPO)."""
    return masked_sum(values, mask) / _count(num_tokens, mask.bool().sum(), values)


@AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(values: Tensor, mask: Tensor, *, num_seqs: int | Tensor | None = None, **_) -> Tensor:
    """Mean over sequences of the per-sequence token mean: (1/S) sum_i (1/|o_i|) sum_t x_it (GRPO paper)."""
    mask = mask.bool()
    per_seq = masked_sum(values, mask, dim=-1) / mask.sum(dim=-1).clamp(min=1).to(values.dtype)
    return per_seq.sum() / _seq_count(mask, num_seqs, values)


@AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(values: Tensor, mask: Tensor, *, num_seqs: int | Tensor | None = None, **_) -> Tensor:
    """Mean over sequences of the per-sequence token sum: (1/S) sum_i sum_t x_it."""
    return masked_sum(values, mask) / _seq_count(mask, num_seqs, values)


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(
    values: Tensor, mask: Tensor, *, norm_len: int = 1, num_seqs: int | Tensor | None = None, **_
) -> Tensor:
    """Dr. GRPO: (1/S) sum_i (1/L) sum_t x_it with a constant L = ``norm_len`` (the max generation length).

    Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv:2503.20783).
    Deviation: verl's mode of the same name divides the batch sum by L only (no 1/S); we also average over
    sequences so the scale matches the other modes (a constant factor, i.e. a learning-rate rescale).
    """
    if norm_len <= 0:
        raise ValueError(f"seq-mean-token-sum-norm needs norm_len > 0, got {norm_len}")
    return masked_sum(values, mask) / norm_len / _seq_count(mask, num_seqs, values)
