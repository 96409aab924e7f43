"""Per-prompt seeds in the HF engine (``generate(..., seeds=[...])``): with the decode loop a prompt's completions
depend on its own seed only, not on the prompts it shares a decode call with, their order, ``batch_size`` (whole
groups per chunk, or one group in pieces) or row compaction; ``decode: generate`` repeats a call with the same
chunking and says it is not split-invariant. (The vLLM engine's counterpart is in test_rollout_vllm.py; the
sampling distribution's chi-square test in test_rollout_hf_decode.py.)"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.rollout import derive_seed, resolve_seeds
from rlvr.rollout.hf import HFRolloutEngine

PROMPTS = ["1+1=", "Q: 47+38-19\nA: ", "x", "hello, world"]  # different lengths -> different left padding
SEEDS = [3, 2**63 - 1, 0, 123456789]
N, STEPS = 6, 20
SAMPLING = dict(temperature=1.0, top_k=40)


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    """The tiny Llama with sharper logits and 11 EOS ids: rows stop after 1 to 20 tokens, so rows get dropped."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(3.0)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id] + list(range(60, 70))
    return model, tokenizer


def _run(engine, prompts, seeds, n=N, **kwargs):
    groups = engine.generate(prompts, n, max_new_tokens=STEPS, seeds=seeds, **{**SAMPLING, **kwargs})
    assert [len(g) for g in groups] == [n] * len(prompts)
    return [[(c.token_ids, c.logprobs, c.finish_reason) for c in g] for g in groups]


def _assert_same(got, want):
    """Identical token ids and finish reasons; log-probs equal up to the float noise of batched kernels (another
    batch size or padding width may change the last bits)."""
    assert [[c[0] for c in g] for g in got] == [[c[0] for c in g] for g in want]
    assert [[c[2] for c in g] for g in got] == [[c[2] for c in g] for g in want]
    for g_got, g_want in zip(got, want):
        for a, b in zip(g_got, g_want):
            assert torch.allclose(torch.tensor(a[1]), torch.tensor(b[1]), atol=1e-5, rtol=0), (a[1], b[1])


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_a_prompts_samples_do_not_depend_on_the_other_prompts_nor_their_order(policy, cache):
    model, tokenizer = policy
    engine = HFRolloutEngine(model, tokenizer, cache=cache)
    assert engine.split_invariant
    together = _run(engine, PROMPTS, SEEDS)
    alone = [_run(engine, [p], [s])[0] for p, s in zip(PROMPTS, SEEDS)]
    reversed_ = _run(engine, PROMPTS[::-1], SEEDS[::-1])[::-1]
    _assert_same(alone, together)
    _assert_same(reversed_, together)
    # a real test: samples differ between prompts and within groups, rows finished at different steps
    lengths = {len(c[0]) for g in together for c in g}
    assert len(lengths) >= 4 and min(lengths) < STEPS // 2, lengths
    assert all(len({tuple(c[0]) for c in g}) > 1 for g in together)
    # the same prompt twice with the same seed gives the same group; with another seed, other samples
    twice = _run(engine, [PROMPTS[1], PROMPTS[1]], [SEEDS[1], SEEDS[1]])
    _assert_same(twice[:1], together[1:2])
    _assert_same(twice[1:], together[1:2])


def test_batch_size_and_pieces_change_no_sample(policy):
    """One group per call, whole groups batched together, and one group sampled in pieces of 4 or 1 rows."""
    model, tokenizer = policy
    engine = HFRolloutEngine(model, tokenizer)
    calls = []
    chunk = engine._chunk

    def spy(prompt_ids, n, *args):
        calls.append((len(prompt_ids), n))
        return chunk(prompt_ids, n, *args)

    reference = _run(engine, PROMPTS, SEEDS, batch_size=0)
    engine._chunk = spy
    for batch_size, want in [(N, [(1, N)] * 4), (3 * N, [(3, N), (1, N)]), (4, [(1, 4), (1, 2)] * 4),
                             (1, [(1, 1)] * N * 4)]:
        calls.clear()
        _assert_same(_run(engine, PROMPTS, SEEDS, batch_size=batch_size), reference)
        assert calls == want, (batch_size, calls)


