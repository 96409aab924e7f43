"""`rlpr`: the policy's own probability of the reference answer as the reward (RLPR, Yu et al. 2025,
"RLPR: Extrapolating RLVR to General Domains without Verifiers", arXiv:2506.18254).

    reward:
      components:
        - {name: rlpr, params: {format_weight: 0.1}}

For completion y = reasoning z + answer span (the body of its LAST closed ``<answer>...</answer>``; the tags are
``open_tag`` / ``close_tag``) of prompt x with reference answer a:

    score_B = mean_{t in a} p_theta(a_t | x, z, <answer>, a_<t)        reasoning z, then the reference in the span
    score_A = mean_{t in a} p_theta(a_t | x, <answer>, a_<t)           no reasoning: the prompt, then the span
    r_prob  = clip(score_B - score_A, 0, 1)                              debiased (``debias: false`` -> score_B)
    reward  = (1 - format_weight) * r_prob + format_weight               a completion with an answer span
    reward  = no_answer_score (default 0)                                no closed answer span: the format penalty

Means are of probabilities, not log-probabilities (the paper's choice: robust to one very unlikely token).
Everything the policy's answer span held is replaced by a; the text after the span does not enter (a causal
model's probability of a does not depend on it), the closing tag does (so a's last token is tokenised as it
would be in the completion).

Tokenisation is token-exact: the response text z + open_tag + a + close_tag is tokenised as ONE string (what the
policy sees), and the reference tokens are the tokens whose character span overlaps a's characters (offset
mapping of a fast tokenizer). When a tokenizer merges a's first or last characters with the neighbouring tag or
reasoning into one token, that token counts as a reference token (its probability is the probability of
producing those characters together); no token is ever split. The prompt is tokenised alone, as the rollout
engine does (``PolicyContext.add_special_tokens``).

Computed in the trainer process under ``torch.no_grad`` on the training device (rlvr.rewards.batch): the B
completions and the P no-reasoning sequences are scored in micro-batches of ``batch_size`` left-padded rows,
keeping only the logits of the last columns (``logits_to_keep``), so memory is batch_size x (answer tokens) x V.
"""

from __future__ import annotations

import json
from typing import Any

from rlvr.rewards.base import as_bool
from rlvr.rewards.batch import BATCH_REWARDS, PolicyContext, ScoreBatch
from rlvr.types import RewardResult


def answer_span(text: str, open_tag: str = "<answer>", close_tag: str = "</answer>") -> tuple[int, int] | None:
    """Character offsets (start, end) of the content of the LAST closed ``open_tag ... close_tag`` in ``text``.

    >>> answer_span("<think>1+1=2</think><answer>2</answer>")
    (28, 29)
    """
    end = text.rfind(close_tag)
    if end < 0:
        return None
    start = text.rfind(open_tag, 0, end)
    if start < 0:
        return None
    return start + len(open_tag), end


def reference_text(reference: Any) -> str:
    return reference if isinstance(reference, str) else json.dumps(reference)


