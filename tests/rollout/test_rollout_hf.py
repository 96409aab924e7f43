"""The HF rollout engine: shapes, finish reasons, and sampling log-probs that match the trainer's recomputation."""

from __future__ import annotations

import pytest
import torch

from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.trainer.batch import build_batch
from rlvr.trainer.policy import response_logprobs
from rlvr.types import Example, RewardResult


@pytest.fixture(scope="module")
def engine():
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0)
    return HFRolloutEngine(model, tokenizer, "cpu")


PROMPTS = ["1+1=", "Q: 47+38-19\nA: ", "x"]  # different lengths -> left padding in one generate call


def test_shapes_and_length_finish(engine):
    torch.manual_seed(0)
    groups = engine.generate(PROMPTS, 3, max_new_tokens=6, temperature=1.0, batch_size=4)
    assert [len(g) for g in groups] == [3, 3, 3]
    for prompt, group in zip(PROMPTS, groups):
        for c in group:
            assert len(c.token_ids) == len(c.logprobs) <= 6
            assert all(lp <= 0 for lp in c.logprobs)
            assert c.prompt_ids == engine.tokenizer(prompt)["input_ids"]
            assert c.finish_reason == ("eos" if c.token_ids[-1] in engine.eos_ids else "length")
            assert c.text == engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)


def test_eos_finish_stops_the_completion():
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    model.generation_config.eos_token_id = list(range(len(tokenizer)))  # every token ends the completion
    eng = HFRolloutEngine(model, tokenizer, "cpu")
    groups = eng.generate(["1+1="], 4, max_new_tokens=8, temperature=1.0)
    assert all(c.finish_reason == "eos" and len(c.token_ids) == 1 for c in groups[0])


def test_greedy_is_deterministic(engine):
    a = engine.generate(PROMPTS, 2, max_new_tokens=6, temperature=0.0)
    b = engine.generate(PROMPTS, 2, max_new_tokens=6, temperature=0.0)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    assert all(g[0].token_ids == g[1].token_ids for g in a)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_the_trainers_recomputation(engine, temperature):
    """The trainer's left-pad-prompt / right-pad-response layout reproduces generate's log-probs."""
    torch.manual_seed(1)
    groups = engine.generate(PROMPTS, 2, max_new_tokens=8, temperature=temperature)
    examples = [Example(question=p, answer="") for p in PROMPTS]
    results = [RewardResult(0.0)] * 6
    batch = build_batch(examples, groups, results, engine.tokenizer.pad_token_id)
    ids, mask, width = batch.model_inputs(torch.arange(len(batch)), torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(engine.model, ids, mask, width, temperature=temperature, chunk_size=5,
                                    with_entropy=False)
    flat = [c for g in groups for c in g]
    for i, c in enumerate(flat):
        expected = torch.tensor(c.logprobs)
        assert torch.allclose(logp[i, : len(c.logprobs)], expected, atol=1e-4), (i, logp[i], expected)


def test_model_generation_config_does_not_change_the_sampling_distribution():
    """A repetition_penalty shipped in generation_config.json must not skew rollouts away from pi/T."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0)
    model.generation_config.repetition_penalty = 3.0
    model.generation_config.top_k = 3
    eng = HFRolloutEngine(model, tokenizer, "cpu")
    torch.manual_seed(2)
    groups = eng.generate(PROMPTS, 2, max_new_tokens=8, temperature=1.0)
    batch = build_batch([Example(question=p, answer="") for p in PROMPTS], groups, [RewardResult(0.0)] * 6,
                        tokenizer.pad_token_id)
    ids, mask, width = batch.model_inputs(torch.arange(len(batch)), torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, ids, mask, width, temperature=1.0, chunk_size=64, with_entropy=False)
    for i, c in enumerate(c for g in groups for c in g):
        assert torch.allclose(logp[i, : len(c.logprobs)], torch.tensor(c.logprobs), atol=1e-4)
