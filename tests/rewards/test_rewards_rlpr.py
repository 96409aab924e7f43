"""RLPR: the reward equals a direct computation with the model on hand-built sequences; token boundaries."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.config import ConfigError, config_from_dict
from rlvr.rewards import RewardScorer
from rlvr.rewards.batch import PolicyContext, ScoreBatch, consecutive_groups
from rlvr.rewards.rlpr import answer_span, mean_token_probs, rlpr, tokenize_with_reference
from rlvr.types import Example


@pytest.fixture(scope="module")
def char_policy(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.train()  # the scorer must switch to eval and back
    return PolicyContext(model, tok, torch.device("cpu"), add_special_tokens=True)


@pytest.fixture(scope="module")
def bpe_policy():
    """A BPE tokenizer whose merges cross the reference's edges: 'r>4' (tag + digit) and '2<' (digit + tag)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from rlvr.demo.tiny import build_tiny_llama

    chars = list("<>/answerthik0123456789+= ")
    vocab = {"<pad>": 0, "<eos>": 1}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    merges = [("r", ">"), ("r>", "4"), ("2", "<")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab=vocab, merges=merges)),
                                  pad_token="<pad>", eos_token="<eos>")
    model = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=3)
    return PolicyContext(model, tok, torch.device("cpu"), add_special_tokens=False)


def direct_mean_prob(model, ids: list[int], positions: list[int]) -> float:
    """The definition, one unpadded sequence: mean_k softmax(logits[pos_k - 1])[ids[pos_k]]."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    probs = torch.softmax(logits.double(), -1)
    return float(sum(probs[p - 1, ids[p]] for p in positions) / len(positions))


def test_answer_span_is_the_last_closed_span():
    assert answer_span("<think>a</think><answer>42</answer>") == (24, 26)
    text = "<answer>1</answer> then <answer>2</answer>"
    s, e = answer_span(text)
    assert text[s:e] == "2"
    assert answer_span("<answer>42") is None and answer_span("no tags") is None
    assert answer_span("[A] 7 [/A]", "[A]", "[/A]") == (3, 6)


def test_char_tokenizer_positions_are_the_reference_characters(char_policy):
    tok = char_policy.tokenizer
    ids, pos = tokenize_with_reference(tok, "1+2=", "<think>3</think><answer>", "12", "</answer>")
    assert len(ids) == 4 + 24 + 2 + 9
    assert pos == [28, 29]
    assert tok.decode([ids[p] for p in pos]) == "12"


def test_merged_boundary_tokens_count_as_reference_tokens(bpe_policy):
    """'<answer>42</answer>' tokenises as ... 'r>4', '2<', ...: both straddle the reference '42' and both are scored;
    the sequence is the tokenizer's own tokenisation of the joined text (nothing split)."""
    tok = bpe_policy.tokenizer
    ids, pos = tokenize_with_reference(tok, "1+2=", "<answer>", "42", "</answer>", add_special_tokens=False)
    pieces = tok.convert_ids_to_tokens(ids)
    assert ids == tok("1+2=")["input_ids"] + tok("<answer>42</answer>")["input_ids"]
    assert [pieces[p] for p in pos] == ["r>4", "2<"]
    # a reference that does not merge keeps exactly its own tokens
    ids2, pos2 = tokenize_with_reference(tok, "1+2=", "<answer>", "13", "</answer>", add_special_tokens=False)
    assert [tok.convert_ids_to_tokens(ids2)[p] for p in pos2] == ["1", "3"]
    assert mean_token_probs(bpe_policy.model, [(ids, pos)], pad_id=0, device="cpu")[0] == \
        pytest.approx(direct_mean_prob(bpe_policy.model, ids, pos), abs=1e-6)


def test_mean_token_probs_equals_the_direct_computation_with_padding(char_policy):
    tok, model = char_policy.tokenizer, char_policy.model
    seqs = [tokenize_with_reference(tok, "12+3=", "<think>15</think><answer>", "15", "</answer>"),
            tokenize_with_reference(tok, "1+1=", "<answer>", "2", "</answer>"),
            tokenize_with_reference(tok, "7+8+9=", "<think>7+8=15 15+9=24</think><answer>", "24", "</answer>"),
            (tok("1=")["input_ids"], [])]  # nothing to score: nan
    got = mean_token_probs(model, seqs, pad_id=tok.pad_token_id, device="cpu", batch_size=2)
    for (ids, pos), value in zip(seqs[:3], got[:3]):
        assert value == pytest.approx(direct_mean_prob(model, ids, pos), abs=1e-6)
    assert math.isnan(got[3])
    assert model.training  # restored


