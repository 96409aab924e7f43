"""Config parsing: YAML + dotted overrides, presets, and errors that name the key and the closest valid one."""

from __future__ import annotations

import pytest
import yaml

from rlvr.config import ConfigError, config_from_dict, load_config, parse_overrides, to_yaml

BASE = {"model": {"path": "m"}, "data": {"source": "d.jsonl"}}


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "trainer": {"lr": 1e-5}, "rollout": {"n": 4}}))
    cfg = load_config(path, ["trainer.lr=1e-6", "rollout.n=16", "model.lora.enabled=true", "logging.backends=[tensorboard]"])
    assert cfg.trainer.lr == 1e-6 and cfg.rollout.n == 16 and cfg.model.lora.enabled is True
    assert cfg.logging.backends == ["tensorboard"]
    assert isinstance(cfg.trainer.lr, float)


def test_override_values_are_parsed_as_yaml():
    assert parse_overrides(["a.b=3", "a.c=0.5", "a.d=true", "a.e=hello", "a.f=[1, 2]"]) == [
        ("a.b", 3), ("a.c", 0.5), ("a.d", True), ("a.e", "hello"), ("a.f", [1, 2])]
    with pytest.raises(ConfigError, match="not of the form"):
        parse_overrides(["trainer.lr"])


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert config_from_dict(BASE, ["trainer.lr=1"]).trainer.lr == 1.0
    with pytest.raises(ConfigError, match="rollout.n: expected an integer"):
        config_from_dict(BASE, ["rollout.n=2.5"])
    with pytest.raises(ConfigError, match="trainer.deterministic: expected true or false"):
        config_from_dict(BASE, ["trainer.deterministic=3"])


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.lrr'.*did you mean 'trainer.lr'"):
        config_from_dict(BASE, ["trainer.lrr=1e-6"])
    with pytest.raises(ConfigError, match=r"unknown key 'rolout'.*did you mean 'rollout'"):
        config_from_dict({**BASE, "rolout": {"n": 2}})


def test_unknown_registry_names_are_caught_before_loading():
    with pytest.raises(ConfigError, match=r"algorithm.advantage.*did you mean 'grpo'"):
        config_from_dict(BASE, ["algorithm.advantage=grop"])
    with pytest.raises(ConfigError, match=r"algorithm.name.*did you mean 'dapo'"):
        config_from_dict({**BASE, "algorithm": "dapoo"})


def test_preset_then_field_overrides():
    cfg = config_from_dict({**BASE, "algorithm": "dapo"})
    assert cfg.algorithm.name == "dapo" and cfg.algorithm.clip_high == pytest.approx(0.28)
    assert cfg.algorithm.dynamic_sampling is True
    cfg = config_from_dict({**BASE, "algorithm": {"name": "dapo", "clip_high": 0.3}})
    assert cfg.algorithm.clip_high == 0.3 and cfg.algorithm.clip_low == pytest.approx(0.2)
    cfg = config_from_dict(BASE, ["algorithm=gspo", "algorithm.clip_high=0.001"])
    assert cfg.algorithm.loss == "gspo" and cfg.algorithm.clip_high == 0.001


