"""RAST decoding (rlvr.rollout.rast): alpha = 0 is the large model, large = base_small with alpha = 1 is rl_small,
the KV-cached log-probs equal a full forward of z~, and the vocabulary check."""

from __future__ import annotations

import pytest
import torch

from rlvr.demo.tiny import DEFAULT_ALPHABET, build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.rollout.rast import RASTRolloutEngine, VocabularyMismatch, combine_logits, shared_vocab_size

PROMPTS = ["12+3=", "7-2+40=", "a"]
SEEDS = [11, 22, 33]


@pytest.fixture(scope="module")
def models():
    tok = build_char_tokenizer()
    large = build_tiny_llama(tok, hidden=64, layers=2, heads=2, seed=1).eval()
    base = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=2).eval()
    rl = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=3).eval()  # "RL-trained": other weights
    return tok, large, base, rl


def _rast(tok, large, base, rl, alpha, cache="auto"):
    vocab = shared_vocab_size({"large": tok, "base_small": tok, "rl_small": tok},
                              {"large": large, "base_small": base, "rl_small": rl})
    return RASTRolloutEngine(large, base, rl, tok, vocab_size=vocab, alpha=alpha, add_special_tokens=False,
                             cache=cache)


def _tokens(groups):
    return [[c.token_ids for c in g] for g in groups]


def _logprobs(groups):
    return [[c.logprobs for c in g] for g in groups]


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 1.0), (0.8, 0.9)])
def test_alpha_zero_is_plain_decoding_of_the_large_model(models, temperature, top_p):
    tok, large, base, rl = models
    kwargs = dict(max_new_tokens=16, temperature=temperature, top_p=top_p, seeds=SEEDS)
    plain = HFRolloutEngine(large, tok, add_special_tokens=False).generate(PROMPTS, 3, **kwargs)
    rast = _rast(tok, large, base, rl, alpha=0.0).generate(PROMPTS, 3, **kwargs)
    assert _tokens(rast) == _tokens(plain)
    assert _logprobs(rast) == _logprobs(plain)
    assert [[c.finish_reason for c in g] for g in rast] == [[c.finish_reason for c in g] for g in plain]


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_large_equal_to_base_small_with_alpha_one_is_rl_small(models, cache):
    tok, _, base, rl = models
    kwargs = dict(max_new_tokens=16, temperature=1.0, seeds=SEEDS)
    plain = HFRolloutEngine(rl, tok, add_special_tokens=False, cache=cache).generate(PROMPTS, 4, **kwargs)
    rast = _rast(tok, base, base, rl, alpha=1.0, cache=cache).generate(PROMPTS, 4, **kwargs)
    assert _tokens(rast) == _tokens(plain)
    assert _logprobs(rast) == _logprobs(plain)  # exactly: z~ = z_base + (z_rl - z_base) in float64 is z_rl


def test_distribution_equals_rl_small_on_a_whole_sequence(models):
    """Teacher-forced: log_softmax(z~) over every position of a sequence is rl_small's, bit for bit."""
    tok, _, base, rl = models
    ids = torch.tensor([tok("47+8-5+9\n<think>47+8=55</think>", add_special_tokens=False).input_ids])
    with torch.no_grad():
        z_base, z_rl = base(ids).logits[0].float(), rl(ids).logits[0].float()
    mixed = combine_logits(z_base, z_base, z_rl, 1.0)
    assert torch.equal(torch.log_softmax(mixed, -1), torch.log_softmax(z_rl, -1))
    assert torch.equal(combine_logits(z_rl, z_base, z_rl, 0.0), z_rl)


def test_cached_logprobs_equal_a_full_forward_of_the_mixture(models):
    """alpha = 0.5, T = 0.7: every reported log-prob = log_softmax(z~ / T) of full (uncached) forwards."""
    tok, large, base, rl = models
    alpha, temperature = 0.5, 0.7
    groups = _rast(tok, large, base, rl, alpha=alpha).generate(PROMPTS, 2, max_new_tokens=12,
                                                               temperature=temperature, seeds=SEEDS)
    for prompt, group in zip(PROMPTS, groups):
        prompt_ids = tok(prompt, add_special_tokens=False).input_ids
        for c in group:
            ids = torch.tensor([prompt_ids + c.token_ids])
            with torch.no_grad():
                z = [m(ids).logits[0, len(prompt_ids) - 1 : -1].float() for m in (large, base, rl)]
            expected = torch.log_softmax(combine_logits(*z, alpha) / temperature, -1)
            got = expected.gather(1, torch.tensor(c.token_ids)[:, None]).squeeze(1)
            torch.testing.assert_close(torch.tensor(c.logprobs), got, atol=1e-5, rtol=0)


def test_a_different_vocabulary_is_a_clear_error(models):
    tok, large, base, rl = models
    other = build_char_tokenizer(DEFAULT_ALPHABET[::-1])  # the same characters in another order
    with pytest.raises(VocabularyMismatch, match=r"token id 4 is .* in the large model's tokenizer but .* "
                                                 r"in the rl_small model's"):
        shared_vocab_size({"large": tok, "base_small": tok, "rl_small": other},
                          {"large": large, "base_small": base, "rl_small": rl})


def test_a_shared_prefix_is_truncated_to(models):
    """A tokenizer with extra tokens after the shared ones: decoding is over the shared ids only."""
    tok, _, base, rl = models
    longer = build_char_tokenizer(DEFAULT_ALPHABET + "\u00e9\u00e8\u00ea")  # 3 more characters at the end
    large = build_tiny_llama(longer, hidden=64, layers=2, heads=2, seed=1).eval()
    vocab = shared_vocab_size({"large": longer, "base_small": tok, "rl_small": tok},
                              {"large": large, "base_small": base, "rl_small": rl})
    assert vocab == len(tok) == len(longer) - 3
    engine = RASTRolloutEngine(large, base, rl, longer, vocab_size=vocab, add_special_tokens=False)
    groups = engine.generate(PROMPTS, 4, max_new_tokens=16, temperature=1.5, seeds=SEEDS)
    assert max(t for g in groups for c in g for t in c.token_ids) < vocab
    with pytest.raises(VocabularyMismatch, match="outside the"):
        engine.generate(["caf\u00e9"], 1, max_new_tokens=4, temperature=1.0)
