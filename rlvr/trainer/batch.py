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
    response_mask:  (B, T) bool, the tokens the loss covers: the model's own tokens
    context_mask:   (B, T) bool or None, every real response token: the model's and, in multi-turn trajectories,
                    the observations between its turns (attended to, never in the loss: holes in response_mask);
                    None = response_mask (single turn)
    rewards:        (B,) float
    group_ids:      (B,) long, the baseline group of each completion (prompt x optional metadata key)
    truncated:      (B,) bool, finished by max_new_tokens rather than EOS
    old_logp:       (B, T) float or None, log-probs of the policy that sampled (filled by the trainer)
    ref_logp:       (B, T) float or None, reference log-probs (filled when KL is on)
    rollout_logp:   (B, T) float or None, log-probs the engine reported for the sampled tokens (0 on padding)
    is_weights:     (B, T) float or None, rollout importance weights min(pi_old / pi_rollout, C) (filled when
                    algorithm.rollout_is is on)
    is_mode:        a rollout-correction mode whose weights the update computes itself, micro-batch by micro-batch,
                    from its own detached log-probs (pi_old = pi_theta with a single update per batch; update.py);
                    None = is_weights as filled above
    old_values:     (B, T) float or None, the critic's V(s_t) before the update (PPO; filled by the trainer)
    returns:        (B, T) float or None, GAE returns: the critic's targets
    vision:         (B,) list of rlvr.vision.processor.PromptInputs (None for a text row), or None for a text
                    batch: the pixel inputs each row's forward takes again (prompt_ids hold its image tokens,
                    which are prompt tokens and so never in response_mask)
    off_policy_mask: (B, T) bool or None, the tokens of teacher completions put into a group (algorithm.guidance,
                    in_group): they take the off-policy loss (rlvr.algorithms.guidance); None = no teacher rows
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
    is_mode: str | None = None
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    vision: list | None = None
    off_policy_mask: torch.Tensor | None = None

    @property
    def token_mask(self) -> torch.Tensor:
        """(B, T) bool, the real response tokens (what the forward attends to)."""
        return self.response_mask if self.context_mask is None else self.context_mask

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    def model_inputs(self, rows: torch.Tensor | slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """input_ids, attention_mask (rows, Lp' + T') trimmed to the rows' own padding, and T'."""
        pmask, rmask = self.prompt_mask[rows], self.token_mask[rows]
        lp = int(pmask.sum(-1).max())
        t = max(int(rmask.sum(-1).max()), 1)
        ids = torch.cat([self.prompt_ids[rows][:, -lp:], self.response_ids[rows][:, :t]], dim=1)
        mask = torch.cat([pmask[:, -lp:], rmask[:, :t]], dim=1)
        return ids.to(device), mask.long().to(device), t

    def vision_inputs(self, rows: torch.Tensor | slice, device: torch.device) -> dict[str, torch.Tensor]:
        """The pixel inputs of ``rows`` laid out for `model_inputs`' ids (rlvr.vision.inputs); {} for text."""
        if self.vision is None:
            return {}
        from rlvr.vision.inputs import forward_inputs

        index = torch.arange(len(self))[rows].reshape(-1).tolist()
        lp = int(self.prompt_mask[rows].sum(-1).max())
        t = max(int(self.token_mask[rows].sum(-1).max()), 1)
        return forward_inputs([self.vision[i] for i in index], lp, t, device)

    def lengths(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt lengths, response lengths) of the rows."""
        return self.prompt_mask[rows].sum(-1), self.token_mask[rows].sum(-1)

    def packed_micro_batches(self, rows: torch.Tensor, rows_per_micro: int, device) -> list[tuple[torch.Tensor, Packed]]:
        """The sequences of ``rows`` packed into rows of C = the longest sequence's length (first-fit decreasing,
        so attention per row costs no more than the padded longest row), then ``rows_per_micro`` packed rows per
        micro-batch. Returns [(the sequences' batch rows, Packed)], covering every row once."""
        prompt_len, resp_len = self.lengths(rows)
        total = (prompt_len + resp_len).tolist()
        capacity = max(total)
        bins: list[list[int]] = []  # indices into rows
        room: list[int] = []
        for i in sorted(range(len(total)), key=lambda i: -total[i]):
            for b, free in enumerate(room):
                if free >= total[i]:
                    bins[b].append(i)
                    room[b] -= total[i]
                    break
            else:
                bins.append([i])
                room.append(capacity - total[i])
        out = []
        for start in range(0, len(bins), rows_per_micro):
            group = bins[start : start + rows_per_micro]
            members = [i for b in group for i in b]
            out.append((rows[members], self._pack(rows, group, prompt_len, resp_len, capacity, device)))
        return out

    def _pack(self, rows, group, prompt_len, resp_len, capacity, device) -> Packed:
        members = [i for b in group for i in b]
        slot = {i: k for k, i in enumerate(members)}  # row of the output layout
        width = max(int(resp_len[members].max()), 1)
        ids = torch.full((len(group), capacity), 0, dtype=torch.long)
        pos = torch.zeros((len(group), capacity), dtype=torch.long)
        src_row, src_col, dst_row, dst_col, labels = [], [], [], [], []
        for r, b in enumerate(group):
            col = 0
            for i in b:
                pl, rl = int(prompt_len[i]), int(resp_len[i])
                row = int(rows[i])
                if pl:
                    ids[r, col : col + pl] = self.prompt_ids[row, -pl:]
                ids[r, col + pl : col + pl + rl] = self.response_ids[row, :rl]
                pos[r, col : col + pl + rl] = torch.arange(pl + rl)
                if rl and not pl:
                    raise ValueError("packing needs a non-empty prompt before every response")
                src_row += [r] * rl
                src_col += range(col + pl, col + pl + rl)
                dst_row += [slot[i]] * rl
                dst_col += range(rl)
                labels.append(self.response_ids[row, :rl])
                col += pl + rl
            if col < capacity:  # the rest of the row: a sequence of its own (positions restart), never read
                pos[r, col:] = torch.arange(capacity - col)
        as_long = lambda x: torch.tensor(x, dtype=torch.long, device=device)  # noqa: E731
        return Packed(ids.to(device), pos.to(device), as_long(src_row), as_long(src_col), as_long(dst_row),
                      as_long(dst_col), torch.cat(labels).to(device) if labels else as_long([]),
                      (len(members), width))


@dataclass
class Packed:
    """Sequences packed into rows (no padding inside a row): what `packed_response_logprobs` runs.

    input_ids, position_ids: (R, C); positions restart at 0 at each sequence (and for the unused tail of a row).
    src_row, src_col: (N,) where the N response tokens sit in the packed rows; labels (N,) those tokens.
    dst_row, dst_col: (N,) where they go in the padded (n_seqs, T) layout ``out_shape`` of the loss.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    src_row: torch.Tensor
    src_col: torch.Tensor
    dst_row: torch.Tensor
    dst_col: torch.Tensor
    labels: torch.Tensor
    out_shape: tuple[int, int]


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
    # teacher completions (guidance) have no sampling log-probs: such a batch recomputes old_logp (no rollout_logp)
    has_logprobs = all(len(c.logprobs) == len(c.token_ids) and not c.off_policy for c in flat)
    multi_turn = any(c.loss_mask for c in flat)  # observation tokens: context, not loss
    context_mask = response_mask.clone() if multi_turn else None
    off_policy = [c.off_policy for c in flat]
    off_policy_mask = torch.zeros((b, t), dtype=torch.bool) if any(off_policy) else None
    for i, c in enumerate(flat):
        if c.prompt_ids:
            prompt_ids[i, lp - len(c.prompt_ids) :] = torch.tensor(c.prompt_ids)
            prompt_mask[i, lp - len(c.prompt_ids) :] = True
        if c.token_ids:
            response_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids)
            response_mask[i, : len(c.token_ids)] = True
            if multi_turn:
                context_mask[i, : len(c.token_ids)] = True
                if c.loss_mask:
                    response_mask[i, : len(c.token_ids)] = torch.tensor(c.loss_mask, dtype=torch.bool)
            if has_logprobs:
                rollout_logp[i, : len(c.token_ids)] = torch.tensor(c.logprobs, dtype=torch.float32)
            if c.off_policy:
                off_policy_mask[i, : len(c.token_ids)] = True
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=response_ids,
        response_mask=response_mask,
        rewards=torch.tensor([r.score for r in results], dtype=torch.float32),
        group_ids=group_ids_for(examples, n, group_key),
        truncated=torch.tensor([c.finish_reason == "length" for c in flat]),
        rollout_logp=rollout_logp if has_logprobs else None,
        context_mask=context_mask,
        vision=[c.vision for c in flat] if any(c.vision is not None for c in flat) else None,
        off_policy_mask=off_policy_mask,
    )
