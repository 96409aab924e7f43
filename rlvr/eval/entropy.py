"""Two kinds of entropy of a model's samples: per token and per final answer.

Token entropy. At each response position t the model defines a next-token distribution p_t; its entropy is
H_t = -sum_v p_t(v) log p_t(v). Two estimates:

  * sampled-token surprisal (default, free): s_t = -log p_t(y_t) for the sampled token y_t. Because
    y_t ~ p_t, E[s_t | prefix] = H_t exactly, so the mean surprisal over sampled tokens is an unbiased Monte
    Carlo estimate of the mean token entropy *of the sampling distribution* (after temperature / top-k /
    top-p: the rollout engine reports log-probs under that distribution). Needs no extra forward pass.
  * forward-pass entropy (``forward_token_entropy``, exact, one extra forward pass per completion): H_t of
    softmax(z_t / temperature) computed from the logits, via ``rlvr.algorithms.logprobs`` when available.
    Deviation: it ignores top-k / top-p truncation (it is the entropy of the tempered full distribution).

Reported as the token-weighted mean over all sampled response tokens, in nats.

Answer entropy (the "answer-level entropy" of Wu et al. 2025, "The Invisible Leash: Why RLVR May Not Escape
Its Origin", arXiv:2507.14843): over the distinct final answers a of the n samples of one problem, with
p_a = n_a / n,

    H_ans = -sum_a p_a log p_a      (nats; 0 when every sample gives the same answer, log n when all differ)

Samples with no extracted answer form one class of their own ("no answer" is an outcome too). RL typically
lowers answer entropy (precision up) even where token entropy rises; the comparison shows both.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from rlvr.eval.majority import normalize_answer

NO_ANSWER = "<no answer>"


def answer_entropy(answers: Sequence[str | None]) -> float:
    """H_ans = -sum_a (n_a/n) log(n_a/n) over normalized answers; None answers share one class. Nats."""
    if not answers:
        raise ValueError("answer_entropy: no samples")
    counts = Counter(normalize_answer(a) or NO_ANSWER for a in answers)
    n = len(answers)
    return -sum((c / n) * math.log(c / n) for c in counts.values()) + 0.0  # + 0.0 turns -0.0 into 0.0


def sampled_token_surprisal(logprobs: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Sum of -log p(y_t) over every sampled token of every completion, and the number of tokens.

    logprobs: per completion, (T_i,) log-probabilities of its sampled tokens. Returns (sum, count) so callers
    can form token-weighted means across problems; mean = sum / count.
    """
    total, count = 0.0, 0
    for lp in logprobs:
        for x in lp:
            if math.isfinite(x):
                total -= float(x)
                count += 1
    return total, count


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """H = logsumexp(z) - sum_v softmax(z)_v z_v with z = logits / temperature.  (..., V) -> (...)."""
    z = logits.float() / max(temperature, 1e-6)
    logp = torch.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def forward_token_entropy(
    model, prompt_ids: list[int], token_ids: list[int], temperature: float = 1.0, device: str | torch.device = "cpu"
) -> list[float]:
    """Exact per-token entropy H_t (T,) of one completion under ``model`` at ``temperature``.

    One forward pass over prompt + response; position t of the response is predicted from the hidden state
    at position len(prompt) + t - 1. Uses ``rlvr.algorithms.logprobs.token_logprobs`` (chunked over the
    vocabulary) when the model exposes its decoder and lm_head, else the plain logits.
    """
    if not token_ids:
        return []
    ids = torch.tensor([list(prompt_ids) + list(token_ids)], dtype=torch.long, device=device)
    start, end = len(prompt_ids) - 1, len(prompt_ids) + len(token_ids) - 1
    if start < 0:
        raise ValueError("forward_token_entropy: the prompt must have at least one token")
    try:
        from rlvr.algorithms.logprobs import token_logprobs

        decoder, head = model.get_decoder(), model.get_output_embeddings()
        hidden = decoder(input_ids=ids).last_hidden_state[:, start:end]  # (1, T, H)
        labels = ids[:, start + 1 : end + 1]  # (1, T)
        _, ent = token_logprobs(hidden, head.weight, labels, temperature=temperature, with_entropy=True)
        return ent[0].float().tolist()
    except (ImportError, AttributeError):
        logits = model(input_ids=ids).logits[0, start:end]  # (T, V)
        return entropy_from_logits(logits, temperature).tolist()
