"""High-entropy "forking" tokens: train only on the tokens where the policy hesitates.

Wang et al. 2025, "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective Reinforcement Learning
for LLM Reasoning" (arXiv:2506.01939): keep the policy-gradient loss on the top 20% highest-entropy response
tokens of the (micro-)batch, k = ceil(0.2 * N); the token-mean denominator counts only the kept tokens
(pass the returned mask to the loss as its response_mask).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def forking_token_mask(
    entropy: Tensor, mask: Tensor, top_frac: float, *, return_metrics: bool = False
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Keep the ceil(top_frac * N) valid tokens with the highest entropy (N = number of valid tokens).

    entropy: (B, T) float per-token entropy of the current policy; mask: (B, T) bool; top_frac in (0, 1].
    Returns a bool (B, T) mask, a subset of ``mask`` with exactly k True (ties broken by position); with
    ``return_metrics=True`` also {"forking_tokens_kept": k as 0-dim, "forking_frac_kept": k / N,
    "forking_entropy_threshold": the smallest kept entropy}.
    """
    if not 0.0 < top_frac <= 1.0:
        raise ValueError(f"top_frac must be in (0, 1], got {top_frac}")
    mask = mask.bool()
    flat_e = entropy.detach().reshape(-1).to(torch.float32)
    flat_m = mask.reshape(-1)
    n_valid = flat_m.sum()
    # ceil(top_frac * N) without float surprises (0.2 * 15 = 3.0000000000000004); stays a tensor (no sync)
    k = torch.ceil(n_valid.to(torch.float64) * top_frac - 1e-9).to(torch.long)
    if top_frac >= 1.0:
        kept = mask.clone()
    else:
        scores = torch.where(flat_m, flat_e, torch.full_like(flat_e, float("-inf")))
        order = torch.argsort(scores, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        kept = (flat_m & (rank < k)).reshape(mask.shape)
    if not return_metrics:
        return kept
    n_kept = kept.sum().to(torch.float32)
    kept_e = torch.where(kept, entropy.detach().to(torch.float32), torch.tensor(math.inf, device=kept.device))
    metrics = {
        "forking_tokens_kept": n_kept,
        "forking_frac_kept": n_kept / n_valid.clamp(min=1).to(torch.float32),
        "forking_entropy_threshold": kept_e.min() if kept.numel() else n_kept.new_zeros(()),
    }
    return kept, metrics