def test_rlpr_reward_is_the_debiased_clipped_probability_mixed_with_format(char_policy):
    tok, model = char_policy.tokenizer, char_policy.model
    ex = Example("1+2=", "3", prompt="1+2=")
    other = Example("5+5=", "10", prompt="5+5=")
    completions = ["<think>1+2=3</think><answer>4</answer>", "<think>x</think><answer>3</answer>",
                   "no answer span", "<think>5+5</think><answer>10</answer>"]
    batch = ScoreBatch([ex, ex, ex, other], completions, [{}] * 4)
    assert batch.groups == [[0, 1, 2], [3]]

    def p(prompt, prefix, ref):
        ids = tok(prompt)["input_ids"] + tok(prefix + ref + "</answer>", add_special_tokens=False)["input_ids"]
        start = len(tok(prompt)["input_ids"]) + len(prefix)  # one token per character
        return direct_mean_prob(model, ids, list(range(start, start + len(ref))))

    out = rlpr(batch, char_policy, timeout_s=10, debias=False, format_weight=0.1)
    assert out[0].score == pytest.approx(0.9 * p("1+2=", "<think>1+2=3</think><answer>", "3") + 0.1, abs=1e-6)
    assert out[0].extracted == "4" and out[0].details["reference_tokens"] == 1
    assert out[1].score == pytest.approx(0.9 * p("1+2=", "<think>x</think><answer>", "3") + 0.1, abs=1e-6)
    assert out[2].score == 0.0 and out[2].details["no_answer_span"] and "no <answer>" in out[2].reason
    deb = rlpr(batch, char_policy, timeout_s=10, format_weight=0.0)
    for i, (prefix, prompt, ref) in enumerate([("<think>1+2=3</think><answer>", "1+2=", "3"),
                                               ("<think>x</think><answer>", "1+2=", "3"),
                                               (None, None, None), ("<think>5+5</think><answer>", "5+5=", "10")]):
        if prefix is None:
            continue
        expected = min(1.0, max(0.0, p(prompt, prefix, ref) - p(prompt, "<answer>", ref)))
        assert deb[i].score == pytest.approx(expected, abs=1e-6)
        assert deb[i].details["prob_no_reasoning"] == pytest.approx(p(prompt, "<answer>", ref), abs=1e-6)


class CopyModel(torch.nn.Module):
    """A hand-made 'model': logit of token v at column t = 2 x (times v occurs in the unpadded columns <= t), so a
    reasoning that already wrote the answer makes the reference likelier than the prompt alone does."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0, **_):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        onehot = torch.nn.functional.one_hot(input_ids, self.vocab).float() * mask[..., None]
        logits = 2.0 * onehot.cumsum(1)
        return type("Out", (), {"logits": logits[:, -logits_to_keep:] if logits_to_keep else logits})()


def test_rlpr_debiasing_keeps_what_the_reasoning_adds(char_policy):
    tok = char_policy.tokenizer
    copy = PolicyContext(CopyModel(len(tok)), tok, "cpu")
    ex = Example("1+2=", "3", prompt="1+2=")
    text = "<think>1+2=3 so 3</think><answer>5</answer>"
    out = rlpr(ScoreBatch([ex], [text], [{}]), copy, timeout_s=10, format_weight=0.1)
    prompt_ids = tok("1+2=")["input_ids"]
    with_reasoning = prompt_ids + tok("<think>1+2=3 so 3</think><answer>3</answer>")["input_ids"]
    alone = prompt_ids + tok("<answer>3</answer>")["input_ids"]
    p_b = direct_mean_prob(copy.model, with_reasoning, [len(prompt_ids) + len("<think>1+2=3 so 3</think><answer>")])
    p_a = direct_mean_prob(copy.model, alone, [len(prompt_ids) + 8])
    assert p_b - p_a > 0.01  # the unclipped branch
    assert out[0].score == pytest.approx(0.9 * (p_b - p_a) + 0.1, abs=1e-6)


def test_the_scorer_runs_rlpr_in_process_beside_worker_verifiers(char_policy):
    ex = Example("1+2=", "3", verifier="exact_match", prompt="1+2=")
    comps = [{"name": "exact_match", "weight": 0.0, "params": {"extract": "answer_tag"}}, {"name": "rlpr"}]
    with RewardScorer(comps, timeout_s=10, num_workers=1) as scorer:
        assert scorer.needs_policy
        missing = scorer.score([ex, ex], ["<answer>3</answer>", "<answer>4</answer>"])
        assert missing[0].components["rlpr"] == 0.0
        assert "needs the policy" in missing[0].details["reasons"]["rlpr"]
        scorer.attach_policy(char_policy.model, char_policy.tokenizer, "cpu")
        res = scorer.score([ex, ex], ["<answer>3</answer>", "<answer>4</answer>"])
    assert [r.components["exact_match"] for r in res] == [1.0, 0.0]
    direct = rlpr(ScoreBatch([ex, ex], ["<answer>3</answer>", "<answer>4</answer>"], [{}, {}]), char_policy,
                  timeout_s=10)
    assert [r.components["rlpr"] for r in res] == pytest.approx([d.score for d in direct])
    assert [r.score for r in res] == pytest.approx([d.score for d in direct])  # exact_match has weight 0


def test_consecutive_groups():
    a, b = Example("a", "1"), Example("b", "2")
    assert consecutive_groups([a, a, b, b, a]) == [[0, 1], [2, 3], [4]]


def _cfg(**over):
    tree = {"model": {"path": "m"}, "data": {"source": "d.jsonl"},
            "reward": {"components": [{"name": "rlpr"}]}}
    for key, value in over.items():
        tree[key] = value
    return tree


def test_rlpr_is_refused_where_the_policy_is_not_in_the_scoring_process():
    config_from_dict(_cfg())
    with pytest.raises(ConfigError, match="distributed.backend: ray"):
        config_from_dict(_cfg(distributed={"backend": "ray"}))
    with pytest.raises(ConfigError, match="async.max_staleness"):
        config_from_dict(_cfg(**{"async": {"max_staleness": 1}}))
    with pytest.raises(ConfigError, match="rlpx"):
        config_from_dict(_cfg(reward={"components": [{"name": "rlpx"}]}))
