"""The update step on a hand-built batch: gradient accumulation is exact and old log-probs are honoured."""

from __future__ import annotations

import copy

import pytest
import torch

from rlvr.config import AlgorithmConfig, TrainerConfig
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.trainer.batch import RolloutBatch
from rlvr.trainer.update import prepare, update_policy


def make_batch(b=12, lp=5, t=7, vocab=40, seed=0) -> RolloutBatch:
    g = torch.Generator().manual_seed(seed)
    prompt_len = torch.randint(2, lp + 1, (b,), generator=g)
    resp_len = torch.randint(1, t + 1, (b,), generator=g)
    prompt_mask = torch.arange(lp).flip(0).unsqueeze(0) < prompt_len.unsqueeze(1)  # left padded
    response_mask = torch.arange(t).unsqueeze(0) < resp_len.unsqueeze(1)  # right padded
    ids = lambda shape: torch.randint(4, vocab, shape, generator=g)  # noqa: E731
    return RolloutBatch(
        prompt_ids=torch.where(prompt_mask, ids((b, lp)), 0), prompt_mask=prompt_mask,
        response_ids=torch.where(response_mask, ids((b, t)), 0), response_mask=response_mask,
        rewards=torch.rand(b, generator=g), group_ids=torch.arange(b) // 4, truncated=resp_len == t,
    )


def sgd_update(model, batch, micro, algo, epochs=1, mini=1):
    model = copy.deepcopy(model)
    trainer = TrainerConfig(micro_batch_size=micro, epochs=epochs, mini_batches=mini, max_grad_norm=1e9)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = copy.deepcopy(batch)
    adv, pg_mask, loss_mask, _ = prepare(model, None, batch, algo, 0.0, trainer, 1.0, "cpu")
    metrics, finite = update_policy(model, opt, sched, batch, adv, pg_mask, loss_mask, algo, 0.0, trainer, 1.0,
                                    7, "cpu", torch.Generator().manual_seed(0))
    assert finite
    return model, metrics


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tiny_llama(build_char_tokenizer(), hidden=32, layers=1, heads=2)


@pytest.mark.parametrize("agg, extra", [
    ("token-mean", {}), ("seq-mean-token-mean", {}), ("seq-mean-token-sum-norm", {}),
    ("seq-mean-token-mean", {"overlong_filter": True}), ("token-mean", {"entropy_top_frac": 0.3}),
    ("token-mean", {"entropy_coef": 0.01}),
])
def test_micro_batching_gives_the_full_batch_gradient(model, agg, extra):
    batch = make_batch()
    assert batch.truncated.any() and not batch.truncated.all()
    algo = AlgorithmConfig(agg=agg, **extra)
    full, m_full = sgd_update(model, batch, 12, algo)
    split, m_split = sgd_update(model, batch, 5, algo)  # 5 + 5 + 2 rows
    moved = 0.0
    for (name, a), b, p0 in zip(full.named_parameters(), split.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name
        moved = max(moved, float((a - p0).detach().abs().max()))
    assert moved > 1e-4, "SGD with lr 1 did not move the weights: the update did nothing"
    assert m_full["loss"] == pytest.approx(m_split["loss"], abs=1e-6)


def test_second_epoch_uses_stored_old_logprobs(model):
    """With 2 epochs the ratio departs from 1 in the second epoch (old log-probs are from before the update)."""
    batch = make_batch()
    _, metrics = sgd_update(model, batch, 12, AlgorithmConfig(), epochs=2)
    assert metrics["ratio_max"] > 1.0 + 1e-6
    _, one = sgd_update(model, batch, 12, AlgorithmConfig(), epochs=1)
    assert one["ratio_max"] == pytest.approx(1.0, abs=1e-6)


def test_group_key_pools_baselines_across_prompts():
    """TRR++: with a group_key, completions of different prompts sharing the key share one baseline."""
    from rlvr.trainer.batch import group_ids_for
    from rlvr.types import Example

    examples = [Example("q", "a", metadata={"task": t}) for t in ("deduction", "abduction", "deduction")]
    assert group_ids_for(examples, 2, "").tolist() == [0, 0, 1, 1, 2, 2]
    assert group_ids_for(examples, 2, "task").tolist() == [0, 0, 1, 1, 0, 0]
