"""Token log-probabilities and entropies from hidden states, without materialising B x L x V fp32 logits.

For a 150k vocabulary, full fp32 logits of 8 x 4096 tokens take 8 * 4096 * 150k * 4 B = 19.7 GB, and autograd
keeps them (plus the softmax) for the backward pass.  ``token_logprobs`` instead walks over the tokens in
chunks of ``chunk_size``: each chunk computes its logits in fp32, reduces them to one log-prob (and entropy)
per token, and frees them; the backward pass recomputes one chunk's logits at a time (checkpointing, with a
hand-written in-place backward, ``_ChunkLogprobs``).  Peak extra memory is ~ 2 x chunk_size x V x 4 bytes
(plus a transient fp32 copy of a low-precision lm_head weight, V x H), independent of B x L.
Measured by benchmarks/logprob_memory.py; see docs/algorithms.md.

    logp, entropy = token_logprobs(hidden, model.lm_head.weight, labels, temperature=1.0, chunk_size=1024)

The caller passes the hidden states of the positions that PREDICT ``labels`` (already shifted:
``hidden[:, t]`` is the last-layer state at position t whose next token is ``labels[:, t]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def entropy_from_logits(logits: Tensor) -> Tensor:
    """H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v, in fp32.  logits (..., V) -> (...)."""
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    lse = torch.logsumexp(z, dim=-1)
    return lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """fp32, or fp64 when an input is fp64 (for gradcheck); never bf16/fp16 for the logits."""
    return torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)


class _ChunkLogprobs(torch.autograd.Function):
    """log-probs (and entropies) of one chunk of tokens; the backward pass recomputes the chunk's logits.

    This is activation checkpointing by hand: the forward keeps only (hidden, weight, labels, lse), and the
    backward rebuilds the (n, V) logits and turns them into the gradient in place.  Peak: two (n, V) fp32
    buffers (torch.utils.checkpoint around the same code measured ~5: logsumexp and gather backward each
    allocate their own).  With z = h W^T / T, p = softmax(z), lse = logsumexp(z), y the label:

        logp_y = z_y - lse                          d logp_y / dz = onehot(y) - p
        H = lse - sum_v p_v z_v = -sum_v p_v log p_v  d H / dz = -p * (log p + H)
        dL/dh = (dL/dz) W / T,   dL/dW = (dL/dz)^T h / T
    """

    @staticmethod
    def forward(ctx, hidden, weight, labels, inv_temp, with_entropy, entropy_grad):
        # hidden (n, H), weight (V, H), labels (n,) long >= 0 -> logp (n,), entropy (n,)
        dtype = _compute_dtype(hidden, weight)
        z = F.linear(hidden.to(dtype), weight.to(dtype)).mul_(inv_temp)  # (n, V) fp32 (fp64 for fp64 inputs)
        lse = torch.logsumexp(z, dim=-1)
        logp = z.gather(-1, labels[:, None]).squeeze(-1) - lse
        if with_entropy:
            log_p = z.sub_(lse[:, None])  # in place: z is not needed any more
            entropy = -log_p.exp().mul_(log_p).sum(dim=-1)  # one more (n, V) buffer, not two
        else:
            entropy = torch.zeros_like(logp)
        ctx.save_for_backward(hidden, weight, labels, lse, entropy)
        ctx.inv_temp, ctx.entropy_grad = inv_temp, entropy_grad
        if not entropy_grad:
            ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, labels, lse, entropy = ctx.saved_tensors
        dtype = _compute_dtype(hidden, weight)
        h, w = hidden.to(dtype), weight.to(dtype)
        log_p = F.linear(h, w).mul_(ctx.inv_temp).sub_(lse[:, None])  # (n, V) recomputed log-softmax
        grad_z = log_p.exp()  # p, turned into dL/dz in place below
        if ctx.entropy_grad and grad_entropy is not None:
            # dL/dz = p * (-g_H (log p + H) - g_logp) + g_logp onehot(y)
            grad_z.mul_(log_p.add_(entropy[:, None]).mul_(-grad_entropy[:, None]).sub_(grad_logp[:, None]))
        else:
            grad_z.mul_(-grad_logp[:, None])
        del log_p
        grad_z.scatter_add_(1, labels[:, None], grad_logp[:, None].to(grad_z.dtype))
        grad_z.mul_(ctx.inv_temp)
        grad_hidden = (grad_z @ w).to(hidden.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = (grad_z.T @ h).to(weight.dtype) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_weight, None, None, None, None


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
    logps, ents = [], []
    for start in range(0, B * L, chunk_size):
        h, y = flat_h[start : start + chunk_size], flat_y[start : start + chunk_size].clamp(min=0)
        lp, en = _ChunkLogprobs.apply(h, weight, y, inv_temp, with_entropy, entropy_grad)
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
    dtype = _compute_dtype(hidden, weight)
    logits = (hidden.to(dtype) @ weight.to(dtype).T) / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    logp = torch.where(labels >= 0, logp, torch.zeros_like(logp))
    return logp, entropy_from_logits(logits)
