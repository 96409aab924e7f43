"""Engine plumbing that needs no vLLM: the engine choice, the install hint, LoRA weights pushed merged, the
HF engine's no-op sync, and rollout log-probs carried into the batch."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.rollout.vllm import INSTALL_HINT, import_vllm, inference_weights
from rlvr.trainer.batch import build_batch
from rlvr.types import Completion, Example, RewardResult


def test_without_vllm_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, as on a machine without it
    with pytest.raises(ImportError) as err:
        import_vllm()
    assert INSTALL_HINT in str(err.value) and "install-vllm-cpu.sh" in str(err.value)


def test_plain_model_weights_are_its_state_dict():
    model = build_tiny_llama(build_char_tokenizer(), hidden=32, layers=1, heads=2, seed=0)
    weights = inference_weights(model)
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_lora_weights_are_merged_without_touching_the_base():
    from peft import LoraConfig, get_peft_model

    base = build_tiny_llama(build_char_tokenizer(), hidden=32, layers=2, heads=2, seed=0)
    names = set(base.state_dict())
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = inference_weights(model)
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    assert set(weights) == names == set(merged)  # Hugging Face checkpoint names, no lora_* / base_layer
    for key in names:
        assert torch.allclose(weights[key], merged[key], atol=1e-6), key
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(weights[q], base.state_dict()[q])  # the adapter is in the pushed weights
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the trainer's copy untouched


def test_hf_engine_sync_is_a_no_op_on_its_own_model_only():
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=32, layers=1, heads=2, seed=0)
    engine = HFRolloutEngine(model, tokenizer)
    assert engine.sync_weights(model) == {}
    with pytest.raises(ValueError, match="model it was built on"):
        engine.sync_weights(copy.deepcopy(model))


def test_the_batch_carries_the_engines_logprobs():
    ex = [Example("q", "1"), Example("r", "2")]
    groups = [[Completion("a", [5, 6], [-0.5, -1.0], "length", [1, 2])],
              [Completion("b", [7], [-0.25], "eos", [3])]]
    results = [RewardResult(1.0), RewardResult(0.0)]
    batch = build_batch(ex, groups, results, pad_id=0)
    assert torch.equal(batch.rollout_logp, torch.tensor([[-0.5, -1.0], [-0.25, 0.0]]))
    groups[1][0] = Completion("b", [7], [], "eos", [3])  # an engine that reports no log-probs
    assert build_batch(ex, groups, results, pad_id=0).rollout_logp is None
