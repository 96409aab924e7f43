"""PPO with a critic end to end on a tiny Llama: both critic kinds train, warm-up leaves the policy alone,
micro-batching and packing are exact, checkpoints resume bit-identically and load in transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import ConfigError, config_from_dict
from rlvr.trainer import train
from tests.trainer.test_trainer_loop import make_cfg, weights

KINDS = {
    "separate": lambda model: {"path": str(model), "lr": 1e-3},
    "shared": lambda model: {"shared": True, "lr": 1e-3},
    "lora": lambda model: {"path": str(model), "lr": 1e-3, "lora": {"enabled": True, "r": 4, "alpha": 8}},
}


def ppo_cfg(tmp_path, model, data, kind="separate", critic=None, **sections):
    trainer = {"steps": 3, "lr": 1e-3, "micro_batch_size": 8, "seed": 1, "mini_batches": 2,
               **sections.pop("trainer", {})}
    return config_from_dict(make_cfg(tmp_path, model, data, algorithm="ppo",
                                     critic={**KINDS[kind](model), **(critic or {})}, trainer=trainer, **sections))


def metrics(cfg) -> list[dict]:
    return [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]


def critic_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    if (checkpoint / "critic" / "value_head.safetensors").is_file():
        return load_file(str(checkpoint / "critic" / "value_head.safetensors"))
    return weights(checkpoint / "critic")


@pytest.mark.parametrize("kind", ["separate", "shared"])
def test_critic_warmup_trains_only_the_critic_then_both_learn(tmp_path, tiny_model_dir, arithmetic_jsonl, kind):
    cfg = ppo_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, kind, critic={"warmup_steps": 1})
    train(cfg)
    ckpts = Path(cfg.output_dir) / "checkpoints"
    base = weights(Path(tiny_model_dir))
    after_warmup, final = weights(ckpts / "step_000001"), weights(ckpts / "step_000003")
    assert all(torch.equal(base[k], after_warmup[k]) for k in base), "the policy moved during critic warm-up"
    assert any(not torch.equal(base[k], final[k]) for k in base), "the policy never trained after warm-up"
    c1, c3 = critic_weights(ckpts / "step_000001"), critic_weights(ckpts / "step_000003")
    assert any(not torch.equal(c1[k], c3[k]) for k in c1), "the critic did not train"
    rows = metrics(cfg)
    assert rows[0]["optimizer_steps"] == 0 and "loss" not in rows[0] and rows[1]["optimizer_steps"] == 2
    for key in ("critic/value_loss", "critic/explained_var", "critic/value_mean", "critic/grad_norm", "critic/lr",
                "adv/returns_mean", "adv/returns_std", "critic/value_clip_frac"):
        assert key in rows[-1], key
    assert all(r["critic/value_loss"] > 0 for r in rows)
    if kind == "separate":  # the saved critic loads in transformers, and back as a critic.path
        from transformers import AutoModelForTokenClassification

        from rlvr.trainer.critic import load_critic_model

        hf = AutoModelForTokenClassification.from_pretrained(ckpts / "step_000003" / "critic")
        again = ppo_cfg(tmp_path / "again", tiny_model_dir, arithmetic_jsonl,
                        critic={"path": str(ckpts / "step_000003" / "critic")})
        ours = load_critic_model(again, torch.device("cpu"), torch.float32, hf.config.vocab_size)
        ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
        with torch.no_grad():
            torch.testing.assert_close(ours(input_ids=ids).logits, hf(input_ids=ids).logits)
        assert hf.config.num_labels == 1


@pytest.mark.parametrize("kind", ["separate", "shared", "lora"])
def test_ppo_resume_is_bit_identical_policy_and_critic(tmp_path, tiny_model_dir, arithmetic_jsonl, kind):
    straight = ppo_cfg(tmp_path / "a", tiny_model_dir, arithmetic_jsonl, kind, trainer={"steps": 2})
    train(straight)
    first = ppo_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, kind, trainer={"steps": 1})
    train(first)
    train(ppo_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, kind, trainer={"steps": 2}))
    a = Path(straight.output_dir) / "checkpoints" / "step_000002"
    b = Path(first.output_dir) / "checkpoints" / "step_000002"
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "policy differs after resume"
    ca, cb = critic_weights(a), critic_weights(b)
    assert ca.keys() == cb.keys() and all(torch.equal(ca[k], cb[k]) for k in ca), "critic differs after resume"
    if kind == "lora":
        assert (a / "critic" / "adapter_model.safetensors").is_file()
    assert metrics(straight)[-1]["critic/value_loss"] == metrics(first)[-1]["critic/value_loss"]


@pytest.mark.parametrize("kind", ["separate", "shared"])
def test_critic_micro_batches_and_packing_accumulate_exactly(tmp_path, tiny_model_dir, arithmetic_jsonl, kind):
    """One step in one micro-batch == micro-batches of 3 == packed rows: the same value loss and critic gradient."""
    runs = {}
    for name, trainer in {"one": {"micro_batch_size": 16}, "micro3": {"micro_batch_size": 3},
                          "packed": {"micro_batch_size": 2, "packing": True}}.items():
        cfg = ppo_cfg(tmp_path / name, tiny_model_dir, arithmetic_jsonl, kind,
                      trainer={"steps": 1, "mini_batches": 1, **trainer})
        train(cfg)
        runs[name] = metrics(cfg)[0]
    for name in ("micro3", "packed"):
        for key in ("critic/value_loss", "critic/grad_norm", "critic/explained_var", "grad_norm", "loss"):
            assert runs[name][key] == pytest.approx(runs["one"][key], rel=1e-4, abs=1e-6), (name, key)


def test_the_critic_config_is_checked(tmp_path, tiny_model_dir, arithmetic_jsonl):
    base = make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl)
    cases = {
        "needs a critic": {"algorithm": "ppo"},
        "does not read": {"algorithm": "grpo", "critic": {"shared": True}},
        "exclude each other": {"algorithm": "ppo", "critic": {"shared": True, "path": str(tiny_model_dir)}},
        "warmup_steps": {"algorithm": "ppo", "critic": {"shared": True, "warmup_steps": 3}},
        "Ray": {"algorithm": "ppo", "critic": {"shared": True}, "distributed": {"backend": "ray"}},
        "gamma": {"algorithm": {"name": "ppo", "gamma": 1.5}, "critic": {"shared": True}},
    }
    for message, sections in cases.items():
        with pytest.raises(ConfigError, match=message):
            config_from_dict({**base, **sections})
    config_from_dict({**base, "algorithm": {"name": "ppo", "kl_coef": 0.01, "kl_in": "reward"},
                      "critic": {"shared": True}})  # the per-token KL penalty in the reward is PPO's classic


def test_a_critic_path_that_is_not_a_model_is_named(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = ppo_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, critic={"path": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match="critic.path"):
        train(cfg)


def test_ppo_trains_in_an_asynchronous_run(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """The critic lives in the learner, so one-step-off sampling (a rollout process) composes with it."""
    cfg = ppo_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 2, "mini_batches": 1},
                  **{"async": {"max_staleness": 1}})
    train(cfg)
    rows = metrics(cfg)
    assert [r["step"] for r in rows] == [1, 2] and all(r["critic/value_loss"] > 0 for r in rows)
    versions = [json.loads(x)["version"] for x in (Path(cfg.output_dir) / "completions.jsonl").read_text().splitlines()]
    assert set(versions) == {0}  # batch 2 was sampled by the weights of step 0, while step 1 trained
