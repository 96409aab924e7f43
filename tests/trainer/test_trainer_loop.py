"""End-to-end training on a tiny in-memory-built Llama: artifacts, real updates, exact resume, guard rails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlvr.config import config_from_dict
from rlvr.trainer import TrainingDiverged, train

REWARD = str(Path(__file__).with_name("reward_fns.py")) + ":digits"
ROOT = Path(__file__).resolve().parents[2]


def make_cfg(tmp_path, model_dir, data_path, **sections) -> dict:
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "model": {"path": str(model_dir)},
        "data": {"source": str(data_path)},
        "prompt": {"template": "{question}"},
        "rollout": {"prompts_per_step": 4, "n": 4, "max_new_tokens": 12, "temperature": 1.0},
        "reward": {"components": [{"name": REWARD}], "num_workers": 1},
        "trainer": {"steps": 3, "lr": 1e-3, "micro_batch_size": 8, "seed": 1},
        "checkpoint": {"every": 1, "keep": 10},
        "logging": {"progress": False},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_train_writes_artifacts_and_changes_weights(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl))
    result = train(cfg)
    run = Path(cfg.output_dir)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    for key in ["reward/mean", "reward/std", "accuracy", "frac_reward_zero_std", "completions/mean_length",
                "completions/clipped_ratio", "entropy", "clip_frac_low", "grad_norm", "lr", "tokens_per_s",
                "time/rollout_s", "time/reward_s", "time/update_s"]:
        assert key in lines[-1], key
    assert not any(key.startswith("_") for line in lines for key in line), "a non-metric leaked into metrics.jsonl"
    completions = (run / "completions.jsonl").read_text().splitlines()
    assert len(completions) == 3 * 16  # every step's P*G completions are kept, none overwritten
    row = json.loads(completions[0])
    assert {"prompt", "completion", "reward", "reason", "finish_reason"} <= set(row)
    final = run / "checkpoints" / "step_000003"
    assert (final / "config.json").is_file() and (final / "trainer_state.pt").is_file()
    before, after = weights(Path(tiny_model_dir)), weights(final)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "training ran 3 steps but no weight changed"
    assert result["step"] == 3
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(final)
    assert AutoTokenizer.from_pretrained(final).decode(AutoTokenizer.from_pretrained(final)("1 + 2")["input_ids"]) \
        == "1 + 2"


def test_micro_batches_accumulate_exactly(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """One step with 16 completions in one micro-batch == the same step in micro-batches of 3: same loss and
    same gradient norm (measured before the optimizer; Adam's per-element normalisation would blow float noise
    in near-zero gradient entries up to ~lr, so weights are compared with SGD in test_trainer_update.py)."""
    runs = {}
    for micro in (16, 3):
        cfg = config_from_dict(make_cfg(tmp_path / str(micro), tiny_model_dir, arithmetic_jsonl,
                                        trainer={"steps": 1, "micro_batch_size": micro, "lr": 1e-2}))
        train(cfg)
        runs[micro] = json.loads((Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()[0])
    assert runs[16]["reward/mean"] == runs[3]["reward/mean"]  # same rollouts
    assert runs[16]["grad_norm"] == pytest.approx(runs[3]["grad_norm"], rel=1e-5)
    assert runs[16]["loss"] == pytest.approx(runs[3]["loss"], abs=1e-6)
    assert runs[16]["grad_norm"] > 0


def _cli(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "rlvr.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_model_dir, arithmetic_jsonl):
    steps = 4
    for name in ("straight", "killed"):
        cfg = make_cfg(tmp_path / name, tiny_model_dir, arithmetic_jsonl, trainer={"steps": steps, "seed": 3,
                                                                                    "deterministic": True})
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    straight = _cli(["train", str(tmp_path / "straight.yaml")], tmp_path)
    assert straight.wait(timeout=300) == 0, straight.stdout.read()

    proc = _cli(["train", str(tmp_path / "killed.yaml")], tmp_path)
    marker = tmp_path / "killed" / "run" / "checkpoints" / "step_000002" / "trainer_state.pt"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.stdout.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "run" / "checkpoints" / f"step_{steps:06d}").exists()
    resumed = _cli(["train", str(tmp_path / "killed.yaml")], tmp_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    a = weights(tmp_path / "straight" / "run" / "checkpoints" / f"step_{steps:06d}")
    b = weights(tmp_path / "killed" / "run" / "checkpoints" / f"step_{steps:06d}")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after kill + resume"
    metrics = [json.loads(x)["step"] for x in (tmp_path / "killed" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, steps + 1))  # no duplicated or lost step lines

    again = _cli(["train", str(tmp_path / "killed.yaml")], tmp_path)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing to do" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # SIGTERM: what Slurm / Kubernetes send
def test_a_signal_finishes_the_step_writes_a_checkpoint_then_exits(tmp_path, tiny_model_dir, arithmetic_jsonl, sig):
    cfg = make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 200},
                   checkpoint={"every": 1000, "keep": 2})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = _cli(["train", str(tmp_path / "c.yaml")], tmp_path)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while (not metrics.exists() or not metrics.read_text()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert f"{sig.name}: finishing this step, writing a checkpoint" in out
    checkpoints = list((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 1 and not checkpoints[0].name.endswith(".tmp") and "checkpoint written" in out
    step = int(checkpoints[0].name.split("_")[1])
    assert 1 <= step < 200


def test_non_finite_steps_are_skipped_then_stop_the_run(tmp_path, tiny_model_dir, arithmetic_jsonl, monkeypatch):
    from rlvr.algorithms import POLICY_LOSSES

    calls = {"n": 0}
    ppo = POLICY_LOSSES.get("ppo_clip")

    def nan_after_first_step(logp, old_logp, advantages, mask, **kw):
        calls["n"] += 1
        loss, metrics = ppo(logp, old_logp, advantages, mask, **kw)
        return (loss * float("nan") if calls["n"] > 1 else loss), metrics

    # registered for this test only: tests that walk every registered loss must not meet it
    monkeypatch.setitem(POLICY_LOSSES._items, "test_nan_loss", nan_after_first_step)
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 6, "max_bad_steps": 2,
                                                                                    "micro_batch_size": 16},
                                    algorithm={"loss": "test_nan_loss"}))
    with pytest.raises(TrainingDiverged, match="2 consecutive steps"):
        train(cfg)
    run = Path(cfg.output_dir)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["skipped"] for x in lines] == [0.0, 1.0, 1.0]  # steps 2 and 3 skipped and logged; 3 stopped the run
    good = run / "checkpoints" / "step_000002"
    assert good.is_dir() and not (run / "checkpoints" / "step_000003").exists()
    # the skipped step did not touch the weights
    assert all(torch.equal(v, weights(run / "checkpoints" / "step_000001")[k]) for k, v in weights(good).items())


def test_an_engine_crash_mid_run_keeps_the_checkpoints_and_the_same_command_resumes(
        tmp_path, tiny_model_dir, arithmetic_jsonl, monkeypatch):
    from rlvr.rollout.hf import HFRolloutEngine

    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 4}))
    straight = config_from_dict(make_cfg(tmp_path / "straight", tiny_model_dir, arithmetic_jsonl, trainer={"steps": 4}))
    train(straight)
    generate, calls = HFRolloutEngine.generate, {"n": 0}

    def dies_at_step_3(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("engine core died")
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(HFRolloutEngine, "generate", dies_at_step_3)
    with pytest.raises(RuntimeError, match="engine core died"):
        train(cfg)
    run = Path(cfg.output_dir)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    monkeypatch.setattr(HFRolloutEngine, "generate", generate)
    assert train(cfg)["step"] == 4  # the same config resumes from step 2
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    final = weights(run / "checkpoints" / "step_000004")
    assert all(torch.equal(v, final[k]) for k, v in weights(Path(straight.output_dir) / "checkpoints" /
                                                              "step_000004").items())


def test_lora_with_kl_uses_disabled_adapters_as_reference(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = config_from_dict(make_cfg(
        tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 2, "lr": 1e-2},
        model={"path": str(tiny_model_dir), "lora": {"enabled": True, "r": 4, "alpha": 8}},
        algorithm={"kl_coef": 0.1}))
    train(cfg)
    final = Path(cfg.output_dir) / "checkpoints" / "step_000002"
    assert (final / "adapter_model.safetensors").is_file()
    lines = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # step 1: adapters start at zero -> policy == reference
    assert lines[1]["kl"] > 0  # after one update the policy has moved away from the base


def test_resume_after_a_reference_reset_matches_a_straight_run(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """ProRL resets the reference at step 2; resuming from step 3 must restore that reset reference."""
    algo = {"name": "prorl", "ref_reset_every": 2, "kl_coef": 0.5}
    straight = config_from_dict(make_cfg(tmp_path / "a", tiny_model_dir, arithmetic_jsonl, algorithm=algo,
                                         trainer={"steps": 4, "micro_batch_size": 16}))
    train(straight)
    first = config_from_dict(make_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, algorithm=algo,
                                      trainer={"steps": 3, "micro_batch_size": 16}))
    train(first)
    saved = Path(first.output_dir) / "checkpoints" / "step_000003"
    assert (saved / "reference" / "model.safetensors").is_file()
    assert [f.name for f in saved.glob("*.safetensors")] == ["model.safetensors"]  # what vLLM would load
    resumed = config_from_dict(make_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, algorithm=algo,
                                        trainer={"steps": 4, "micro_batch_size": 16}))
    train(resumed)
    a = weights(Path(straight.output_dir) / "checkpoints" / "step_000004")
    b = weights(Path(resumed.output_dir) / "checkpoints" / "step_000004")
    assert all(torch.equal(a[k], b[k]) for k in a)
    kl = [json.loads(x)["kl"] for x in (Path(resumed.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert kl[2] < kl[1] or kl[2] == pytest.approx(0.0, abs=1e-6)  # step 3 starts right after the reset


def test_eval_during_training_logs_eval_metrics(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = config_from_dict(make_cfg(
        tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 2, "micro_batch_size": 16},
        data={"eval_source": str(arithmetic_jsonl), "eval_size": 5, "verifier": "exact_match"},
        eval={"every": 1, "n": 2, "temperature": 1.0, "k": [1, 2], "max_new_tokens": 6},
        checkpoint={"every": 0, "keep": 1}))
    train(cfg)
    lines = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert (Path(cfg.output_dir) / "curves.png").stat().st_size > 1000
    for line in lines:
        assert "eval/pass@1" in line and "eval/pass@2" in line, sorted(line)
        assert 0.0 <= line["eval/pass@1"] <= line["eval/pass@2"] <= 1.0


def test_a_fresh_run_refuses_to_mix_with_later_checkpoints(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 2, "micro_batch_size": 16}))
    train(cfg)
    again = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                      trainer={"steps": 2, "micro_batch_size": 16}, checkpoint={"resume": "never"}))
    with pytest.raises(FileExistsError, match="past step 0"):
        train(again)


@pytest.mark.parametrize("name", ["reference/model.safetensors", "reference.safetensors"])  # now / before
def test_a_saved_reference_loads_from_either_checkpoint_layout(tmp_path, name):
    from safetensors.torch import save_model

    from rlvr.trainer.state import load_reference

    saved, fresh = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    save_model(saved, str(tmp_path / name))
    load_reference(fresh, tmp_path)
    assert torch.equal(fresh.weight, saved.weight) and torch.equal(fresh.bias, saved.bias)
