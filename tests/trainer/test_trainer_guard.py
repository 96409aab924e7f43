"""Bad model folders, unwritable outputs, damaged checkpoints, SIGTERM and a second run on the same output_dir:
each a one-line error before the model loads, or a logged fallback while the run goes on."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.config import ConfigError, config_from_dict
from rlvr.trainer import state as ckpt, train
from rlvr.trainer.guard import OutputLock
from rlvr.trainer.policy import model_path
from tests.trainer.test_trainer_loop import make_cfg


@pytest.fixture
def no_model_load(monkeypatch):
    """The checks must fire before any model loads."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr("rlvr.trainer.learner.load_policy", refuse)


def _damage(folder: Path, how: str) -> Path:
    """Damage a copy of the tiny model folder; returns the model.path to use."""
    weights = folder / "model.safetensors"
    if how == "file":
        return weights
    if how == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif how == "header":
        data = weights.read_bytes()
        weights.write_bytes(data[:8] + b"{not json" + data[17:])
    elif how == "no_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).unlink()
    elif how == "no_config":
        (folder / "config.json").unlink()
    elif how == "bad_config":
        (folder / "config.json").write_text("{")
    elif how == "no_weights":
        weights.unlink()
    return folder


@pytest.mark.parametrize("how, expected", [
    ("file", "is a file; it must be a model folder"),
    ("truncated", r"model.safetensors is damaged: truncated or padded"),
    ("header", r"model.safetensors is damaged: corrupt header"),
    ("no_tokenizer", "has no tokenizer files"),
    ("no_config", "has no config.json"),
    ("bad_config", r"config.json is not valid JSON"),
    ("no_weights", r"has no weights \(\*.safetensors or pytorch_model.bin\)"),
])
def test_a_bad_model_folder_is_named_before_loading(tmp_path, tiny_model_dir, arithmetic_jsonl, no_model_load,
                                                     how, expected):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    cfg = config_from_dict(make_cfg(tmp_path, _damage(folder, how), arithmetic_jsonl))
    with pytest.raises((ConfigError, FileNotFoundError), match=expected):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_hub_id_passes_through_and_the_cli_prints_one_line(tmp_path, tiny_model_dir, arithmetic_jsonl):
    assert model_path("org/some-model") == "org/some-model"
    assert model_path(str(tiny_model_dir)) == str(tiny_model_dir)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(make_cfg(tmp_path, _damage(folder, "truncated"), arithmetic_jsonl)))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "model.safetensors is damaged" in result.output
    assert "Traceback" not in result.output


def test_checkpoints_being_a_file_stops_the_run_before_loading(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                                                no_model_load):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("")
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl))
    with pytest.raises(FileExistsError, match=r"run/checkpoints is a file; the run needs a folder there"):
        train(cfg)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, output_dir=str(blocker / "run")))
    with pytest.raises(FileExistsError, match=r"cannot create .*blocker/run: .*blocker is a file"):
        train(cfg)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_stops_the_run_before_loading(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                                              no_model_load):
    (tmp_path / "run").mkdir()
    (tmp_path / "run").chmod(0o555)
    try:
        cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl))
        with pytest.raises(ConfigError, match=r"output_dir: cannot write in .*run"):
            train(cfg)
    finally:
        (tmp_path / "run").chmod(0o755)


def _fake_checkpoint(out: Path, step: int, manifest: bool = True) -> Path:
    folder = ckpt.checkpoint_dir(out, step)
    folder.mkdir(parents=True)
    (folder / ckpt.STATE_FILE).write_bytes(b"state" * 100)
    from safetensors.torch import save_file
    import torch

    save_file({"w": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    if manifest:
        ckpt.write_manifest(folder)
    return folder


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    out = tmp_path / "run"
    first, second = _fake_checkpoint(out, 1), _fake_checkpoint(out, 2)
    state = second / ckpt.STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        assert ckpt.find_resume(out, "auto") == first
    assert "trainer_state.pt: 100 bytes, the manifest says 500" in caplog.text
    assert ckpt.list_checkpoints(out) == [first] and (out / "checkpoints" / "step_000002.damaged").is_dir()
    (first / ckpt.STATE_FILE).write_bytes(b"x" * 500)  # same size, other content
    with pytest.raises(ckpt.CheckpointError, match=r"no usable checkpoint .*step_000001: trainer_state.pt: sha256"):
        ckpt.find_resume(out, "auto")
    with pytest.raises(ckpt.CheckpointError, match=r"step_000001 is damaged: trainer_state.pt: sha256"):
        ckpt.find_resume(out, str(first))


def test_a_checkpoint_without_a_manifest_is_accepted_unless_its_weights_are_truncated(tmp_path):
    out = tmp_path / "run"
    old = _fake_checkpoint(out, 1, manifest=False)
    assert ckpt.find_resume(out, "auto") == old
    weights = old / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ckpt.CheckpointError, match=r"model.safetensors: truncated or padded"):
        ckpt.find_resume(out, "auto")


def test_resume_skips_a_truncated_model_safetensors(tmp_path, tiny_model_dir, arithmetic_jsonl, caplog):
    cfg = make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, trainer={"steps": 2, "micro_batch_size": 16})
    train(config_from_dict(cfg))
    latest = tmp_path / "run" / "checkpoints" / "step_000002"
    manifest = json.loads((latest / "manifest.json").read_text())["files"]
    assert {"model.safetensors", "trainer_state.pt", "config.json"} <= set(manifest)
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    cfg["trainer"]["steps"] = 3
    with caplog.at_level(logging.INFO, logger="rlvr"):
        result = train(config_from_dict(cfg))
    assert "step_000002 is damaged (model.safetensors: 1000 bytes" in caplog.text
    assert "resumed from" in caplog.text and "step 1)" in caplog.text
    assert result["step"] == 3
    assert [c.name for c in ckpt.list_checkpoints(tmp_path / "run")] == ["step_000001", "step_000002", "step_000003"]


def test_stale_tmp_checkpoints_are_removed_and_the_lock_is_released(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                                                     caplog):
    stale = tmp_path / "run" / "checkpoints" / "step_000007.tmp"
    stale.mkdir(parents=True)
    (tmp_path / "run" / ".lock").write_text("pid 999999 on gone-host since 2020-01-01 00:00:00\n")
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                    trainer={"steps": 1, "micro_batch_size": 16}))
    with caplog.at_level(logging.INFO, logger="rlvr"):
        train(cfg)
    assert not stale.exists()
    assert "step_000007.tmp: an incomplete checkpoint left by an interrupted run" in caplog.text
    assert "taking over the stale lock" in caplog.text and "pid 999999 on gone-host" in caplog.text
    assert (tmp_path / "run" / ".lock").read_text() == ""  # released
    OutputLock(tmp_path / "run").release()  # and free


def test_a_second_run_on_a_locked_output_dir_is_refused(tmp_path, tiny_model_dir, arithmetic_jsonl, no_model_load):
    (tmp_path / "run").mkdir()
    holder = OutputLock(tmp_path / "run")  # flock: another open file conflicts, even in this process
    try:
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(make_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl)))
        result = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml")])
        assert result.exit_code == 2, result.output
        assert f"is in use by another run (pid {os.getpid()} on " in " ".join(result.output.split())
        assert "Traceback" not in result.output
    finally:
        holder.release()