def tokenize_with_reference(tokenizer, prompt: str, prefix: str, reference: str, suffix: str,
                            add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of prompt + (prefix + reference + suffix), and the positions in them of the reference tokens.

    The prompt is tokenised alone (as the rollout engine tokenises prompts); the response part as one string, so
    tokens merge across the reference's edges exactly as the tokenizer would merge them. Reference tokens: every
    response token whose character span [s, e) overlaps [len(prefix), len(prefix) + len(reference)).
    Returns (ids (L,), positions (K,)) with 0 < positions[k] < L; K = 0 for an empty reference.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    enc = tokenizer(prefix + reference + suffix, add_special_tokens=False, return_offsets_mapping=True)
    lo, hi = len(prefix), len(prefix) + len(reference)
    positions = [len(prompt_ids) + k for k, (s, e) in enumerate(enc["offset_mapping"])
                 if s < hi and e > lo and e > s]
    ids = prompt_ids + list(enc["input_ids"])
    if positions and positions[0] == 0:
        raise ValueError("the reference cannot be the first token of the sequence (an empty prompt)")
    return ids, positions


def mean_token_probs(model, sequences: list[tuple[list[int], list[int]]], *, pad_id: int, device,
                     batch_size: int = 16) -> list[float]:
    """For each (ids (L,), positions (K,)): mean_k p_model(ids[pos_k] | ids[:pos_k]) (temperature 1); nan for K = 0.

    Rows are left-padded (position ids from the attention mask, so padding does not shift them) in micro-batches
    of ``batch_size``; only the logits of the last columns that predict a scored token are computed.
    """
    import torch  # here, not at import: verifier worker processes import this package and need no torch

    out: list[float] = [float("nan")] * len(sequences)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            todo = [i for i, (_, pos) in enumerate(sequences) if pos]
            for start in range(0, len(todo), max(1, batch_size)):
                rows = todo[start : start + batch_size]
                width = max(len(sequences[i][0]) for i in rows)
                ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    seq = sequences[i][0]
                    ids[r, width - len(seq):] = torch.tensor(seq)
                    mask[r, width - len(seq):] = 1
                # column of token ids[pos] in the padded row; the logits predicting it sit one column left
                cols = [[width - len(sequences[i][0]) + p for p in sequences[i][1]] for i in rows]
                keep = width - min(c[0] for c in cols) + 1  # the last `keep` columns hold every predicting column
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                kwargs = dict(input_ids=ids.to(device), attention_mask=mask.to(device),
                              position_ids=positions.to(device), use_cache=False)
                try:
                    logits = model(**kwargs, logits_to_keep=keep).logits
                except TypeError:  # a model without logits_to_keep
                    logits = model(**kwargs).logits[:, -keep:]
                first = width - keep  # padded column of logits[:, 0]
                for r, i in enumerate(rows):
                    c = torch.tensor(cols[r], device=logits.device)
                    probs = torch.softmax(logits[r, c - 1 - first].float(), dim=-1)
                    tokens = ids[r, c.cpu()].to(logits.device)
                    out[i] = float(probs.gather(-1, tokens[:, None]).mean())
    finally:
        model.train(was_training)
    return out


@BATCH_REWARDS.register("rlpr", needs_policy=True)
def rlpr(batch: ScoreBatch, policy: PolicyContext, *, open_tag: str = "<answer>", close_tag: str = "</answer>",
         debias: bool = True, format_weight: float = 0.1, no_answer_score: float = 0.0, batch_size: int = 16,
         **_: Any) -> list[RewardResult]:
    """RLPR: mean probability of the reference answer in the completion's answer span, debiased (arXiv:2506.18254)."""
    tok = policy.tokenizer
    w, debias = float(format_weight), as_bool(debias)
    seqs, slots, spans = [], [], []  # (ids, positions) to score; per completion its B index and its A index
    base_index: dict[tuple[int, str], int] = {}
    for i, (ex, text) in enumerate(zip(batch.examples, batch.completions)):
        span = answer_span(text, open_tag, close_tag)
        spans.append(span)
        if span is None:
            slots.append((None, None))
            continue
        ref = reference_text(ex.answer)
        prompt = ex.prompt or ex.question
        seqs.append(tokenize_with_reference(tok, prompt, text[: span[0]], ref, close_tag, policy.add_special_tokens))
        b = len(seqs) - 1
        a = None
        if debias:
            key = (id(ex), ref)
            if key not in base_index:
                seqs.append(tokenize_with_reference(tok, prompt, open_tag, ref, close_tag, policy.add_special_tokens))
                base_index[key] = len(seqs) - 1
            a = base_index[key]
        slots.append((b, a))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    probs = mean_token_probs(policy.model, seqs, pad_id=pad, device=policy.device, batch_size=int(batch_size))
    results = []
    for (b, a), span, text in zip(slots, spans, batch.completions):
        if b is None:
            results.append(RewardResult(float(no_answer_score), reason=f"no {open_tag}...{close_tag} span",
                                        details={"no_answer_span": True}))
            continue
        p_b = probs[b]
        if p_b != p_b:  # nan: the reference has no tokens
            results.append(RewardResult(float(no_answer_score), reason="empty reference answer"))
            continue
        p_a = probs[a] if a is not None else 0.0
        r_prob = min(1.0, max(0.0, p_b - p_a))
        score = (1.0 - w) * r_prob + w
        details = {"prob": p_b, "prob_no_reasoning": p_a if a is not None else None,
                   "reference_tokens": len(seqs[b][1])}
        results.append(RewardResult(score, reason=f"rlpr p={p_b:.3f} (no reasoning {p_a:.3f})",
                                    extracted=text[span[0]: span[1]], details=details))
    return results


def comprehension_scores(policy: PolicyContext, prompt: str, texts: list[str], reference: Any, *,
                         open_tag: str = "<answer>", close_tag: str = "</answer>", batch_size: int = 16) -> list[float]:
    """score_B - score_A of each text as reasoning for ``reference`` (the two RLPR scores above, unclipped): how
    much more likely the policy finds the gold answer after that reasoning than with none. AMPO's
    comprehension-based selection of teacher completions (algorithm.guidance.select: comprehension). The
    reasoning is the text before its last answer span, or the whole text (then the open tag) without one."""
    tok, ref = policy.tokenizer, reference_text(reference)
    seqs = [tokenize_with_reference(tok, prompt, open_tag, ref, close_tag, policy.add_special_tokens)]
    for text in texts:
        span = answer_span(text, open_tag, close_tag)
        prefix = text[: span[0]] if span is not None else text + open_tag
        seqs.append(tokenize_with_reference(tok, prompt, prefix, ref, close_tag, policy.add_special_tokens))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    probs = mean_token_probs(policy.model, seqs, pad_id=pad, device=policy.device, batch_size=batch_size)
    base = probs[0] if probs[0] == probs[0] else 0.0
    return [p - base if p == p else 0.0 for p in probs[1:]]
