"""Learning-rate schedule: linear warm-up, then constant or cosine (values computed by hand)."""

import math

import pytest
import torch

from rlvr.config import TrainerConfig
from rlvr.trainer.optim import lr_factor, make_optimizer


def test_warmup_then_constant():
    # warm-up of 4: (s+1)/4 -> 0.25, 0.5, 0.75, 1.0; then 1
    got = [lr_factor(s, warmup_steps=4, total_steps=10, schedule="constant", min_ratio=0.0) for s in range(6)]
    assert got == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_to_min_ratio():
    f = lambda s: lr_factor(s, warmup_steps=2, total_steps=12, schedule="cosine", min_ratio=0.1)  # noqa: E731
    assert f(2) == pytest.approx(1.0)  # progress 0
    # progress (7-2)/10 = 0.5: 0.1 + 0.9 * 0.5 * (1 + cos(pi/2)) = 0.55
    assert f(7) == pytest.approx(0.55)
    assert f(12) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)
    assert f(4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2)))


def test_optimizer_counts_warmup_in_optimizer_steps():
    cfg = TrainerConfig(lr=1.0, warmup_steps=2, epochs=2, mini_batches=2, schedule="constant")
    p = torch.nn.Parameter(torch.zeros(1))
    opt, sched = make_optimizer([p], cfg, total_optimizer_steps=40)
    lrs = []
    for _ in range(9):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    # 2 rollout steps of warm-up x 2 epochs x 2 mini-batches = 8 optimizer steps: 1/8, 2/8, ... 8/8, 1
    assert lrs == pytest.approx([k / 8 for k in range(1, 9)] + [1.0])


def test_no_trainable_parameters_is_an_error():
    p = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer([p], TrainerConfig(), 10)
