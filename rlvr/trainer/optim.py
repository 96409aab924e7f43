"""AdamW with linear warm-up followed by a constant or cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch

from rlvr.config import TrainerConfig


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based).

    warm-up: (step + 1) / warmup_steps for step < warmup_steps;
    then constant 1, or cosine from 1 down to ``min_ratio`` at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params, cfg: TrainerConfig, total_optimizer_steps: int):
    """AdamW over the trainable parameters and its LambdaLR schedule (stepped once per optimizer step)."""
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters: nothing would be updated")
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps * cfg.epochs * cfg.mini_batches

    def factor(step: int) -> float:
        return lr_factor(step, warmup_steps=warmup, total_steps=total_optimizer_steps, schedule=cfg.schedule,
                         min_ratio=cfg.min_lr_ratio)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
