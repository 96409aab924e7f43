"""Asynchronous RL (async.max_staleness > 0; rlvr/trainer/pipeline.py) on the tiny Llama, rollout process included.

- max_staleness 0 is the synchronous loop, bit for bit;
- fixed mode, k = 1: the same weights as a reference that samples batch n with its own saved weights of version
  max(0, n - 2) and trains on it with decoupled PPO, all in this process, one step after another;
- a fixed-mode run resumed from a mid-run checkpoint (its sampled-ahead batches inside) ends with the same weights;
- a stalled weight sync hits async.sync_timeout_s, stops with a checkpoint, and the resumed run ends with the same
  weights as the uninterrupted one;
- free mode never trains on a sample older than k (a trainer slowed on purpose), and drops and counts the older
  groups (a producer held back on purpose);
- partial rollouts: an interrupted completion resumed under new weights keeps each segment's version and log-probs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from rlvr.config import ConfigError, config_from_dict
from rlvr.trainer import train
from rlvr.trainer.pipeline import AsyncRollout, PipelineError
from rlvr.types import Completion
from tests.trainer.test_trainer_loop import make_cfg, weights

STEPS = 4
ONE_THREAD = {"rollout_threads": 1, "trainer_threads": 1}  # the reference runs with one thread too: same numerics


def async_cfg(tmp_path, model_dir, data_path, name="run", **async_section):
    cfg = make_cfg(tmp_path, model_dir, data_path, trainer={"steps": STEPS, "lr": 1e-3, "micro_batch_size": 8,
                                                            "seed": 1},
                   checkpoint={"every": 2, "keep": 10}, **{"async": {**ONE_THREAD, **async_section}})
    cfg["output_dir"] = str(tmp_path / name)
    return cfg


def final(run: Path, step: int = STEPS) -> dict[str, torch.Tensor]:
    return weights(run / "checkpoints" / f"step_{step:06d}")


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def assert_same(a: dict, b: dict) -> None:
    diff = max_diff(a, b)
    assert diff == 0.0, f"weights differ by up to {diff:.3g}"


# Largest |weight difference| after 4 steps between the run (rollout in its own process) and the reference (the same
# sampling in this process): the samples are identical, but the rollout log-probs mu differ by ~3e-9 on average
# (another process's kernels: same code, one thread each), which moves pi_prox / mu and, through Adam, the
# weights by up to 4.6e-6 (measured). Sampling batch n with version n - 1 instead (the wrong schedule) differs by
# far more (checked below).
REFERENCE_TOL = 2e-5


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory, tiny_model_dir, arithmetic_jsonl) -> Path:
    """An uninterrupted fixed-mode k = 1 run of STEPS steps (checkpoints at 2 and 4)."""
    tmp = tmp_path_factory.mktemp("fixed")
    cfg = config_from_dict(async_cfg(tmp, tiny_model_dir, arithmetic_jsonl, max_staleness=1))
    train(cfg)
    return Path(cfg.output_dir)


def reference_weights(cfg, lag: int = 2) -> dict[str, torch.Tensor]:
    """Fixed-mode k = 1 computed by hand in this process: batch n sampled by an HF engine holding the learner's
    weights of version max(0, n - lag) (kept after each update; lag 2 is k = 1), then the learner's decoupled-PPO
    update."""
    from rlvr.data import PromptSampler
    from rlvr.data.checks import drop_long_prompts
    from rlvr.rewards import RewardScorer
    from rlvr.rollout import make_engine
    from rlvr.trainer.batch import build_batch
    from rlvr.trainer.learner import Learner
    from rlvr.trainer.loop import load_data, render_prompts, sample_groups, seed_step
    from rlvr.trainer.policy import load_policy, load_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.trainer.seed)
        examples, held_out = load_data(cfg)
        tokenizer = load_tokenizer(cfg.model)
        render_prompts(cfg, tokenizer, examples, held_out)
        examples, _ = drop_long_prompts(cfg, tokenizer, examples, held_out)
        sampler = PromptSampler(examples, cfg.rollout.prompts_per_step, seed=cfg.trainer.seed,
                                shuffle=cfg.data.shuffle)
        learner = Learner(cfg, torch.device("cpu"), torch.float32)
        torch.manual_seed(cfg.trainer.seed)
        behaviour = load_policy(cfg.model, torch.device("cpu"), torch.float32)  # the sampler's own copy
        engine = make_engine(cfg, behaviour, tokenizer, torch.device("cpu"), torch.float32, [])
        r = cfg.reward
        scorer = RewardScorer(r.components, r.timeout_s, r.num_workers, memory_limit_mb=r.memory_limit_mb)
        saved = {0: learner.trainable_weights()}
        own = dict(behaviour.named_parameters())
        try:
            for step in range(1, cfg.trainer.steps + 1):
                with torch.no_grad():
                    for name, value in saved[max(0, step - lag)].items():
                        own[name].copy_(value)
                seed_step(cfg.trainer.seed, step)
                ex, groups, results, _ = sample_groups(cfg, sampler, engine, scorer, step)
                batch = build_batch(ex, groups, results, tokenizer.pad_token_id, cfg.algorithm.group_key)
                learner.update(batch, cfg.algorithm.kl_coef, step)
                saved[step] = learner.trainable_weights()
        finally:
            scorer.close()
        return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}
    finally:
        torch.set_num_threads(threads)


def test_max_staleness_0_is_the_synchronous_loop(tmp_path, tiny_model_dir, arithmetic_jsonl):
    plain = make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl)
    train(config_from_dict(plain))
    zero = {**plain, "output_dir": str(tmp_path / "zero"), "async": {"max_staleness": 0, "mode": "fixed"}}
    train(config_from_dict(zero))
    assert_same(final(Path(plain["output_dir"]), 3), final(tmp_path / "zero", 3))
    assert not any(k.startswith("async/") for k in metrics(tmp_path / "zero")[-1])


def test_fixed_k1_matches_the_reference_schedule(fixed_run, tiny_model_dir, arithmetic_jsonl):
    rows = metrics(fixed_run)
    # batch n was sampled by version max(0, n - 2): staleness 0 at step 1, then exactly 1
    assert [r["async/version_min"] for r in rows] == [0, 0, 1, 2]
    assert [r["async/staleness_max"] for r in rows] == [0, 1, 1, 1]
    assert all(r["async/dropped_groups"] == 0 for r in rows)
    assert rows[1]["rollout/logprob_diff_max"] > 0  # off-policy for real: mu (version 0) is not pi_prox (1)
    comps = [json.loads(x) for x in (fixed_run / "completions.jsonl").read_text().splitlines()]
    assert {(c["step"], c["version"]) for c in comps} == {(1, 0), (2, 0), (3, 1), (4, 2)}
    cfg = config_from_dict(async_cfg(fixed_run.parent, tiny_model_dir, arithmetic_jsonl, "reference",
                                     max_staleness=1))
    got = final(fixed_run)
    want = reference_weights(cfg)
    assert max_diff({k: want[k] for k in got}, got) <= REFERENCE_TOL
    wrong = reference_weights(cfg, lag=1)  # batch n from version n - 1: a schedule with no staleness
    assert max_diff({k: wrong[k] for k in got}, got) > 10 * REFERENCE_TOL


def test_a_fixed_mode_run_resumes_with_its_sampled_batches(fixed_run, tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "resumed", max_staleness=1)
    run = Path(cfg["output_dir"])
    shutil.copytree(fixed_run, run)
    shutil.rmtree(run / "checkpoints" / f"step_{STEPS:06d}")  # as if killed after the step-2 checkpoint
    state = torch.load(run / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=False)
    assert [b.step for b in state["async"]["ready"]] == [3, 4]  # sampled ahead: in the checkpoint
    train(config_from_dict(cfg))
    assert_same(final(fixed_run), final(run))


def test_a_stalled_weight_sync_stops_resumably(fixed_run, tmp_path, tiny_model_dir, arithmetic_jsonl, monkeypatch):
    from rlvr.rollout.process import RolloutProcess
    from rlvr.trainer.learner import Learner

    cfg = async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "stalled", max_staleness=1, sync_timeout_s=3.0)
    cfg["checkpoint"] = {"every": 0, "keep": 10}
    seen: dict = {}
    original_init, original_update = RolloutProcess.__init__, Learner.update
    original_start = AsyncRollout.start

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        seen["process"] = self

    def start(self, *args, **kwargs):
        seen["pipeline"] = self
        return original_start(self, *args, **kwargs)

    def update(self, batch, kl_coef, step):
        if step == 2:  # once the queued batches are sampled, the rollout process stops answering (SIGSTOP)
            pipe = seen["pipeline"]
            with pipe._cond:
                pipe._wait(lambda: not pipe._jobs)
            os.kill(seen["process"].process.pid, signal.SIGSTOP)
        return original_update(self, batch, kl_coef, step)

    monkeypatch.setattr(RolloutProcess, "__init__", init)
    monkeypatch.setattr(AsyncRollout, "start", start)
    monkeypatch.setattr(Learner, "update", update)
    t0 = time.monotonic()
    with pytest.raises(PipelineError, match="timed out.*sync_timeout_s = 3.*resume with the same command"):
        train(config_from_dict(cfg))
    assert time.monotonic() - t0 < 60
    run = Path(cfg["output_dir"])
    last = sorted((run / "checkpoints").glob("step_*"))[-1]
    assert last.name in ("step_000002", "step_000003")  # the steps trained before the failure was seen
    state = torch.load(last / "trainer_state.pt", weights_only=False)
    assert state["async"]["jobs"][0][:1] == ("weights",) and state["async"]["jobs"][0][2] == 2  # the failed sync
    monkeypatch.undo()
    cfg["checkpoint"] = {"every": 2, "keep": 10}
    train(config_from_dict(cfg))  # the same command: the failed sync and its batch are replayed
    assert_same(final(fixed_run), final(run))


def test_free_mode_never_trains_on_a_sample_older_than_k(tmp_path, tiny_model_dir, arithmetic_jsonl, monkeypatch):
    from rlvr.trainer.learner import Learner

    original = Learner.update

    def slow_update(self, batch, kl_coef, step):  # the producer runs ahead while the trainer is slow
        time.sleep(0.5)
        return original(self, batch, kl_coef, step)

    monkeypatch.setattr(Learner, "update", slow_update)
    cfg = async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "free", max_staleness=1, mode="free")
    cfg["trainer"]["steps"] = 5
    train(config_from_dict(cfg))
    run = Path(cfg["output_dir"])
    rows = metrics(run)
    assert len(rows) == 5
    assert all(r["async/staleness_max"] <= 1 for r in rows)
    comps = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    assert all(0 <= c["step"] - 1 - c["version"] <= 1 for c in comps)
    assert max(c["version"] for c in comps) >= 3  # it did follow the trainer's weights


def test_a_free_mode_checkpoint_keeps_its_buffered_groups(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "free_resume", max_staleness=2, mode="free")
    train(config_from_dict(cfg))
    run = Path(cfg["output_dir"])
    state = torch.load(run / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=False)
    saved = state["async"]
    assert saved["mode"] == "free" and saved["round"] >= 2
    assert all(len(group) == 3 for group in saved["groups"])  # (example, completions, results)
    shutil.rmtree(run / "checkpoints" / f"step_{STEPS:06d}")
    train(config_from_dict(cfg))  # resumes at step 2 with those groups (too old ones are dropped and counted)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["async/staleness_max"] <= 2 for r in rows)
    # step 3 trained on the oldest P saved groups (none is older than k = 2 at version 2)
    step3 = [r["completion"] for r in map(json.loads, (run / "completions.jsonl").read_text().splitlines())
             if r["step"] == 3]
    per_step = cfg["rollout"]["prompts_per_step"]
    assert step3 == [c.text for _, group, _ in saved["groups"][:per_step] for c in group]


class GatedEngine:
    """A fake engine for the producer: generate blocks until ``gate`` is set; every load is acknowledged with
    the probe log-probs the fake learner expects."""

    def __init__(self):
        self.gate = threading.Event()
        self.version = 0
        self.generated = 0

    def load_weights(self, weights, version, probe_ids, timeout_s):
        self.version = version
        return [weights["probe"]]

    def generate(self, prompts, n, **kwargs):
        self.gate.wait(10)
        self.generated += 1
        return [[Completion("x", [1], [0.0], "eos", [1], version=self.version) for _ in range(n)] for _ in prompts]

    def interrupt(self):
        pass


class FakeLearner:
    def __init__(self, probe):
        self.probe = probe

    def weights_snapshot(self):
        return {"probe": self.probe}

    def probe_logprobs(self, ids):
        return self.probe


def free_pipeline(tmp_path, tiny_model_dir, arithmetic_jsonl, engine, k=1):
    cfg = config_from_dict(async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, max_staleness=k, mode="free"))
    cfg.rollout.prompts_per_step, cfg.rollout.n = 2, 1

    def sample(generate, step):
        examples = [f"round {step}", f"round {step}"]
        groups = generate(examples, 1)
        return examples, groups, [None, None], {"time/rollout_s": 0.0}

    return AsyncRollout(cfg, engine, sample, [1, 2]), cfg


def test_free_mode_drops_and_counts_groups_older_than_k(tmp_path, tiny_model_dir, arithmetic_jsonl):
    engine = GatedEngine()
    pipe, _ = free_pipeline(tmp_path, tiny_model_dir, arithmetic_jsonl, engine)
    learner = FakeLearner(torch.zeros(1))
    pipe.start(0, learner)
    try:
        time.sleep(0.3)  # the producer's first round (version 0) is in flight, held at the gate
        for version in (1, 2, 3):  # the trainer moves on three versions meanwhile
            pipe.push(version, learner)
        engine.gate.set()
        examples, groups, _, m = pipe.next_batch(4)  # current version 3, k = 1: version 0 is too old
        assert m["async/dropped_groups"] == 2.0
        assert all(c.version >= 2 for g in groups for c in g)
        assert m["async/staleness_max"] <= 1
    finally:
        pipe.close()


def test_a_sync_whose_round_trip_differs_stops_the_run(tmp_path, tiny_model_dir, arithmetic_jsonl):
    engine = GatedEngine()
    engine.gate.set()
    engine.load_weights = lambda weights, version, probe_ids, timeout_s: [torch.ones(1)]  # stale weights kept
    pipe, _ = free_pipeline(tmp_path, tiny_model_dir, arithmetic_jsonl, engine)
    pipe.start(0, FakeLearner(torch.zeros(1)))
    try:
        with pytest.raises(PipelineError, match="differ from the trainer's"):
            pipe.next_batch(1)
    finally:
        pipe.close()


def test_partial_rollout_segments_keep_their_versions_and_logprobs(tmp_path, tiny_model_dir, arithmetic_jsonl):
    from rlvr.rollout.worker import RolloutWorker
    from rlvr.trainer.learner import probe_logprobs

    cfg = config_from_dict(async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, max_staleness=1, mode="free",
                                     partial_rollout=True))
    stop = threading.Event()
    worker = RolloutWorker(cfg, 1, stop)
    kwargs = dict(max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0, batch_size=0)
    stop.set()  # interrupted at the first token boundary: one token each, from version 0
    groups, _, _ = worker.generate(["3+4=", "1+1="], 3, {**kwargs, "seeds": [5, 6]})
    first = [c for g in groups for c in g]
    assert all(c.finish_reason == "interrupted" and len(c.token_ids) == 1 and c.version == 0 for c in first)
    import copy

    old_model = copy.deepcopy(worker.model)
    new = {k: v + 0.05 * torch.randn_like(v) for k, v in worker.model.named_parameters()}
    worker.load_weights(new, 1)
    stop.clear()
    groups, _, version = worker.resume(groups, kwargs, [5, 6])
    assert version == 1
    for g in groups:
        for c in g:
            assert c.finish_reason in ("eos", "length") and c.segments[0] == [0, 1]
            assert c.segments[1][0] == 1 and sum(n for _, n in c.segments) == len(c.token_ids) <= 12
            # segment 2's log-probs are the new weights' on the whole trajectory (cache rebuilt from the ids)
            lp = probe_logprobs(worker.model, c.prompt_ids + c.token_ids)[len(c.prompt_ids) - 1:]
            assert torch.allclose(torch.tensor(c.logprobs[1:]), lp[1:], atol=1e-5)
            # segment 1 (token 1) keeps version 0's log-prob, not the new weights'
            old = probe_logprobs(old_model, c.prompt_ids + c.token_ids)[len(c.prompt_ids) - 1:]
            assert abs(c.logprobs[0] - float(old[0])) < 1e-5 and abs(c.logprobs[0] - float(lp[0])) > 1e-4


def test_async_config_is_checked():
    with pytest.raises(ConfigError, match="async.mode"):
        config_from_dict({"async": {"mode": "fast"}})
    with pytest.raises(ConfigError, match="max_staleness must be >= 0"):
        config_from_dict({"async": {"max_staleness": -1}})
    with pytest.raises(ConfigError, match="partial_rollout .*needs"):
        config_from_dict({"async": {"max_staleness": 1, "partial_rollout": True}})
    with pytest.raises(ConfigError, match="unknown key 'async.stale'"):
        config_from_dict({"async": {"stale": 1}})
    cfg = config_from_dict({}, ["async.max_staleness=2", "async.mode=free"])
    assert (cfg.async_.max_staleness, cfg.async_.mode) == (2, "free")
