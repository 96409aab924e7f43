"""The update's speed options (trainer.compile / packing / reuse_rollout_logprobs) give the default path's
losses, gradients and weights; compile falls back to eager; reuse is refused where it would not be exact."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch

from rlvr.config import AlgorithmConfig, RunConfig, TrainerConfig
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.trainer.batch import RolloutBatch, build_batch
from rlvr.trainer.policy import packed_response_logprobs, response_logprobs
from rlvr.trainer.update import UpdateRuntime, _logprobs_of, prepare, reuse_refusal, update_policy
from rlvr.types import Example, RewardResult


def varied_batch(b=10, max_prompt=12, max_resp=40, vocab=40, seed=0) -> RolloutBatch:
    """Rows of very different lengths: responses 1 .. max_resp, prompts 1 .. max_prompt."""
    g = torch.Generator().manual_seed(seed)
    prompt_len = torch.randint(1, max_prompt + 1, (b,), generator=g)
    resp_len = torch.cat([torch.tensor([1, max_resp]), torch.randint(1, max_resp + 1, (b - 2,), generator=g)])
    prompt_mask = torch.arange(max_prompt).flip(0).unsqueeze(0) < prompt_len.unsqueeze(1)
    response_mask = torch.arange(max_resp).unsqueeze(0) < resp_len.unsqueeze(1)
    ids = lambda shape: torch.randint(4, vocab, shape, generator=g)  # noqa: E731
    return RolloutBatch(
        prompt_ids=torch.where(prompt_mask, ids((b, max_prompt)), 0), prompt_mask=prompt_mask,
        response_ids=torch.where(response_mask, ids((b, max_resp)), 0), response_mask=response_mask,
        rewards=torch.rand(b, generator=g), group_ids=torch.arange(b) // 5, truncated=resp_len == max_resp,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tiny_llama(build_char_tokenizer(), hidden=32, layers=2, heads=2)


def run_update(model, batch, runtime, algo=None, micro=3, epochs=1, mini=1, steps=1, reference=None, temp=1.0):
    """SGD steps (lr 1) with a runtime; returns (updated model, per-step metrics)."""
    model = copy.deepcopy(model)
    algo = algo or AlgorithmConfig()
    trainer = TrainerConfig(micro_batch_size=micro, epochs=epochs, mini_batches=mini, max_grad_norm=1e9)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    out = []
    for step in range(steps):
        b = copy.deepcopy(batch)
        adv, pg_mask, loss_mask, prep = prepare(model, reference, b, algo, 0.0, trainer, temp, "cpu",
                                                runtime=runtime)
        metrics, finite = update_policy(model, opt, sched, b, adv, pg_mask, loss_mask, algo, 0.0, trainer, temp,
                                        40, "cpu", torch.Generator().manual_seed(step), runtime)
        assert finite
        out.append({**prep, **metrics})
    return model, out


def moved(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def assert_same_weights(a, b, atol=2e-5):
    worst = moved(a, b)
    assert worst <= atol, worst


# ---------------------------------------------------------------------------------------------- packing


def test_packed_logprobs_equal_the_padded_ones(model):
    batch = varied_batch()
    rows = torch.arange(len(batch))
    micros = batch.packed_micro_batches(rows, 2, "cpu")
    assert sorted(torch.cat([r for r, _ in micros]).tolist()) == rows.tolist()  # every row exactly once
    prompt_len, resp_len = batch.lengths(rows)
    capacity = int((prompt_len + resp_len).max())
    assert all(p.input_ids.shape[1] == capacity for _, p in micros)  # no row longer than the longest sequence
    packed_rows = sum(p.input_ids.shape[0] for _, p in micros)
    assert packed_rows < len(batch)
    model.eval()
    ids, mask, t = batch.model_inputs(rows, "cpu")
    want, want_ent = response_logprobs(model, ids, mask, t, temperature=0.7, chunk_size=16, with_entropy=True)
    for sub, pack in micros:
        got, ent = packed_response_logprobs(model, pack, temperature=0.7, chunk_size=16, with_entropy=True)
        m = batch.response_mask[sub][:, : got.shape[1]]
        w = pack.out_shape[1]
        assert torch.allclose(got[m], want[sub][:, :w][m], atol=1e-5)
        assert torch.allclose(ent[m], want_ent[sub][:, :w][m], atol=1e-5)
        assert (got[~m] == 0).all()
    model.train()


@pytest.mark.parametrize("algo, micro, epochs, mini", [
    (AlgorithmConfig(), 3, 1, 1),
    (AlgorithmConfig(agg="seq-mean-token-mean"), 2, 2, 2),  # old_logp recomputed (packed), two mini-batches
    (AlgorithmConfig(entropy_top_frac=0.5, entropy_coef=0.01), 4, 1, 1),
])
def test_packing_gives_the_padded_update(model, algo, micro, epochs, mini):
    batch = varied_batch()
    padded, m_pad = run_update(model, batch, UpdateRuntime(), algo, micro, epochs, mini)
    packed, m_pack = run_update(model, batch, UpdateRuntime(packing=True), algo, micro, epochs, mini)
    assert moved(padded, model) > 1e-3
    assert_same_weights(padded, packed)
    assert m_pad[0]["loss"] == pytest.approx(m_pack[0]["loss"], abs=1e-5)
    assert m_pad[0]["entropy"] == pytest.approx(m_pack[0]["entropy"], abs=1e-5)


def test_regrouping_rows_into_micro_batches_keeps_the_gradient(model):
    """Accumulation is normalised by whole-mini-batch counts: any grouping of rows gives the same step."""
    batch = varied_batch()
    algo = AlgorithmConfig(agg="seq-mean-token-sum-norm")
    one, _ = run_update(model, batch, UpdateRuntime(), algo, micro=10)
    many, _ = run_update(model, batch, UpdateRuntime(), algo, micro=1)
    packed_one_row_each, _ = run_update(model, batch, UpdateRuntime(packing=True), algo, micro=1)
    assert_same_weights(one, many)
    assert_same_weights(one, packed_one_row_each)


def test_packing_with_a_reference(model):
    batch = varied_batch()
    from rlvr.trainer.policy import make_reference

    algo = AlgorithmConfig(kl_coef=0.1)
    base = copy.deepcopy(model)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ref = make_reference(base, lora=False)
    padded, m1 = run_update(model, batch, UpdateRuntime(), algo, reference=ref)
    packed, m2 = run_update(model, batch, UpdateRuntime(packing=True), algo, reference=ref)
    assert m1[0]["kl"] > 0 and m1[0]["kl"] == pytest.approx(m2[0]["kl"], abs=1e-6)
    assert_same_weights(padded, packed)


def test_packing_is_checked_once_and_dropped_when_sequences_leak(model, monkeypatch, caplog):
    batch = varied_batch()
    runtime = UpdateRuntime(packing=True)
    _, m = run_update(model, batch, runtime, steps=2)
    assert m[0]["perf/packing_check_diff"] <= 1e-5 and "perf/packing_check_diff" not in m[1]
    assert runtime.packing

    import rlvr.trainer.update as update

    real = update.packed_response_logprobs

    def leaky(*args, **kwargs):  # as if the attention ignored the packed position ids
        logp, entropy = real(*args, **kwargs)
        return logp - 0.1 * (logp != 0), entropy

    monkeypatch.setattr(update, "packed_response_logprobs", leaky)
    padded, _ = run_update(model, batch, UpdateRuntime())
    runtime = UpdateRuntime(packing=True)
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        checked, m = run_update(model, batch, runtime)
    assert not runtime.packing and m[0]["perf/packing_check_diff"] == pytest.approx(0.1, abs=1e-4)
    assert sum("does not keep packed sequences apart" in r.getMessage() for r in caplog.records) == 1
    assert_same_weights(padded, checked, atol=1e-6)


# ---------------------------------------------------------------------------------------------- compile


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True])
def test_compile_matches_eager_for_two_steps(model, packing):
    batch = varied_batch(b=8, max_resp=20)
    algo = AlgorithmConfig(agg="seq-mean-token-mean")
    eager, m_eager = run_update(model, batch, UpdateRuntime(), algo, micro=3, epochs=2, steps=2)
    runtime = UpdateRuntime(compile=True, packing=packing)
    compiled, m_comp = run_update(model, batch, runtime, algo, micro=3, epochs=2, steps=2)
    assert runtime.forward.enabled, "compile fell back to eager"
    assert "perf/compile_s" in m_comp[0] and "perf/compile_s" not in m_comp[1]
    for a, b in zip(m_eager, m_comp):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert_same_weights(eager, compiled, atol=1e-4)
    assert not any("_orig_mod" in k for k in compiled.state_dict())


def test_compile_failure_falls_back_to_eager(model, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    batch = varied_batch(b=6, max_resp=10)
    eager, m_eager = run_update(model, batch, UpdateRuntime(), epochs=2)
    runtime = UpdateRuntime(compile=True)
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        fallback, m_fb = run_update(model, batch, runtime, epochs=2, steps=1)
    assert not runtime.forward.enabled
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler found" in warnings[0].getMessage()
    assert_same_weights(eager, fallback, atol=1e-6)
    assert "perf/compile_s" not in m_fb[0]


def test_compiled_call_failing_at_first_backward_falls_back(model, monkeypatch, caplog):
    """A failure after some gradient was accumulated: the mini-batch restarts eagerly from zero grads."""
    class Boom(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("inductor backward failed")

    def fake_compile(module, **kwargs):
        def call(**kw):
            out = module(**kw)
            if torch.is_grad_enabled():
                out.last_hidden_state = Boom.apply(out.last_hidden_state)
            return out
        return call

    monkeypatch.setattr(torch, "compile", fake_compile)
    batch = varied_batch(b=6, max_resp=10)
    eager, _ = run_update(model, batch, UpdateRuntime(), micro=2)
    runtime = UpdateRuntime(compile=True)
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        fallback, _ = run_update(model, batch, runtime, micro=2, steps=1)
    assert not runtime.forward.enabled
    assert sum("inductor backward failed" in r.getMessage() for r in caplog.records) == 1
    assert_same_weights(eager, fallback, atol=1e-6)


# ---------------------------------------------------------------------------------------------- reuse


PROMPTS = ["1+1=", "Q: 47+38-19\nA: ", "x", "12*3="]


def rollout_batch(model, temperature, n=3, max_new_tokens=12, seed=1):
    tokenizer = build_char_tokenizer()
    engine = HFRolloutEngine(model, tokenizer, "cpu")
    torch.manual_seed(seed)
    groups = engine.generate(PROMPTS, n, max_new_tokens=max_new_tokens, temperature=temperature)
    examples = [Example(question=p, answer="") for p in PROMPTS]
    results = [RewardResult(float(i % 2)) for i in range(len(PROMPTS) * n)]
    return build_batch(examples, groups, results, tokenizer.pad_token_id)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_hf_rollout_logprobs_equal_the_recomputed_old_logprobs(model, temperature):
    batch = rollout_batch(model, temperature)
    assert batch.rollout_logp is not None
    model.train()  # the update's mode (the engine generates in eval mode)
    old, _ = _logprobs_of(model, batch, [torch.arange(len(batch))], "cpu", temperature, 64, False)
    diff = float((old - batch.rollout_logp).abs()[batch.response_mask].max())
    assert diff <= 1e-4, diff


def test_reused_old_logprobs_give_the_recomputed_update(model, caplog):
    batch = rollout_batch(model, 1.0)
    recomputed, m_rec = run_update(model, batch, UpdateRuntime(), epochs=2, mini=2)
    runtime = UpdateRuntime(reuse=True)
    with caplog.at_level(logging.INFO, logger="rlvr"):
        reused, m_reu = run_update(model, batch, runtime, epochs=2, mini=2, steps=2)
    assert m_rec[0]["perf/old_logp_reused"] == 0.0
    assert m_reu[0]["perf/old_logp_reused"] == 1.0 and m_reu[1]["perf/old_logp_reused"] == 1.0
    assert m_reu[0]["perf/reuse_check_diff"] <= 1e-4 and "perf/reuse_check_diff" not in m_reu[1]
    assert runtime.reuse and runtime.reuse_checked
    assert moved(recomputed, model) > 1e-3
    assert_same_weights(recomputed, copy.deepcopy(run_update(model, batch, UpdateRuntime(reuse=True),
                                                              epochs=2, mini=2)[0]), atol=1e-5)


def test_reuse_with_packing(model):
    batch = rollout_batch(model, 0.7)
    recomputed, _ = run_update(model, batch, UpdateRuntime(), epochs=2, temp=0.7)
    both, m = run_update(model, batch, UpdateRuntime(packing=True, reuse=True), epochs=2, temp=0.7)
    assert m[0]["perf/old_logp_reused"] == 1.0
    assert_same_weights(recomputed, both, atol=1e-5)


def test_mismatched_rollout_logprobs_are_detected_and_recomputed(model, caplog):
    batch = rollout_batch(model, 1.0)
    batch.rollout_logp = batch.rollout_logp + 0.01 * batch.response_mask  # as if another policy sampled
    recomputed, _ = run_update(model, batch, UpdateRuntime(), epochs=2)
    runtime = UpdateRuntime(reuse=True)
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        checked, m = run_update(model, batch, runtime, epochs=2, steps=2)
    assert not runtime.reuse
    assert m[0]["perf/old_logp_reused"] == 0.0 and m[0]["perf/reuse_check_diff"] == pytest.approx(0.01, abs=1e-4)
    assert sum("differ from the policy's recomputed" in r.getMessage() for r in caplog.records) == 1
    first_step_recomputed, _ = run_update(model, batch, UpdateRuntime(), epochs=2, steps=1)
    one_step_checked, _ = run_update(model, batch, UpdateRuntime(reuse=True), epochs=2, steps=1)
    assert_same_weights(first_step_recomputed, one_step_checked, atol=1e-6)


def test_no_reuse_for_a_single_update(model):
    """One update without KL-in-reward needs no old_logp at all: nothing is reused or recomputed."""
    batch = rollout_batch(model, 1.0)
    _, m = run_update(model, batch, UpdateRuntime(reuse=True))
    assert "perf/old_logp_reused" not in m[0]


def test_no_reuse_when_forking_tokens_need_the_old_entropy(model):
    batch = rollout_batch(model, 1.0)
    _, m = run_update(model, batch, UpdateRuntime(reuse=True), AlgorithmConfig(entropy_top_frac=0.5), epochs=2)
    assert m[0]["perf/old_logp_reused"] == 0.0


def cfg_with(**rollout) -> RunConfig:
    cfg = RunConfig()
    for key, value in rollout.items():
        setattr(cfg.rollout, key, value)
    return cfg


def test_reuse_refusals(model):
    assert reuse_refusal(cfg_with(), model) == ""
    assert "top_k" in reuse_refusal(cfg_with(top_k=20), model)
    assert "top_p" in reuse_refusal(cfg_with(top_p=0.9), model)
    assert "vllm" in reuse_refusal(cfg_with(engine="vllm"), model)
    never = cfg_with()
    never.trainer.reuse_rollout_logprobs = "never"
    assert "never" in reuse_refusal(never, model)
    with_dropout = copy.deepcopy(model)
    with_dropout.model.layers[0].add_module("drop", torch.nn.Dropout(0.1))  # e.g. a LoRA dropout
    assert "dropout" in reuse_refusal(cfg_with(), with_dropout)
    assert not UpdateRuntime.from_config(cfg_with(top_k=20), model).reuse
    assert UpdateRuntime.from_config(cfg_with(), model).reuse


def test_config_keys_are_validated():
    from rlvr.config import ConfigError, validate

    cfg = RunConfig()
    cfg.reward.components = RunConfig().reward.components or []
    cfg.trainer.reuse_rollout_logprobs = "sometimes"
    with pytest.raises(ConfigError, match="reuse_rollout_logprobs"):
        validate(cfg)


# ---------------------------------------------------------------------------------------------- in the loop


def test_train_with_packing_and_reuse_matches_the_default_path(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """`rlvr train` with epochs 2: packing + reused rollout log-probs give step 1's loss / grad norm of the
    padded, recomputed default (the same rollouts: same seeds and weights)."""
    from tests.trainer.test_trainer_loop import make_cfg

    from rlvr.config import config_from_dict
    from rlvr.trainer import train

    runs = {}
    for name, extra in {"default": {"reuse_rollout_logprobs": "never"}, "fast": {"packing": True}}.items():
        cfg = config_from_dict(make_cfg(tmp_path / name, tiny_model_dir, arithmetic_jsonl,
                                        trainer={"steps": 1, "epochs": 2, "lr": 1e-2, **extra}))
        train(cfg)
        runs[name] = json.loads((Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()[0])
    default, fast = runs["default"], runs["fast"]
    assert default["reward/mean"] == fast["reward/mean"]
    assert default["perf/old_logp_reused"] == 0.0 and fast["perf/old_logp_reused"] == 1.0
    assert fast["perf/reuse_check_diff"] <= 1e-4
    assert fast.get("perf/packing_check_diff", 0.0) <= 1e-4  # present only when two sequences shared a row
    assert default["loss"] == pytest.approx(fast["loss"], abs=1e-5)
    assert default["grad_norm"] == pytest.approx(fast["grad_norm"], rel=1e-4)
