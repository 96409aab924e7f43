"""Masked reductions over padded (B, T) token tensors.

Padding positions may hold anything (0, -inf, NaN from a masked log-softmax): every function here selects with
``torch.where`` instead of multiplying by the mask, so garbage outside the mask never leaks into a value or a
gradient (NaN * 0 is NaN; ``where`` is not fooled).
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """sum of ``values`` where ``mask`` is True.

    values: (B, T) any float; mask: (B, T) bool (or 0/1).  dim=None sums everything -> 0-dim; dim=-1 -> (B,).
    """
    kept = torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """mean of ``values`` over the valid positions: masked_sum / max(count, 1) (an empty mask gives 0, not NaN)."""
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1).to(values.dtype)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance over all valid positions (0-dim); unbiased (N-1) by default, as in verl's ``masked_var``."""
    mean = masked_mean(values, mask)
    count = mask.bool().sum().to(values.dtype)
    sq = masked_sum((values - mean) ** 2, mask)
    denom = (count - 1).clamp(min=1) if unbiased else count.clamp(min=1)
    return sq / denom


def masked_whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(values - mean) / sqrt(var + eps) with mean and unbiased var taken over all valid tokens of the batch.

    values: (B, T); mask: (B, T) bool.  Returns (B, T) in values' dtype, zero outside the mask.
    Computed in float64, and when every valid value is the same (max == min) the mean is that common value, so
    they whiten to exactly 0 (a float32 mean of 61 copies of -99.69 misses by one ulp, which 1/sqrt(eps)
    would blow up to 0.015).
    shift_mean=False keeps the mean (only rescales), as verl's option of the same name.
    """
    mask = mask.bool()
    v = values.to(torch.float64)
    inf = torch.tensor(float("inf"), dtype=v.dtype, device=v.device)
    v_max, v_min = torch.where(mask, v, -inf).amax(), torch.where(mask, v, inf).amin()
    mean = torch.where(v_max == v_min, v_max, masked_mean(v, mask))  # empty mask: -inf != inf -> 0
    count = mask.sum().to(v.dtype)
    var = masked_sum((v - mean) ** 2, mask) / (count - 1).clamp(min=1)
    whitened = (v - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, torch.zeros((), dtype=v.dtype, device=v.device)).to(values.dtype)