@pytest.mark.parametrize("overrides, message", [
    (["rollout.n=1"], "rollout.n = 1"),
    (["rollout.temperature=0"], "greedy"),
    (["trainer.mini_batches=3"], "must divide"),
    (["algorithm.kl_in=reward"], "kl_coef > 0"),
    (["algorithm.ref_reset_every=10"], "kl_coef = 0 never loads"),
    (["trainer.lr=-1"], "trainer.lr must be > 0"),
    (["rollout.top_p=1.5"], "top_p"),
    (["algorithm.dual_clip=0.5"], "dual_clip"),
    (["model.dtype=fp8"], "model.dtype"),
    (["trainer.schedule=cosin"], "did you mean 'cosine'"),
    (["trainer.warmup_steps=500", "trainer.steps=10"], "warmup_steps"),
    (["reward.components=[{name: mathh}]"], r"reward.components\[0\].name.*did you mean 'math'"),
    (["reward.components=[{name: missing.py:fn}]"], "reward file 'missing.py' not found"),
    (["reward.components=[]"], "at least one reward"),
    (["algorithm.kl_coef=0.1", "algorithm.kl_in=reward"], "only the 'reinforce_pp'"),
    (["algorithm.kl_target=0.05"], "kl_coef = 0 loads no reference"),
    (["algorithm.kl_coef=0.1", "algorithm.kl_target=0.05", "algorithm.kl_horizon=0"], "kl_horizon"),
    (["algorithm.adv_eps=0"], "adv_eps"),
    (["algorithm.agg_norm_len=-1"], "agg_norm_len"),
    (["algorithm.dynamic_sampling=true", "rollout.n=1", "algorithm.advantage=reinforce_pp"], "dynamic_sampling"),
    (["trainer.max_bad_steps=0"], "max_bad_steps"),
    (["trainer.min_lr_ratio=-0.5"], "min_lr_ratio"),
    (["trainer.betas=[0.9]"], "betas"),
    (["eval.n=4"], "eval.n = 4 samples at eval.temperature 0 are greedy"),
    (["rollout.engine=vlm"], "rollout.engine: 'vlm' is not one of hf, vllm; did you mean 'vllm'"),
    (["rollout.engine=vllm", "rollout.vllm.sleep_mode=true", "model.device=cpu"], "sleep_mode .* GPU only"),
    (["rollout.vllm.gpu_memory_utilization=1.5"], "gpu_memory_utilization"),
    (["rollout.vllm.kv_cache_gb=-1"], "kv_cache_gb"),
    (["rollout.vllm.dtype=fp8"], "rollout.vllm.dtype"),
    (["algorithm.rollout_is=token_trunc"], "did you mean 'token_truncate'"),
    (["algorithm.rollout_is=token_mask", "algorithm.rollout_is_cap=0.5"], "rollout_is_cap must be >= 1"),
])
def test_impossible_combinations_fail_with_the_keys(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(BASE, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_resolved_config_round_trips(tmp_path):
    cfg = config_from_dict({**BASE, "algorithm": "dr_grpo"})
    again = tmp_path / "again.yaml"
    again.write_text(to_yaml(cfg))
    assert load_config(again) == cfg


def test_every_shipped_example_config_is_valid():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        load_config(path)


@pytest.mark.parametrize("advantage", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
def test_rollout_n_1_message_says_what_the_advantage_would_do(advantage):
    import torch

    from rlvr.algorithms import ADVANTAGES

    with pytest.raises(ConfigError) as err:
        config_from_dict(BASE, ["rollout.n=1", f"algorithm.advantage={advantage}"])
    message = str(err.value)
    assert message.startswith("rollout.n = 1") and "rollout.n >= 2" in message and "would be 0" not in message
    # the claim, checked on 4 prompts x 1 completion: not 0, but the reward (or the batch-whitened reward)
    rewards, mask, groups = torch.tensor([1.0, 0.0, 0.5, 2.0]), torch.ones(4, 1, dtype=torch.bool), torch.arange(4)
    adv, _ = ADVANTAGES.get(advantage)(rewards, mask, groups, eps=1e-6)
    if advantage == "reinforce_pp_baseline":
        assert "batch-whitened reward" in message
        assert torch.allclose(adv, ADVANTAGES.get("reinforce_pp")(rewards, mask, groups, eps=1e-6)[0])
        assert torch.allclose(adv[:, 0], (rewards - rewards.mean()) / (rewards.var() + 1e-6).sqrt())
    else:
        assert "the raw reward r" in message
        expected = rewards / (1 + 1e-6) if advantage == "grpo" else rewards
        assert torch.allclose(adv[:, 0], expected)


def test_rollout_n_1_with_a_group_key_pools_prompts_and_is_allowed():
    cfg = config_from_dict(BASE, ["rollout.n=1", "algorithm.group_key=task"])
    assert cfg.rollout.n == 1 and cfg.algorithm.group_key == "task"


def test_rlpr_is_refused_with_multi_turn_trajectories():
    with pytest.raises(ConfigError, match="does not run with rollout.multi_turn"):
        config_from_dict({"reward": {"components": [{"name": "rlpr"}]},
                          "rollout": {"multi_turn": {"tools": ["calculator"]}}})
