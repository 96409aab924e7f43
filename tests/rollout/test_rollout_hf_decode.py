"""The HF engine's decode loop (rollout.hf.decode: loop): equal to generate() where both are deterministic, log-probs
equal to a teacher-forced recomputation through the same warpers, row dropping that changes nothing, an exact
sampling distribution, compile and the fallbacks."""

from __future__ import annotations

import logging

import pytest
import torch

from rlvr.config import ConfigError, RunConfig, config_from_dict
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout import hf as hf_module
from rlvr.rollout.hf import HFRolloutEngine, _compacted_size, _warpers

PROMPTS = ["1+1=", "Q: 47+38-19\nA: ", "x", "hello, world"]  # different lengths -> left padding


def _tokens(groups):
    return [[c.token_ids for c in g] for g in groups]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0).eval()
    return model, tokenizer


def _peaked(model, scale):
    """Sharper logits than a fresh init (whose next-token distribution is almost uniform): a real test of T, k, p."""
    with torch.no_grad():
        model.model.norm.weight.mul_(scale)
    return model


def _untied(model, seed=0):
    """A random output head of its own: a fresh tied-embedding model greedily repeats its last token forever; this
    one wanders and (greedily) reaches EOS after 5 to 20+ tokens depending on the prompt."""
    generator = torch.Generator().manual_seed(seed)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=generator))
    return model


def _teacher_forced(model, completion, temperature, top_k, top_p):
    """log_softmax of the warped logits at the sampled tokens, from one full forward over prompt + completion."""
    ids = torch.tensor([completion.prompt_ids + completion.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(completion.prompt_ids) - 1 : -1].float()
    scores = logits
    for warper in [] if temperature == 0 else _warpers(temperature, top_k, top_p):
        scores = warper(None, scores)
    return torch.log_softmax(scores, dim=-1).gather(1, torch.tensor(completion.token_ids)[:, None]).squeeze(1)


@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_greedy_loop_equals_greedy_generate(cache):
    tokenizer = build_char_tokenizer()
    model = _untied(build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0).eval())
    gen = HFRolloutEngine(model, tokenizer, decode="generate").generate(PROMPTS, 3, max_new_tokens=24, temperature=0)
    loop_engine = HFRolloutEngine(model, tokenizer, decode="loop", cache=cache)
    loop = loop_engine.generate(PROMPTS, 3, max_new_tokens=24, temperature=0)
    assert loop_engine.decode == "loop" and not loop_engine.fallback_reason
    assert _tokens(loop) == _tokens(gen)
    for g_gen, g_loop in zip(gen, loop):
        for a, b in zip(g_gen, g_loop):
            assert (a.finish_reason, a.text, a.prompt_ids) == (b.finish_reason, b.text, b.prompt_ids)
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)


def test_greedy_loop_equals_generate_with_early_eos_and_batch_chunks():
    """Rows that stop at different steps (many EOS ids) and several chunks (batch_size) still match generate()."""
    tokenizer = build_char_tokenizer()
    model = _untied(build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=3).eval())
    prompts = [p + s for p in PROMPTS for s in ("", "a", "bb", "ccc")]
    gen = HFRolloutEngine(model, tokenizer, decode="generate").generate(prompts, 2, max_new_tokens=20,
                                                                        temperature=0, batch_size=6)
    loop = HFRolloutEngine(model, tokenizer).generate(prompts, 2, max_new_tokens=20, temperature=0, batch_size=6)
    assert _tokens(loop) == _tokens(gen)
    lengths = {len(c.token_ids) for g in loop for c in g}
    assert len(lengths) >= 4 and min(lengths) < 12 and 20 in lengths, lengths  # rows finished at different steps


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 5, 0.9), (1.0, 0, 1.0), (1.3, 0, 0.8), (0.0, 0, 1.0)])
@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_loop_logprobs_equal_a_teacher_forced_recomputation(temperature, top_k, top_p, cache):
    tokenizer = build_char_tokenizer()
    model = _peaked(build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=1).eval(), 8.0)
    engine = HFRolloutEngine(model, tokenizer, cache=cache)
    torch.manual_seed(4)
    groups = engine.generate(PROMPTS, 4, max_new_tokens=16, temperature=temperature, top_k=top_k, top_p=top_p)
    flat = [c for g in groups for c in g]
    assert len(flat) == 16
    for c in flat:
        assert len(c.token_ids) == len(c.logprobs) and c.logprobs
        expected = _teacher_forced(model, c, temperature, top_k, top_p)
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-5, rtol=0), (c.logprobs, expected)
        assert all(lp > -1e9 for lp in c.logprobs)  # never a token the warpers removed
    if temperature > 0:
        assert len({tuple(c.token_ids) for c in flat}) > 4  # sampling, not a greedy decode


