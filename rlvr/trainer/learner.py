"""The learner: the policy, its reference, optimizer and schedule, and one update on a rollout batch.

    learner = Learner(cfg, device, dtype)             # this process (distributed.backend: none)
    metrics, finite = learner.update(batch, kl_coef, step)
    learner.save(output_dir, step, tokenizer, {"sampler": ..., "counters": ...})

With ``distributed.backend: ray`` every trainer rank holds one `Learner` over its FSDP2 shards (``shard``, a
`rlvr.trainer.shard.Shard`): the same code, each rank taking its share of each mini-batch's rows
(rlvr/distributed/trainer.py). Checkpoints are the same folders either way (rlvr/trainer/state.py): the full
weights (HF-loadable) and the full optimizer state keyed by parameter name, so a run resumes on any number of
ranks, or in one process.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch

from rlvr.config import RunConfig
from rlvr.trainer import state as ckpt
from rlvr.trainer.optim import make_optimizer
from rlvr.trainer.policy import load_policy, make_reference, model_path
from rlvr.trainer.update import UpdateRuntime, prepare, update_policy
from rlvr.vision.model import copy_processor_files, is_vision_config

log = logging.getLogger("rlvr")


def step_seed(seed: int, step: int) -> int:
    """The seed of everything random in ``step`` of a run seeded ``seed`` (torch / python / numpy, shuffles)."""
    return (seed * 1_000_003 + step) % (2**31)


def off_policy_mode(cfg: RunConfig) -> str | None:
    """The rollout-correction mode of decoupled PPO in an asynchronous run (None when synchronous): algorithm.
    rollout_is, or token_truncate when that is none; "none" with async.correction none (an ablation)."""
    if cfg.async_.max_staleness == 0:
        return None
    if cfg.async_.correction == "none":
        return "none"
    return cfg.algorithm.rollout_is if cfg.algorithm.rollout_is != "none" else "token_truncate"


@torch.no_grad()
def probe_logprobs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """(len(ids) - 1,) float32 log-probs (temperature 1) of ids[1:] after ids[:-1]: the weight-sync round trip
    compares a rollout engine's with the trainer's on the same fixed tokens."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = torch.tensor([ids], device=device)
        logits = model(input_ids=x).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0].cpu()
    finally:
        model.train(was_training)


