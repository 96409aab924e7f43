"""The `rlvr` command: config show, list, and clear errors for bad configs and data."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from rlvr.cli import app

runner = CliRunner()


def test_config_show_prints_the_resolved_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": "m"}, "data": {"source": "d.jsonl"}, "algorithm": "dapo"}))
    result = runner.invoke(app, ["config", "show", str(path), "trainer.lr=3e-6", "rollout.n=16"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["trainer"]["lr"] == 3e-6 and shown["rollout"]["n"] == 16
    assert shown["algorithm"]["name"] == "dapo" and shown["algorithm"]["clip_high"] == 0.28


def test_config_errors_exit_2_with_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": "m"}, "data": {"source": "d.jsonl"}}))
    result = runner.invoke(app, ["train", str(path), "rollout.nn=4"])
    assert result.exit_code == 2
    assert "rollout.nn" in result.output and "did you mean 'rollout.n'" in result.output


def test_list_prints_every_registry():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for title in ["algorithm presets", "advantage estimators", "policy losses", "loss aggregations",
                  "KL estimators", "verifiers", "data sources", "multi-turn tools"]:
        assert title in result.output
    for name in ["dapo", "rloo", "gspo", "seq-mean-token-sum-norm", "k3", "math", "mcqa", "reasoning_gym", "jsonl",
                 "calculator", "python", "search"]:
        assert name in result.output


def _train_with_missing_model(tmp_path, rows: list[dict]):
    """`rlvr train` on a JSONL of ``rows`` with a model folder that does not exist."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": str(tmp_path / "no-model")}, "data": {"source": str(data)},
                                    "output_dir": str(tmp_path / "run")}))
    return runner.invoke(app, ["train", str(path)])


def test_bad_data_is_a_clear_error_before_the_model_loads(tmp_path, tiny_model_dir, monkeypatch):
    import rlvr.trainer.learner as learner

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(learner, "load_policy", must_not_load)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1"}) + "\n" + json.dumps({"answer": "2"}) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": str(tiny_model_dir)}, "data": {"source": str(data)},
                                    "output_dir": str(tmp_path / "run")}))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2, result.output
    assert "line 1" in result.output or "no answer" in result.output
    assert not (tmp_path / "run").exists()  # nothing written before the checks pass


def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = _train_with_missing_model(tmp_path, [{"question": "1+1", "answer": "2"}])
    assert result.exit_code == 2, result.output
    assert "model.path" in result.output and "no-model" in result.output