def test_loop_sampling_is_seeded_by_torchs_global_rng(tiny):
    model, tokenizer = tiny
    engine = HFRolloutEngine(model, tokenizer)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(_tokens(engine.generate(PROMPTS, 3, max_new_tokens=12, temperature=1.0)))
    assert runs[0] == runs[1] != runs[2]


def _eos_heavy_model(seed=2):
    """Sharp logits and 40 EOS ids: sampled rows stop after 1 to 40+ tokens, so compaction happens several times."""
    tokenizer = build_char_tokenizer()
    model = _peaked(build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=seed).eval(), 3.0)
    model.generation_config.eos_token_id = [2] + list(range(60, 70))
    return model, tokenizer


def test_row_dropping_changes_no_sample(monkeypatch):
    """Same seed, compaction on and off: the same tokens and log-probs; the batch really shrank B -> B/2 -> ..."""
    model, tokenizer = _eos_heavy_model()
    sizes = []
    select = hf_module._select_rows
    monkeypatch.setattr(hf_module, "_select_rows", lambda cache, index: (sizes.append(index.numel()),
                                                                          select(cache, index)))
    runs = {}
    for compact in (True, False):
        engine = HFRolloutEngine(model, tokenizer, compact=compact)
        torch.manual_seed(7)
        runs[compact] = engine.generate(PROMPTS, 16, max_new_tokens=48, temperature=1.0, top_k=40)
        if compact:
            compacted, sizes[:] = list(sizes), []
    assert _tokens(runs[True]) == _tokens(runs[False])
    for g_on, g_off in zip(runs[True], runs[False]):
        for a, b in zip(g_on, g_off):
            assert a.finish_reason == b.finish_reason
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)
    lengths = sorted(len(c.token_ids) for g in runs[True] for c in g)
    assert lengths[0] <= 4 and lengths[-1] >= 24, lengths  # rows finish at very different steps
    # the first select repeats the 4 prompts' cache for their 16 rows each; then 64 -> 32 -> 16 ... only
    assert compacted[0] == 64 and sizes == [64]
    assert len(compacted) >= 3 and compacted[1:] == sorted(compacted[1:], reverse=True)
    assert all(s in {32, 16, 8, 4, 2, 1} for s in compacted[1:]), compacted


def test_compacted_size_halves_while_the_live_rows_fit():
    assert _compacted_size(64, 64, 1) == 64
    assert _compacted_size(33, 64, 1) == 64
    assert _compacted_size(32, 64, 1) == 32
    assert _compacted_size(5, 64, 1) == 8
    assert _compacted_size(0, 64, 1) == 1
    assert _compacted_size(5, 64, 8) == 8  # compiled: not below MIN_COMPILED_ROWS
    assert _compacted_size(3, 6, 8) == 6
    assert _compacted_size(12, 96, 1) == 12  # 96 -> 48 -> 24 -> 12


