"""Issue 21 "bad input never crashes": config-side checks, each a one-line error naming the file / key / value."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.config import ConfigError, config_from_dict, load_config, parse_overrides

BASE = {"model": {"path": "m"}, "data": {"source": "d.jsonl"}}
runner = CliRunner()


def test_duplicate_yaml_keys_are_refused_naming_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  lr: 1.0e-6\nmodel:\n  path: m\ntrainer:\n  steps: 5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: duplicate key 'trainer' on line 1 and line 5"):
        load_config(path)
    path.write_text("trainer:\n  lr: 1.0e-6\n  lr: 2.0e-6\n")  # nested too
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' on line 2 and line 3"):
        load_config(path)


@pytest.mark.parametrize("overrides, message", [
    (["trainer.lr=0"], "trainer.lr must be > 0, got 0.0 \\(the updates would not change a weight\\)"),
    (["reward.components=[{name: math, weight: 0}]"], "every weight is 0"),
    (["model.lora.enabled=true", "model.lora.alpha=0"], "model.lora.r and model.lora.alpha must be > 0"),
    (["data.max_prompt_tokens=-1"], "data.max_prompt_tokens must be >= 0"),
])
def test_settings_that_make_every_update_a_no_op_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(BASE, overrides)


def test_zero_weights_are_fine_when_a_kl_or_entropy_term_still_trains():
    config_from_dict(BASE, ["reward.components=[{name: math, weight: 0}]", "algorithm.entropy_coef=0.01"])


def test_misspelt_data_verifier_is_refused_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"data.verifier: unknown verifier 'mathh'; did you mean 'math'\?"):
        config_from_dict(BASE, ["data.verifier=mathh"])


def test_override_that_is_not_valid_yaml_names_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'rollout.n=\[2': the value '\[2' is not valid YAML"):
        parse_overrides(["rollout.n=[2"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    result = runner.invoke(app, ["train", str(path), "rollout.n=[2"])
    assert result.exit_code == 2 and "config error: override 'rollout.n=[2'" in result.output
    assert "Traceback" not in result.output


def test_config_errors_are_printed_on_one_line_when_not_a_terminal(tmp_path):
    path = tmp_path / ("a-rather-long-directory-name-" * 3) / "c.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(BASE))
    result = runner.invoke(app, ["train", str(path), "algorithm.rollout_is=token_mask", "algorithm.rollout_is_cap=0.5"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error:") and lines[0].endswith("got 0.5"), result.output
    result = runner.invoke(app, ["train", str(tmp_path / "missing" / ("x" * 100) / "c.yaml")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


def test_warnings_are_one_line_records_when_stderr_is_not_a_terminal(tmp_path, tiny_model_dir):
    import json
    import subprocess
    import sys

    data = tmp_path / ("a-long-folder-name-" * 4)
    data.mkdir()
    rows = [{"question": "1+1=", "answer": "2"}] * 9 + [{"question": "2+2=", "answer": "4"}]
    (data / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "c.yaml"  # duplicate rows -> a long warning; a 1-token prompt limit stops before the model
    config.write_text(yaml.safe_dump({"model": {"path": str(tiny_model_dir)}, "data": {
        "source": str(data / "d.jsonl"), "max_prompt_tokens": 1}, "output_dir": str(tmp_path / "run")}))
    done = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(config)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    warning = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "repeat an earlier row exactly" in warning[0] and "deduplicate" in warning[0], \
        done.stderr


def test_empty_config_and_directory_are_named_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    result = runner.invoke(app, ["train", "empty.yaml"])
    assert result.exit_code == 2 and "config empty.yaml is empty" in result.output, result.output
    (tmp_path / "confdir").mkdir()
    result = runner.invoke(app, ["train", "confdir"])
    assert result.exit_code == 2 and "config confdir is a directory, not a YAML file" in result.output
    assert not (tmp_path / "runs").exists()


def test_bad_data_writes_no_output_dir(tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1"}) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": str(tiny_model_dir)}, "data": {"source": str(data)},
                                    "output_dir": str(tmp_path / "run")}))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2 and "no usable rows" in result.output, result.output
    assert not (tmp_path / "run").exists()
