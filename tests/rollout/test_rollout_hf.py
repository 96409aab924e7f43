"""The HF rollout engine: shapes, finish reasons, and sampling log-probs that match the trainer's recomputation.

Every test runs for both decode paths (rollout.hf.decode: loop and generate) except where generate()'s own RNG
stream is compared (the loop samples differently: tests/rollout/test_rollout_hf_decode.py checks its draws)."""

from __future__ import annotations

import pytest
import torch

from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.trainer.batch import build_batch
from rlvr.trainer.policy import response_logprobs
from rlvr.types import Example, RewardResult


@pytest.fixture(scope="module", params=["loop", "generate"])
def engine(request):
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0)
    eng = HFRolloutEngine(model, tokenizer, "cpu", decode=request.param)
    assert eng.decode == request.param
    return eng


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


@pytest.mark.parametrize("decode", ["loop", "generate"])
def test_eos_finish_stops_the_completion(decode):
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    model.generation_config.eos_token_id = list(range(len(tokenizer)))  # every token ends the completion
    eng = HFRolloutEngine(model, tokenizer, "cpu", decode=decode)
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


@pytest.mark.parametrize("decode", ["loop", "generate"])
def test_model_generation_config_does_not_change_the_sampling_distribution(decode):
    """A repetition_penalty shipped in generation_config.json must not skew rollouts away from pi/T."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0)
    model.generation_config.repetition_penalty = 3.0
    model.generation_config.top_k = 3
    eng = HFRolloutEngine(model, tokenizer, "cpu", decode=decode)
    torch.manual_seed(2)
    groups = eng.generate(PROMPTS, 2, max_new_tokens=8, temperature=1.0)
    batch = build_batch([Example(question=p, answer="") for p in PROMPTS], groups, [RewardResult(0.0)] * 6,
                        tokenizer.pad_token_id)
    ids, mask, width = batch.model_inputs(torch.arange(len(batch)), torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, ids, mask, width, temperature=1.0, chunk_size=64, with_entropy=False)
    for i, c in enumerate(c for g in groups for c in g):
        assert torch.allclose(logp[i, : len(c.logprobs)], torch.tensor(c.logprobs), atol=1e-4)


def _old_way(eng, prompts, n, max_new_tokens, temperature, top_k, top_p):
    """The engine's former path: sampling settings in the config, output_scores + compute_transition_scores."""
    from transformers import GenerationConfig

    encoded = [eng.tokenizer(p)["input_ids"] for p in prompts]
    pad, width = eng.tokenizer.pad_token_id, max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):], attention[i, width - len(e):] = torch.tensor(e), 1
    greedy = temperature == 0
    config = GenerationConfig(
        do_sample=not greedy, temperature=None if greedy else temperature, top_p=None if greedy else top_p,
        top_k=None if greedy else top_k, num_return_sequences=1 if greedy else n, max_new_tokens=max_new_tokens,
        pad_token_id=pad, eos_token_id=eng.eos_ids, output_scores=True, return_dict_in_generate=True,
    )
    shipped, eng.model.generation_config = eng.model.generation_config, GenerationConfig()
    try:
        with torch.no_grad():
            out = eng.model.generate(input_ids=ids, attention_mask=attention, generation_config=config)
    finally:
        eng.model.generation_config = shipped
    scores = eng.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    return out.sequences[:, width:], scores


@pytest.mark.parametrize("temperature", [0.7, 0.0])
def test_logprobs_equal_compute_transition_scores(engine, temperature):
    """Captured during decoding (no output_scores), the log-probs are compute_transition_scores' values.

    decode loop: greedy only (sampled tokens come from its own draws, not generate()'s RNG stream); its tokens are
    then generate()'s token for token, and its log-probs equal up to the static cache's float rounding."""
    if engine.decode == "loop" and temperature > 0:
        pytest.skip("the loop's samples are not generate()'s RNG stream (see test_rollout_hf_decode.py)")
    atol = 1e-6 if engine.decode == "generate" else 1e-5
    engine.model.eval()
    torch.manual_seed(3)
    tokens, scores = _old_way(engine, PROMPTS, 3, 12, temperature, top_k=5, top_p=0.9)
    # decode: generate runs a chunk (here: all prompts) under torch's RNG seeded with its first prompt's seed
    groups = engine.generate(PROMPTS, 3, max_new_tokens=12, temperature=temperature, top_k=5, top_p=0.9,
                             seeds=[3, 17, 29])
    flat = [c for g in groups for c in g]
    rows = [i // 3 for i in range(len(flat))] if temperature == 0 else list(range(len(flat)))
    for c, row in zip(flat, rows):
        k = len(c.token_ids)
        assert c.token_ids == tokens[row, :k].tolist()
        assert torch.allclose(torch.tensor(c.logprobs), scores[row, :k].float(), atol=atol, rtol=0)
        assert k == tokens.shape[1] or c.finish_reason == "eos"


_MEMORY_PROBE = r"""
import os, sys, threading
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from rlvr.demo.tiny import build_char_tokenizer
from rlvr.rollout.hf import HFRolloutEngine

torch.set_num_threads(1)
tokenizer = build_char_tokenizer()
torch.manual_seed(0)
config = LlamaConfig(vocab_size=50_000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
model = LlamaForCausalLM(config)
eng = HFRolloutEngine(model, tokenizer, "cpu", decode=sys.argv[1])
seen = {}
generate = model.generate

def spy(*args, **kwargs):
    seen.update(kwargs)
    return generate(*args, **kwargs)

model.generate = spy
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

def peak_growth(max_new_tokens):
    base, peak, done = rss(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        torch.manual_seed(0)
        eng.generate(["1+1=", "x"], 8, max_new_tokens=max_new_tokens, temperature=1.0)  # B = 16
    finally:
        done.set()
        watcher.join()
    return max(peak[0], rss()) - base

peak_growth(16)  # warm-up: thread pools, first-touch pages
short, long = peak_growth(16), peak_growth(256)
if eng.decode == "generate":
    assert not seen["generation_config"].output_scores and "output_scores" not in seen
else:
    assert eng.decode == "loop" and not seen  # the loop never calls generate()
print(short, long)
"""


@pytest.mark.parametrize("decode", ["loop", "generate"])
def test_memory_does_not_grow_with_max_new_tokens(decode):
    """No per-step (B, V) scores are kept: no output_scores, and peak RSS is flat in max_new_tokens.

    Measured in a fresh process with glibc's mmap threshold fixed at 128 KiB, so every freed (B, V) buffer goes
    back to the OS at once and RSS follows live memory (in the test process the allocator's state depends on the
    tests that ran before: CI once saw 515 MB retained by it).
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, decode], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    short, long = map(int, run.stdout.split()[-2:])
    # output_scores alone would keep 16 rows x 50k x 4 B x 256 steps = 820 MB (the former path peaked ~3.8 GB above
    # the 16-step run, with compute_transition_scores' copies); one (B, V) buffer is 3.2 MB.
    kept_by_output_scores = 16 * 50_000 * 4 * 256
    assert long - short < kept_by_output_scores / 8, (short, long)
