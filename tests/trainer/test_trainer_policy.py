"""Policy loading and response log-probs: dropout off, and the chunked path never skips a logit transform."""

from __future__ import annotations

import pytest
import torch

from rlvr.config import ModelConfig
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama, save_tiny
from rlvr.trainer.policy import disable_dropout, load_policy, response_logprobs


def _inputs(vocab: int, b=3, lp=4, t=5):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (b, lp + t), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding on one row
    return ids, mask, t


def _reference_logp(model, ids, mask, t, temperature=1.0):
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -t - 1 : -1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, ids[:, -t:, None]).squeeze(-1)


def test_dropout_is_disabled_so_update_passes_are_deterministic(tmp_path):
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2)
    model.config.attention_dropout = 0.3
    path = save_tiny(model, tokenizer, tmp_path / "m")
    policy = load_policy(ModelConfig(path=str(path)), torch.device("cpu"), torch.float32)
    assert policy.training
    ids, mask, t = _inputs(len(tokenizer))
    a, _ = response_logprobs(policy, ids, mask, t, temperature=1.0, chunk_size=4, with_entropy=False)
    b, _ = response_logprobs(policy, ids, mask, t, temperature=1.0, chunk_size=4, with_entropy=False)
    assert torch.equal(a, b)
    drop = torch.nn.Dropout(0.5)
    disable_dropout(drop)
    assert drop.p == 0.0


def test_logits_scaling_models_use_the_full_logits_path():
    from transformers import GraniteConfig, GraniteForCausalLM

    config = GraniteConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, logits_scaling=8.0)
    torch.manual_seed(0)
    model = GraniteForCausalLM(config).eval()
    ids, mask, t = _inputs(50)
    with torch.no_grad():
        got, _ = response_logprobs(model, ids, mask, t, temperature=0.7, chunk_size=4, with_entropy=False)
        assert torch.allclose(got, _reference_logp(model, ids, mask, t, 0.7), atol=1e-5)


def test_lora_on_lm_head_gets_gradients():
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2)
    model.config.tie_word_embeddings = False
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "lm_head"], init_lora_weights=False))
    ids, mask, t = _inputs(len(tokenizer))
    logp, _ = response_logprobs(model, ids, mask, t, temperature=1.0, chunk_size=4, with_entropy=False)
    with torch.no_grad():
        assert torch.allclose(logp, _reference_logp(model, ids, mask, t), atol=1e-5)
    logp.sum().backward()
    head_lora = [p for n, p in model.named_parameters() if "lm_head" in n and "lora" in n]
    assert head_lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in head_lora)