def test_row_compaction_changes_no_sample(policy):
    model, tokenizer = policy
    runs = [_run(HFRolloutEngine(model, tokenizer, compact=compact), PROMPTS, SEEDS, n=16) for compact in (True,
                                                                                                          False)]
    _assert_same(runs[0], runs[1])


def test_other_seeds_other_samples_and_greedy_ignores_seeds(policy):
    model, tokenizer = policy
    engine = HFRolloutEngine(model, tokenizer)
    a = _run(engine, PROMPTS, SEEDS)
    b = _run(engine, PROMPTS, [s + 1 for s in SEEDS[:1]] + SEEDS[1:])
    assert [c[0] for c in a[0]] != [c[0] for c in b[0]]  # the seed changed: prompt 0 samples something else
    _assert_same(b[1:], a[1:])  # ... and only prompt 0
    greedy = [_run(engine, PROMPTS, seeds, temperature=0.0) for seeds in (SEEDS, [7] * 4, None)]
    assert greedy[0] == greedy[1] == greedy[2]
    with pytest.raises(ValueError, match="1 seeds for 4 prompts"):  # checked, greedy or not
        engine.generate(PROMPTS, 2, max_new_tokens=4, temperature=0.0, seeds=[1])


def test_without_seeds_torchs_global_rng_draws_one_per_prompt(policy):
    model, tokenizer = policy
    engine = HFRolloutEngine(model, tokenizer)
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(_run(engine, PROMPTS, None))
    assert runs[0] == runs[1] != runs[2]
    torch.manual_seed(0)
    drawn = torch.randint(0, 2**63 - 1, (len(PROMPTS),)).tolist()  # the documented scheme
    _assert_same(_run(engine, PROMPTS, drawn), runs[0])


def test_seeded_calls_leave_torchs_rng_alone(policy):
    model, tokenizer = policy
    for decode in ("loop", "generate"):
        engine = HFRolloutEngine(model, tokenizer, decode=decode)
        torch.manual_seed(5)
        _run(engine, PROMPTS, SEEDS)
        after = torch.rand(3)
        torch.manual_seed(5)
        assert torch.equal(torch.rand(3), after), decode


def test_decode_generate_repeats_the_same_chunking_and_is_not_split_invariant(policy):
    model, tokenizer = policy
    engine = HFRolloutEngine(model, tokenizer, decode="generate")
    assert not engine.split_invariant
    first = _run(engine, PROMPTS, SEEDS, batch_size=2 * N)
    assert _run(engine, PROMPTS, SEEDS, batch_size=2 * N) == first
    pieces = _run(engine, PROMPTS[:1], SEEDS[:1], batch_size=4)  # pieces are seeded apart: no repeated rows
    assert len({tuple(c[0]) for c in pieces[0]}) > N // 2
    loop = HFRolloutEngine(model, tokenizer)
    assert loop.split_invariant
    loop._fall_back_to_generate("a test")  # what a model the loop cannot drive does
    assert not loop.split_invariant


def test_seeds_are_checked():
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        resolve_seeds([1, 2], 3)
    with pytest.raises(ValueError, match="outside"):
        resolve_seeds([-1], 1)
    with pytest.raises(ValueError, match="outside"):
        resolve_seeds([2**63], 1)
    with pytest.raises(TypeError, match="not an integer"):
        resolve_seeds([1.5], 1)
    assert resolve_seeds(torch.tensor([4, 5]), 2) == [4, 5]
    derived = {derive_seed(s, k) for s in range(50) for k in range(50)}
    assert len(derived) == 2500 and all(0 <= d < 2**63 for d in derived)