class Learner:
    """Everything that trains, in one process (or one FSDP2 rank with ``shard``).

    resume: a checkpoint folder to start from (weights, reference, optimizer and schedule state), or None.
    """

    def __init__(self, cfg: RunConfig, device: torch.device, dtype: torch.dtype, shard=None,
                 resume: Path | None = None):
        t, a = cfg.trainer, cfg.algorithm
        self.cfg, self.device, self.shard = cfg, device, shard
        self.model = load_policy(cfg.model, device, dtype)
        saved = ckpt.load_trainer_state(resume) if resume is not None else None
        if saved is not None:
            ckpt.load_policy_weights(self.model, resume)
        self.reference = make_reference(self.model, cfg.model.lora.enabled) if a.kl_coef > 0 else None
        if saved is not None and saved["counters"].get("reference_reset") and self.reference is not None:
            ckpt.load_reference(self.reference.model, resume)
        if shard is not None:  # parameters (and the frozen reference) sharded across the ranks
            shard.wrap(self.model)
            if self.reference is not None and self.reference.model is not None:
                shard.wrap(self.reference.model)
        policy_steps = t.steps - cfg.critic.warmup_steps  # PPO's critic warm-up steps leave the policy alone
        self.optimizer, self.scheduler = make_optimizer(self.model.parameters(), t,
                                                        policy_steps * t.epochs * t.mini_batches)
        if saved is not None:
            ckpt.load_optimizer_state(self.model, self.optimizer, saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
        self.critic = None  # PPO: critic.path (a model of its own) or critic.shared (a head on the policy)
        if cfg.critic.path or cfg.critic.shared:
            from rlvr.trainer.critic import Critic

            self.critic = Critic(cfg, self.model, device, dtype, resume, saved.get("critic") if saved else None)
        self.runtime = UpdateRuntime.from_config(cfg, self.model, sharded=shard is not None)
        self.vision_files = None  # a vision-language policy: its processor files go into every checkpoint
        if is_vision_config(getattr(self.model, "config", None)):
            self.vision_files = functools.partial(copy_processor_files, model_path(cfg.model.path))

    @property
    def policy(self) -> torch.nn.Module:
        """What a rollout engine reads its weights from (engine.sync_weights)."""
        return self.model

    def update(self, batch, kl_coef: float, step: int) -> tuple[dict[str, float], bool]:
        """old / reference log-probs and advantages (update.prepare), then the optimizer steps (update_policy).
        Returns (metrics, every optimizer step finite)."""
        cfg, a, t = self.cfg, self.cfg.algorithm, self.cfg.trainer
        generator = torch.Generator().manual_seed(step_seed(t.seed, step))  # the mini-batch shuffles
        advantages, pg_mask, loss_mask, prep_metrics = prepare(
            self.model, self.reference, batch, a, kl_coef, t, cfg.rollout.temperature, self.device,
            compare_rollout=cfg.rollout.engine != "hf", runtime=self.runtime, shard=self.shard,
            is_mode=off_policy_mode(cfg), critic=self.critic)
        metrics, finite = update_policy(
            self.model, self.optimizer, self.scheduler, batch, advantages, pg_mask, loss_mask, a, kl_coef, t,
            cfg.rollout.temperature, a.agg_norm_len or cfg.rollout.max_new_tokens, self.device, generator,
            self.runtime, shard=self.shard, critic=self.critic, train_policy=step > cfg.critic.warmup_steps)
        metrics.update({k: float(v) for k, v in prep_metrics.items()})
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        if self.critic is not None:
            metrics["critic/lr"] = self.critic.scheduler.get_last_lr()[0]
        return metrics, finite

    def weights_snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the trainable weights now (CPU), for an engine that loads them later (async runs)."""
        return self.trainable_weights()

    def probe_logprobs(self, ids: list[int]) -> torch.Tensor:
        """The policy's log-probs of fixed tokens (`probe_logprobs`): the trainer's side of a sync's round trip."""
        return probe_logprobs(self.model, ids)

    def close(self) -> None:
        """Nothing to release in one process (a `RayTrainerGroup` stops its ranks)."""

    def reset_reference(self) -> None:
        """ProRL: the reference becomes the current policy, and the optimizer state is cleared."""
        self.reference.reset_to(self.model)
        self.optimizer.state.clear()

    def trainable_weights(self, keep: bool = True) -> dict[str, torch.Tensor]:
        """The full (gathered) tensors of every trainable parameter, on CPU: what a separate rollout engine
        needs after an update (frozen ones never change). Collective under FSDP (every rank calls it, one
        parameter at a time); ``keep`` False (ranks other than 0) takes part in the gathers and keeps nothing."""
        full = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                value = p.detach()
                value = value.full_tensor() if hasattr(value, "full_tensor") else value
                if keep:
                    full[name] = value.cpu().clone()
        return full

    def save(self, output_dir, step: int, tokenizer, driver_state: dict[str, Any], keep: int,
             with_reference: bool) -> Path | None:
        """Write the step's checkpoint (sampler and counters come from the driver in ``driver_state``). Under
        FSDP every rank gathers, rank 0 writes; the other ranks return None."""
        full = self.shard is not None
        model_state = ckpt.full_model_state(self.model) if full else None
        optimizer_state = ckpt.full_optimizer_state(self.model, self.optimizer)
        reference = self.reference.model if with_reference and self.reference is not None else None
        reference_state = ckpt.full_model_state(reference) if full and reference is not None else None
        if full and self.shard.rank != 0:
            return None
        state = {"optimizer": optimizer_state, "scheduler": self.scheduler.state_dict(), **driver_state}
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
        writers = [w for w in (self.critic.save if self.critic is not None else None, self.vision_files) if w]
        return ckpt.save_checkpoint(output_dir, step, self.model, tokenizer, state, keep, reference=reference,
                                    model_state=model_state, reference_state=reference_state,
                                    extra=(lambda folder: [w(folder) for w in writers]) if writers else None)
