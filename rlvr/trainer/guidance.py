"""Teacher guidance in the loop (algorithm.guidance, docs/guidance.md): teacher completions put into groups after
they are scored (LUFFY, RL-PLUS, AMPO), or queued for ReLIFT's interleaved supervised step.

    guide = Guide.from_config(cfg, tokenizer)       # None when algorithm.guidance.trigger is never
    guide.attach(learner.model, learner.device)
    groups, results, m = guide.apply(examples, groups, results, correct, scorer, step)   # in sample_groups
    m = guide.sft_step(learner.model, step)                                              # after the RL update

Teacher completions (Example.teachers, from data.teacher_field) are tokenised once per example with the
policy's tokenizer, as a response (no special tokens; EOS appended), exactly as the engine returns its own
completions after the same rendered prompt. One longer than rollout.max_new_tokens is truncated to it (finish
"length"), one with no tokens is skipped; both logged once per example. A teacher completion is scored by the
same reward as the rollouts (``force_teacher_reward`` lifts a lower score to that value: AMPO's 1.0).

State (the ReLIFT buffer and the supervised step's AdamW) goes into the checkpoint's driver state
(`state_dict` / `load_state_dict`), so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from rlvr.algorithms.guidance import choose_teachers, injection_slots, sft_loss
from rlvr.config import RunConfig
from rlvr.types import Completion, Example, RewardResult

log = logging.getLogger("rlvr")


class Guide:
    """The guidance settings, the tokenised teachers of each example, and ReLIFT's buffer and optimizer."""

    def __init__(self, cfg: RunConfig, tokenizer):
        self.cfg, self.g, self.tokenizer = cfg, cfg.algorithm.guidance, tokenizer
        self.max_tokens = cfg.rollout.max_new_tokens
        self.teachers: dict[tuple, list[tuple[str, list[int], str]]] = {}
        self.buffer: list[tuple[list[int], list[int]]] = []  # ReLIFT: (prompt ids, demonstration ids)
        self.model = self.device = None
        self.optimizer = None
        self._saved_optimizer = None
        self._warned_no_teacher = False

    @classmethod
    def from_config(cls, cfg: RunConfig, tokenizer) -> Guide | None:
        return cls(cfg, tokenizer) if cfg.algorithm.guidance.enabled else None

    def attach(self, model, device) -> None:
        """The live policy: comprehension selection scores with it, the supervised step trains it."""
        self.model, self.device = model, device

    # -- teachers ------------------------------------------------------------------------------------------
    def teacher_rows(self, ex: Example) -> list[tuple[str, list[int], str]]:
        """(text, token ids, finish reason) of each usable teacher completion of ``ex``, tokenised once."""
        key = (ex.origin, ex.source, ex.index, ex.question)
        if key not in self.teachers:
            rows = []
            eos = self.tokenizer.eos_token_id
            for k, text in enumerate(ex.teachers):
                ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                if not ids:
                    log.warning("guidance: teacher completion %d of %r has no tokens; skipped", k, ex.question[:60])
                    continue
                finish = "eos"
                if eos is not None and ids[-1] != eos:
                    ids.append(eos)
                if len(ids) > self.max_tokens:
                    log.warning("guidance: teacher completion %d of %r has %d tokens > rollout.max_new_tokens = %d; "
                                "truncated", k, ex.question[:60], len(ids), self.max_tokens)
                    ids, finish = ids[: self.max_tokens], "length"
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                rows.append((text, ids, finish))
            self.teachers[key] = rows
        return self.teachers[key]

    def _scores(self, examples: list[Example], slots: torch.Tensor, rows: list) -> list[list[float]]:
        """AMPO's comprehension score of every teacher of the prompts that get one (rlpr.comprehension_scores)."""
        from rlvr.rewards.batch import PolicyContext
        from rlvr.rewards.rlpr import comprehension_scores

        policy = PolicyContext(self.model, self.tokenizer, self.device, not self.cfg.prompt.chat_template)
        return [comprehension_scores(policy, ex.prompt, [r[0] for r in rows[p]], ex.answer)
                if slots[p].any() and len(rows[p]) > 1 else [0.0] * len(rows[p])
                for p, ex in enumerate(examples)]

    # -- in the sampling step ------------------------------------------------------------------------------
    def apply(self, examples: list[Example], groups: list[list[Completion]], results: list[RewardResult],
              correct: np.ndarray, scorer, step: int) -> tuple[list, list, dict[str, float]]:
        """The groups and flat results with teacher completions in their slots (in_group), or unchanged with the
        failing prompts' demonstrations queued (sft_buffer); and the step's guidance metrics.
        correct: (P, G) the rollouts' correctness (the first reward component >= reward.correct_threshold)."""
        g = self.g
        n = correct.shape[1]
        rows = [self.teacher_rows(ex) for ex in examples]
        n_teachers = torch.tensor([len(r) for r in rows], dtype=torch.long)
        correct_t = torch.from_numpy(np.asarray(correct, dtype=bool))
        slots = injection_slots(correct_t, n_teachers, g.trigger, g.n_inject)
        wanted = injection_slots(correct_t, torch.full_like(n_teachers, n), g.trigger, g.n_inject).any(1)
        missing = int((wanted & (n_teachers == 0)).sum())
        if missing and not self._warned_no_teacher:
            log.warning("guidance: %d prompt(s) of step %d were due a teacher completion but have none (empty or "
                        "missing data.teacher_field); they train on-policy only (metric guidance/no_teacher)",
                        missing, step)
            self._warned_no_teacher = True
        generator = torch.Generator().manual_seed(step * 1_000_003 + self.cfg.trainer.seed)
        scores = self._scores(examples, slots, rows) if g.select == "comprehension" else None
        which = choose_teachers(slots, n_teachers, g.select, scores, generator)
        metrics = {"guidance/triggered_groups": float(slots.any(1).sum()), "guidance/no_teacher": float(missing)}
        if g.placement == "sft_buffer":  # ReLIFT: the teacher never enters the RL group
            for p in torch.nonzero(slots.any(1)).flatten().tolist():
                for k in which[p][which[p] >= 0].tolist():
                    self.buffer.append((list(groups[p][0].prompt_ids), rows[p][k][1]))
            metrics["guidance/sft_buffer"] = float(len(self.buffer))
            return groups, results, metrics
        places = [(p, j, int(which[p, j])) for p, j in torch.nonzero(slots).tolist()]
        if not places:
            return groups, results, {**metrics, "guidance/injected": 0.0}
        teacher_results = scorer.score([examples[p] for p, _, _ in places], [rows[p][k][0] for p, _, k in places],
                                       [{"completion_tokens": len(rows[p][k][1]), "finish_reason": rows[p][k][2]}
                                        for p, _, k in places])
        groups, results = [list(gr) for gr in groups], list(results)
        raw = []
        for (p, j, k), res in zip(places, teacher_results):
            text, ids, finish = rows[p][k]
            own = groups[p][j]
            groups[p][j] = Completion(text, list(ids), [], finish, prompt_ids=list(own.prompt_ids),
                                      version=own.version, off_policy=True)
            raw.append(res.score)
            if g.force_teacher_reward is not None and res.score < g.force_teacher_reward:
                res = RewardResult(float(g.force_teacher_reward), reason=f"teacher (forced; {res.reason})",
                                   extracted=res.extracted, details=res.details, components=res.components)
            results[p * n + j] = res
        metrics.update({"guidance/injected": float(len(places)), "guidance/teacher_reward": float(np.mean(raw))})
        return groups, results, metrics

    # -- after the RL update -------------------------------------------------------------------------------
    def sft_step(self, model, step: int) -> dict[str, float]:
        """ReLIFT: one supervised optimizer step on the first sft_buffer_size queued demonstrations once the
        buffer holds that many (token-mean NLL - sft_entropy_coef x entropy, its own AdamW at sft_lr)."""
        g = self.g
        if g.placement != "sft_buffer":
            return {}
        if len(self.buffer) < g.sft_buffer_size:
            return {"guidance/sft_steps": 0.0}
        from rlvr.trainer.batch import build_batch
        from rlvr.trainer.policy import response_logprobs

        items, self.buffer = self.buffer[: g.sft_buffer_size], self.buffer[g.sft_buffer_size:]
        comps = [[Completion("", ids, [], "eos", prompt_ids=prompt)] for prompt, ids in items]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = build_batch([None] * len(comps), comps, [RewardResult(0.0)] * len(comps), pad)
        optimizer = self._optimizer(model)
        optimizer.zero_grad(set_to_none=True)
        tokens = int(batch.response_mask.sum())
        sums: dict[str, float] = {}
        total = 0.0
        for start in range(0, len(batch), g.sft_micro_batch_size):
            rows = torch.arange(start, min(start + g.sft_micro_batch_size, len(batch)))
            ids, mask, width = batch.model_inputs(rows, self.device)
            logp, entropy = response_logprobs(model, ids, mask, width, temperature=1.0,
                                              chunk_size=self.cfg.algorithm.logprob_chunk, with_entropy=True,
                                              entropy_grad=g.sft_entropy_coef > 0)
            loss, m = sft_loss(logp, entropy, batch.response_mask[rows][:, :width].to(self.device),
                               entropy_coef=g.sft_entropy_coef, num_tokens=tokens)
            loss.backward()
            total += float(loss.detach())
            for key, value in m.items():
                sums[f"guidance/{key}"] = sums.get(f"guidance/{key}", 0.0) + float(value)
        params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.trainer.max_grad_norm or math.inf))
        finite = math.isfinite(total) and math.isfinite(grad_norm)
        if finite:
            optimizer.step()
        else:
            log.warning("step %d: the guidance supervised step had a non-finite loss or gradient norm; skipped", step)
        optimizer.zero_grad(set_to_none=True)
        return {**sums, "guidance/sft_loss": total, "guidance/sft_grad_norm": grad_norm,
                "guidance/sft_steps": float(finite), "guidance/sft_buffer": float(len(self.buffer))}

    def _optimizer(self, model) -> torch.optim.Optimizer:
        if self.optimizer is None:
            t = self.cfg.trainer
            self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=self.g.sft_lr,
                                               betas=tuple(t.betas), weight_decay=t.weight_decay)
            if self._saved_optimizer is not None:
                self.optimizer.load_state_dict(self._saved_optimizer)
        return self.optimizer

    # -- checkpoint ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        optimizer = self.optimizer.state_dict() if self.optimizer is not None else self._saved_optimizer
        return {"buffer": [list(map(list, item)) for item in self.buffer], "optimizer": optimizer}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.buffer = [(list(p), list(d)) for p, d in state.get("buffer", [])]
        self._saved_optimizer = state.get("optimizer")
        self.optimizer = None