def _chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test of ``counts`` against ``probs``; cells expecting < 5 draws are pooled into one."""
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a token of probability 0 was sampled"
    counts, expected = counts[keep], probs[keep] * counts.sum()
    rare = expected < 5
    if rare.any():
        counts = torch.cat([counts[~rare], counts[rare].sum()[None]])
        expected = torch.cat([expected[~rare], expected[rare].sum()[None]])
    stat = ((counts - expected) ** 2 / expected).sum()
    df = counts.numel() - 1
    assert df >= 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), stat.double() / 2))


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 0, 1.0), (1.0, 4, 1.0), (1.5, 0, 0.9)])
def test_loop_samples_the_exact_warped_distribution(temperature, top_k, top_p):
    """20k draws of the first and of the second token against softmax(warp(logits / T)), chi-square p > 1e-4.

    A biased sampler fails: the same counts against the *unwarped* softmax(logits) give p < 1e-12 (checked)."""
    tokenizer = build_char_tokenizer("ab")  # vocabulary: 4 special tokens + a, b
    model = _peaked(build_tiny_llama(tokenizer, hidden=16, layers=1, heads=2, seed=0).eval(), 8.0)
    model.generation_config.eos_token_id = [2]
    engine = HFRolloutEngine(model, tokenizer)
    prompt = "ab"
    prompt_ids = tokenizer(prompt)["input_ids"]
    torch.manual_seed(11)
    groups = engine.generate([prompt] * 4, 5000, max_new_tokens=2, temperature=temperature, top_k=top_k,
                             top_p=top_p, batch_size=10000)
    flat = [c for g in groups for c in g]
    vocab = len(tokenizer)

    def warped(prefix, warp=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + prefix])).logits[0, -1:].float()
        scores = logits
        for w in _warpers(temperature, top_k, top_p) if warp else []:
            scores = w(None, scores)
        return torch.softmax(scores, dim=-1)[0].double()

    first = torch.bincount(torch.tensor([c.token_ids[0] for c in flat]), minlength=vocab).double()
    p_first = warped([])
    assert _chi_square_pvalue(first, p_first) > 1e-4, (first, p_first * len(flat))
    assert _chi_square_pvalue(first, warped([], warp=False)) < 1e-12  # the test can tell a wrong distribution
    # the second token, conditioned on the most frequent non-EOS first token (decoded from the cache)
    top = max((t for t in range(vocab) if t != 2 and first[t] > 0), key=lambda t: first[t])
    second = torch.bincount(torch.tensor([c.token_ids[1] for c in flat if c.token_ids[0] == top]),
                            minlength=vocab).double()
    assert second.sum() > 2000
    assert _chi_square_pvalue(second, warped([top])) > 1e-4, (second, warped([top]) * second.sum())


def _lora_model():
    """A peft LoRA model (eval mode) whose adapters change its outputs (lora_B drawn, not zero)."""
    from peft import LoraConfig, get_peft_model

    tokenizer = build_char_tokenizer()
    base = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, tokenizer


def test_peft_lora_model_decodes_in_the_loop():
    model, tokenizer = _lora_model()
    gen = HFRolloutEngine(model, tokenizer, decode="generate").generate(PROMPTS, 2, max_new_tokens=16, temperature=0)
    loop_engine = HFRolloutEngine(model, tokenizer)
    loop = loop_engine.generate(PROMPTS, 2, max_new_tokens=16, temperature=0)
    assert loop_engine.decode == "loop" and not loop_engine.fallback_reason
    assert _tokens(loop) == _tokens(gen)
    with model.disable_adapter():  # the adapters are in use: the base model decodes something else
        base_tokens = _tokens(HFRolloutEngine(model, tokenizer).generate(PROMPTS, 2, max_new_tokens=16,
                                                                         temperature=0))
    assert base_tokens != _tokens(loop)
    torch.manual_seed(0)
    for c in [c for g in loop_engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0.8) for c in g]:
        assert torch.allclose(torch.tensor(c.logprobs), _teacher_forced(model, c, 0.8, 0, 1.0), atol=1e-5)


def test_a_model_that_rejects_the_static_cache_falls_back_to_generate(tiny, caplog):
    from transformers import StaticCache

    model, tokenizer = tiny
    expected = HFRolloutEngine(model, tokenizer, decode="generate").generate(PROMPTS, 2, max_new_tokens=10,
                                                                             temperature=0)
    forward = model.forward

    def no_static(*args, **kwargs):
        if isinstance(kwargs.get("past_key_values"), StaticCache):
            raise TypeError("this model cannot use a StaticCache")
        return forward(*args, **kwargs)

    model.forward = no_static
    try:
        engine = HFRolloutEngine(model, tokenizer, cache="static")
        with caplog.at_level(logging.WARNING, logger="rlvr.rollout.hf"):
            got = engine.generate(PROMPTS, 2, max_new_tokens=10, temperature=0)
            engine.generate(PROMPTS, 2, max_new_tokens=10, temperature=0)
    finally:
        del model.forward
    assert _tokens(got) == _tokens(expected)
    assert engine.decode == "generate" and "cannot use a StaticCache" in engine.fallback_reason
    warnings = [r for r in caplog.records if "loop -> generate" in r.getMessage()]
    assert len(warnings) == 1 and "StaticCache" in warnings[0].getMessage()


def test_compile_failure_falls_back_to_eager_with_one_warning(tiny, monkeypatch, caplog):
    model, tokenizer = tiny
    expected = _tokens(HFRolloutEngine(model, tokenizer).generate(PROMPTS, 2, max_new_tokens=10, temperature=0))

    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    engine = HFRolloutEngine(model, tokenizer, compile=True)
    with caplog.at_level(logging.WARNING, logger="rlvr.rollout.hf"):
        got = _tokens(engine.generate(PROMPTS, 2, max_new_tokens=10, temperature=0))
        again = _tokens(engine.generate(PROMPTS, 2, max_new_tokens=10, temperature=0))
    assert got == again == expected
    assert not engine.compile and engine.decode == "loop" and "no C compiler here" in engine.fallback_reason
    warnings = [r for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler here" in warnings[0].getMessage()


def test_a_failure_inside_the_compiled_call_falls_back_too(tiny, monkeypatch):
    """The error comes at the first call (inductor compiles lazily): the cache is rewound and the step rerun eagerly."""
    model, tokenizer = tiny
    expected = _tokens(HFRolloutEngine(model, tokenizer).generate(PROMPTS, 2, max_new_tokens=10, temperature=0))

    def lazy_failure(fn, **kwargs):
        def call(input_ids, position_ids, attention_mask, cache):
            fn(input_ids, position_ids, attention_mask, cache)  # advances the cache, then "fails to compile"
            raise RuntimeError("inductor: unsupported op")
        return call

    monkeypatch.setattr(torch, "compile", lazy_failure)
    engine = HFRolloutEngine(model, tokenizer, compile=True)
    assert _tokens(engine.generate(PROMPTS, 2, max_new_tokens=10, temperature=0)) == expected
    assert not engine.compile and "unsupported op" in engine.fallback_reason


@pytest.mark.slow
def test_compiled_decode_step_gives_the_same_greedy_tokens_and_compiles_once(caplog):
    """torch.compile of the one-token step: greedy tokens equal eager; the second call and a call after an in-place
    optimizer step reuse the compiled graph (no new compile seconds)."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=2, heads=2, seed=0).eval()
    eager = HFRolloutEngine(model, tokenizer)
    engine = HFRolloutEngine(model, tokenizer, compile=True)
    with caplog.at_level(logging.INFO, logger="rlvr.rollout.hf"):
        got = engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0)
    assert engine.compile, engine.fallback_reason
    assert _tokens(got) == _tokens(eager.generate(PROMPTS, 2, max_new_tokens=12, temperature=0))
    first = engine.compile_seconds
    assert first > 0 and any("compiled the decode step" in r.getMessage() for r in caplog.records)
    engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    ids = torch.tensor([tokenizer("1+1=2")["input_ids"]])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    model.eval()
    after = engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0)
    assert engine.compile_seconds == first  # no recompile for the new weight values
    assert _tokens(after) == _tokens(eager.generate(PROMPTS, 2, max_new_tokens=12, temperature=0))
    torch.manual_seed(0)
    sampled = engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0.7, top_k=5)
    torch.manual_seed(0)
    assert _tokens(sampled) == _tokens(eager.generate(PROMPTS, 2, max_new_tokens=12, temperature=0.7, top_k=5))


