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


def sgd_update(model, batch, micro, algo, epochs=1, mini=1, runtime=None, with_prepare_metrics=False):
    model = copy.deepcopy(model)
    trainer = TrainerConfig(micro_batch_size=micro, epochs=epochs, mini_batches=mini, max_grad_norm=1e9)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = copy.deepcopy(batch)
    adv, pg_mask, loss_mask, prep = prepare(model, None, batch, algo, 0.0, trainer, 1.0, "cpu", runtime=runtime)
    metrics, finite = update_policy(model, opt, sched, batch, adv, pg_mask, loss_mask, algo, 0.0, trainer, 1.0,
                                    7, "cpu", torch.Generator().manual_seed(0), runtime=runtime)
    assert finite
    if with_prepare_metrics:
        metrics = {**{k: float(v) for k, v in prep.items()}, **metrics}
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


def _logp_of(model, batch) -> torch.Tensor:
    from rlvr.trainer.update import _logprobs_of

    logp, _ = _logprobs_of(model, batch, [torch.arange(len(batch))], "cpu", 1.0, 1024, False)
    return logp


def test_rollout_correction_weights_and_masks_the_policy_gradient(model):
    """rollout_logp equal to the trainer's: TIS changes nothing; rollout_logp 1 nat below it on one row (rho = e >
    C = 2): token_truncate weights that row's tokens by 2, token_mask drops them; metrics say by how much."""
    batch = make_batch()
    exact = _logp_of(model, batch) * batch.response_mask
    trainer = TrainerConfig(micro_batch_size=12)

    def prepared(rollout_logp, mode, compare=False):
        b = copy.deepcopy(batch)
        b.rollout_logp = rollout_logp
        algo = AlgorithmConfig(rollout_is=mode, rollout_is_cap=2.0)
        adv, pg_mask, _, metrics = prepare(model, None, b, algo, 0.0, trainer, 1.0, "cpu", compare_rollout=compare)
        return b, pg_mask, metrics

    b, _, metrics = prepared(exact, "none")
    assert b.old_logp is None and not any(k.startswith("rollout/") for k in metrics)  # nothing asked, nothing paid
    b, pg_mask, metrics = prepared(exact, "none", compare=True)
    assert b.old_logp is not None and b.is_weights is None and torch.equal(pg_mask, batch.response_mask)
    assert metrics["rollout/logprob_diff_mean"] < 1e-6 and abs(metrics["rollout/is_ratio_mean"] - 1) < 1e-6

    shifted = exact.clone()
    shifted[0] -= 1.0 * batch.response_mask[0]  # row 0: the engine gave its tokens e times less probability
    row0 = int(batch.response_mask[0].sum())
    b, pg_mask, metrics = prepared(shifted, "token_truncate")
    assert torch.allclose(b.is_weights[0][batch.response_mask[0]], torch.tensor(2.0))
    assert torch.allclose(b.is_weights[1:][batch.response_mask[1:]], torch.tensor(1.0), atol=1e-5)
    expected = row0 / int(batch.response_mask.sum())
    assert float(metrics["rollout/logprob_diff_mean"]) == pytest.approx(expected, abs=1e-5)
    assert float(metrics["rollout/is_clipped_frac"]) == pytest.approx(expected, abs=1e-6)
    b, pg_mask, _ = prepared(shifted, "token_mask")
    assert not pg_mask[0].any() and torch.equal(pg_mask[1:], batch.response_mask[1:])

    # the weights reach the gradient: TIS with exact log-probs = no correction; with row 0 shifted it differs
    algo = AlgorithmConfig(rollout_is="token_truncate")
    plain, _ = sgd_update(model, batch, 12, AlgorithmConfig())
    batch_exact = copy.deepcopy(batch)
    batch_exact.rollout_logp = exact
    same, _ = sgd_update(model, batch_exact, 12, algo)
    batch_shifted = copy.deepcopy(batch)
    batch_shifted.rollout_logp = shifted
    other, _ = sgd_update(model, batch_shifted, 12, algo)
    for p, q, r in zip(plain.parameters(), same.parameters(), other.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert any(not torch.allclose(p, r, atol=1e-6) for p, r in zip(plain.parameters(), other.parameters()))


@pytest.mark.parametrize("mode", ["token_truncate", "sequence_truncate"])
def test_fused_rollout_correction_equals_the_separate_pass(model, mode):
    """One update per batch: the weights f(pi_old / pi_rollout) taken per micro-batch from the update's own
    detached log-probs (UpdateRuntime fuse_is) give the same update and metrics as the no-grad pass before it."""
    from rlvr.trainer.update import UpdateRuntime

    batch = make_batch()
    shifted = _logp_of(model, batch) * batch.response_mask
    shifted[0] -= 1.0 * batch.response_mask[0]  # row 0's weight is truncated at C = 2
    shifted[2] += 0.3 * batch.response_mask[2]
    batch.rollout_logp = shifted
    algo = AlgorithmConfig(rollout_is=mode, rollout_is_cap=2.0)
    separate, m1 = sgd_update(model, batch, 5, algo, with_prepare_metrics=True)
    fused, m2 = sgd_update(model, batch, 5, algo, runtime=UpdateRuntime(fuse_is=True), with_prepare_metrics=True)
    for p, q in zip(separate.parameters(), fused.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    for key in ("logprob_diff_mean", "logprob_diff_max", "is_ratio_mean", "is_weight_mean", "is_clipped_frac"):
        assert m2[f"rollout/{key}"] == pytest.approx(m1[f"rollout/{key}"], abs=1e-5), key
    assert m1["rollout/is_clipped_frac"] > 0
    plain, _ = sgd_update(model, batch, 5, AlgorithmConfig())  # the correction did change the update
    assert any(not torch.allclose(p, q, atol=1e-6) for p, q in zip(plain.parameters(), fused.parameters()))
