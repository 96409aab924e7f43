"""A rollout batch as tensors: what the update needs from P prompts x G completions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.types import Completion, Example, RewardResult


@dataclass
class RolloutBatch:
    """B = P * G completions, in group order (completions of prompt p are rows p*G .. p*G+G-1).

    prompt_ids:     (B, Lp) long, left-padded prompts
    prompt_mask:    (B, Lp) bool
    response_ids:   (B, T) long, right-padded responses
    response_mask:  (B, T) bool
    rewards:        (B,) float
    group_ids:      (B,) long, the baseline group of each completion (prompt x optional metadata key)
    truncated:      (B,) bool, finished by max_new_tokens rather than EOS
    old_logp:       (B, T) float or None, log-probs of the policy that sampled (filled by the trainer)
    ref_logp:       (B, T) float or None, reference log-probs (filled when KL is on)
    rollout_logp:   (B, T) float or None, log-probs the engine reported for the sampled tokens (0 on padding)
    is_weights:     (B, T) float or None, rollout importance weights min(pi_old / pi_rollout, C) (filled when
                    algorithm.rollout_is is on)
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    rewards: torch.Tensor
    group_ids: torch.Tensor
    truncated: torch.Tensor
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    rollout_logp: torch.Tensor | None = None
    is_weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    def model_inputs(self, rows: torch.Tensor | slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """input_ids, attention_mask (rows, Lp' + T') trimmed to the rows' own padding, and T'."""
        pmask, rmask = self.prompt_mask[rows], self.response_mask[rows]
        lp = int(pmask.sum(-1).max())
        t = max(int(rmask.sum(-1).max()), 1)
        ids = torch.cat([self.prompt_ids[rows][:, -lp:], self.response_ids[rows][:, :t]], dim=1)
        mask = torch.cat([pmask[:, -lp:], rmask[:, :t]], dim=1)
        return ids.to(device), mask.long().to(device), t


def group_ids_for(examples: list[Example], n: int, group_key: str) -> torch.Tensor:
    """(P*G,) ids: one per prompt, refined by ``metadata[group_key]`` when given (Absolute Zero's TRR++)."""
    if not group_key:
        return torch.arange(len(examples)).repeat_interleave(n)
    keys: dict[str, int] = {}
    ids = [keys.setdefault(str(ex.metadata.get(group_key)), len(keys)) for ex in examples]
    return torch.tensor(ids).repeat_interleave(n)


def build_batch(
    examples: list[Example], completions: list[list[Completion]], results: list[RewardResult], pad_id: int,
    group_key: str = "",
) -> RolloutBatch:
    flat = [c for group in completions for c in group]
    n = len(completions[0])
    lp = max(len(c.prompt_ids) for c in flat)
    t = max(max(len(c.token_ids) for c in flat), 1)
    b = len(flat)
    prompt_ids = torch.full((b, lp), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((b, lp), dtype=torch.bool)
    response_ids = torch.full((b, t), pad_id, dtype=torch.long)
    response_mask = torch.zeros((b, t), dtype=torch.bool)
    rollout_logp = torch.zeros((b, t), dtype=torch.float32)
    has_logprobs = all(len(c.logprobs) == len(c.token_ids) for c in flat)
    for i, c in enumerate(flat):
        if c.prompt_ids:
            prompt_ids[i, lp - len(c.prompt_ids) :] = torch.tensor(c.prompt_ids)
            prompt_mask[i, lp - len(c.prompt_ids) :] = True
        if c.token_ids:
            response_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids)
            response_mask[i, : len(c.token_ids)] = True
            if has_logprobs:
                rollout_logp[i, : len(c.token_ids)] = torch.tensor(c.logprobs, dtype=torch.float32)
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=response_ids,
        response_mask=response_mask,
        rewards=torch.tensor([r.score for r in results], dtype=torch.float32),
        group_ids=group_ids_for(examples, n, group_key),
        truncated=torch.tensor([c.finish_reason == "length" for c in flat]),
        rollout_logp=rollout_logp if has_logprobs else None,
    )
