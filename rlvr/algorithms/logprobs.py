"""Token log-probabilities and entropies from hidden states, without materialising B x L x V fp32 logits.

For a 150k vocabulary, full fp32 logits of 8 x 4096 tokens take 8 * 4096 * 150k * 4 B = 19.7 GB, and autograd
keeps them (plus the softmax) for the backward pass.  ``token_logprobs`` instead walks over the tokens in
chunks of ``chunk_size``: each chunk computes its logits in fp32, reduces them to one log-prob (and entropy)
per token, and frees them; under ``torch.utils.checkpoint`` the backward pass recomputes one chunk at a time.
Peak extra memory is ~ a few x chunk_size x V x 4 bytes (plus a transient fp32 copy of a low-precision
lm_head weight, V x H), independent of B x L.

    logp, entropy = token_logprobs(hidden, model.lm_head.weight, labels, temperature=1.0, chunk_size=1024)

The caller passes the hidden states of the positions that PREDICT ``labels`` (already shifted:
``hidden[:, t]`` is the last-layer state at position t whose next token is ``labels[:, t]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def entropy_from_logits(logits: Tensor) -> Tensor:
    """H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v, in fp32.  logits (..., V) -> (...)."""
    z = logits.float()
    lse = torch.logsumexp(z, dim=-1)
    return lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)


def _chunk(
    hidden: Tensor, weight: Tensor, labels: Tensor, inv_temp: float, with_entropy: bool, entropy_grad: bool
) -> tuple[Tensor, Tensor]:
    """One chunk: hidden (n, H), weight (V, H), labels (n,) -> logp (n,), entropy (n,) (zeros if not asked)."""
    logits = F.linear(hidden.float(), weight.float())  # (n, V) fp32
    if inv_temp != 1.0:
        logits = logits * inv_temp
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, labels.clamp(min=0)[:, None]).squeeze(-1) - lse
    if with_entropy:
        z = logits if entropy_grad else logits.detach()
        entropy = (lse if entropy_grad else lse.detach()) - (torch.softmax(z, dim=-1) * z).sum(dim=-1)
    else:
        entropy = torch.zeros_like(logp)
    return logp, entropy


def token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    with_entropy: bool = True,
    entropy_grad: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """log softmax(hidden @ weight.T / temperature)[labels] and the entropy of that softmax, chunk by chunk.

    hidden: (B, L, H) last hidden states of the positions predicting ``labels`` (any float dtype).
    weight: (V, H) the lm_head weight (a bias-free output layer, as in Llama / Qwen).
    labels: (B, L) long; negative labels (e.g. -100 padding) give logp 0 and are meant to be masked.
    temperature: the sampling temperature (logits are divided by it, so logp matches the sampler's).
    chunk_size: tokens per chunk; memory ~ chunk_size x V fp32.
    with_entropy: also return the entropy (B, L); entropy_grad: let gradients flow through it (for an
    entropy bonus), otherwise it is detached.
    Returns logp (B, L) fp32 and entropy (B, L) fp32 or None.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    B, L, H = hidden.shape
    flat_h = hidden.reshape(B * L, H)
    flat_y = labels.reshape(B * L)
    inv_temp = 1.0 / temperature
    use_ckpt = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    logps, ents = [], []
    for start in range(0, B * L, chunk_size):
        h, y = flat_h[start : start + chunk_size], flat_y[start : start + chunk_size]
        if use_ckpt:
            lp, en = checkpoint(_chunk, h, weight, y, inv_temp, with_entropy, entropy_grad, use_reentrant=False)
        else:
            lp, en = _chunk(h, weight, y, inv_temp, with_entropy, entropy_grad)
        logps.append(lp)
        ents.append(en)
    if not logps:  # B * L == 0
        empty = hidden.new_zeros((B, L), dtype=torch.float32)
        return empty, (empty.clone() if with_entropy else None)
    logp = torch.cat(logps).reshape(B, L)
    logp = torch.where(labels >= 0, logp, torch.zeros((), dtype=logp.dtype, device=logp.device))
    entropy = torch.cat(ents).reshape(B, L) if with_entropy else None
    return logp, entropy


def token_logprobs_reference(
    hidden: Tensor, weight: Tensor, labels: Tensor, *, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """The plain version (full B x L x V fp32 logits) that ``token_logprobs`` must match; for tests only."""
    logits = (hidden.float() @ weight.float().T) / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    logp = torch.where(labels >= 0, logp, torch.zeros_like(logp))
    return logp, entropy_from_logits(logits)