@pytest.mark.slow
def test_a_peft_lora_model_compiles_too():
    model, tokenizer = _lora_model()
    eager = _tokens(HFRolloutEngine(model, tokenizer).generate(PROMPTS, 2, max_new_tokens=12, temperature=0))
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    engine = HFRolloutEngine(model, tokenizer, compile=True)
    assert _tokens(engine.generate(PROMPTS, 2, max_new_tokens=12, temperature=0)) == eager
    assert engine.compile and not engine.fallback_reason, engine.fallback_reason
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo traced the peft forward (no silent eager run)


def test_config_keys_validate_and_reach_the_engine():
    from rlvr.rollout import make_engine

    base = {"model": {"path": "tiny"}, "data": {"source": "x.jsonl"}}
    cfg = config_from_dict(base, [])
    assert (cfg.rollout.hf.decode, cfg.rollout.hf.compile, cfg.rollout.hf.cache) == ("loop", False, "auto")
    for overrides, message in [
        (["rollout.hf.decode=loops"], "rollout.hf.decode: 'loops' is not one of loop, generate; did you mean 'loop'"),
        (["rollout.hf.cache=paged"], "rollout.hf.cache: 'paged' is not one of auto, static, dynamic"),
        (["rollout.hf.compile=true", "rollout.hf.decode=generate"], "rollout.hf.compile .* needs rollout.hf.decode"),
        (["rollout.hf.compile=true", "rollout.hf.cache=dynamic"], "rollout.hf.compile .* cache 'dynamic'"),
        (["rollout.hf.compile=maybe"], "rollout.hf.compile: expected true or false"),
        (["rollout.hf.decod=loop"], "unknown key 'rollout.hf.decod'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(base, overrides)
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    for overrides, want in [([], ("loop", "dynamic", False)),  # auto: dynamic when eager
                            (["rollout.hf.decode=generate"], ("generate", "dynamic", False)),
                            (["rollout.hf.cache=static"], ("loop", "static", False)),
                            (["rollout.hf.compile=true"], ("loop", "static", True))]:  # auto: static when compiled
        cfg: RunConfig = config_from_dict(base, overrides)
        engine = make_engine(cfg, model, tokenizer, "cpu", torch.float32, [])
        assert (engine.decode, engine.cache, engine.compile) == want
    with pytest.raises(ValueError, match="decode"):
        HFRolloutEngine(model, tokenizer, decode="beam")


@pytest.mark.parametrize("decode", ["loop", "generate"])
def test_a_group_larger_than_batch_size_is_sampled_in_pieces(decode):
    """rollout.batch_size bounds the rows of every decode call even when one group is larger (n = 512, BroRL)."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    engine = HFRolloutEngine(model, tokenizer, decode=decode)
    calls = []
    chunk = engine._chunk

    def spy(prompt_ids, n, *args):
        calls.append((len(prompt_ids), n))
        return chunk(prompt_ids, n, *args)

    engine._chunk = spy
    torch.manual_seed(0)
    groups = engine.generate(["1+2=", "3+4="], 8, max_new_tokens=5, temperature=1.0, batch_size=3)
    assert [len(g) for g in groups] == [8, 8]
    assert calls == [(1, 3), (1, 3), (1, 2)] * 2  # prompt by prompt, pieces of <= 3 rows
    assert all(c.prompt_ids == groups[0][0].prompt_ids for c in groups[0])
    assert groups[1][0].prompt_ids != groups[0][0].prompt_ids
    calls.clear()
    engine.generate(["1+2=", "3+4="], 8, max_new_tokens=5, temperature=0.0, batch_size=3)
    assert calls == [(1, 8), (1, 8)]  # greedy decodes one row per prompt anyway
    calls.clear()
    engine.generate(["1+2=", "3+4=", "5+6="], 2, max_new_tokens=5, temperature=1.0, batch_size=4)
    assert calls == [(2, 2), (1, 2)]  # whole groups batched together while they fit
