"""MetricsLogger: metrics.jsonl / completions.jsonl format, resume truncation, lazily imported backends."""

import json
import math
import sys
import types

import pytest
import torch

from rlvr.logging import MetricsLogger, truncate_jsonl


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_jsonl_lines_and_value_conversion(tmp_path):
    with MetricsLogger(tmp_path / "run", [], "p", "r", {}) as logger:
        logger.log(1, {"loss": torch.tensor(0.5), "reward/mean": 1, "note": "hi"})
        # written and flushed immediately: readable before close
        assert read(tmp_path / "run" / "metrics.jsonl") == [{"step": 1, "loss": 0.5, "reward/mean": 1, "note": "hi"}]
        logger.log(2, {"loss": float("nan"), "hist": torch.tensor([1.0, 2.0])})
    lines = read(tmp_path / "run" / "metrics.jsonl")
    assert lines[1]["step"] == 2 and math.isnan(lines[1]["loss"]) and lines[1]["hist"] == [1.0, 2.0]
    assert list(lines[0])[0] == "step"  # step comes first on every line


def test_completions_appended_per_row(tmp_path):
    logger = MetricsLogger(tmp_path, [], "p", "r", {})
    logger.log_completions(3, [{"prompt": "a", "completion": "b", "reward": torch.tensor(1.0)}, {"prompt": "c"}])
    logger.log_completions(4, [{"prompt": "d"}])
    logger.close()
    assert read(tmp_path / "completions.jsonl") == [
        {"step": 3, "prompt": "a", "completion": "b", "reward": 1.0},
        {"step": 3, "prompt": "c"},
        {"step": 4, "prompt": "d"},
    ]


def test_reopen_appends_and_truncate_after_avoids_duplicate_steps(tmp_path):
    first = MetricsLogger(tmp_path, [], "p", "r", {})
    for step in range(1, 6):
        first.log(step, {"x": step})
        first.log_completions(step, [{"c": step}])
    first.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "x"')  # a half-written line from a crash
    # resume from the checkpoint of step 3: steps 4, 5 (and the broken line) are dropped, then redone
    second = MetricsLogger(tmp_path, [], "p", "r", {})
    second.truncate_after(3)
    second.log(4, {"x": 40})
    second.close()
    assert [(r["step"], r["x"]) for r in read(tmp_path / "metrics.jsonl")] == [(1, 1), (2, 2), (3, 3), (4, 40)]
    assert [r["step"] for r in read(tmp_path / "completions.jsonl")] == [1, 2, 3]
    assert truncate_jsonl(tmp_path / "missing.jsonl", 1) == 0


def test_truncate_after_while_files_are_open(tmp_path):
    logger = MetricsLogger(tmp_path, [], "p", "r", {})
    logger.log(1, {"x": 1})
    logger.log(2, {"x": 2})
    logger.truncate_after(1)
    logger.log(2, {"x": 22})
    logger.close()
    assert [(r["step"], r["x"]) for r in read(tmp_path / "metrics.jsonl")] == [(1, 1), (2, 22)]


def test_tensorboard_gets_numbers_only(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(tmp_path, ["tensorboard"], "p", "r", {})
    logger.log(1, {"loss": torch.tensor(0.25), "text": "skip me", "flag": True})
    logger.log(2, {"loss": 0.125})
    logger.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert acc.Tags()["scalars"] == ["loss"]  # the string and the bool were not sent
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.25), (2, 0.125)]


@pytest.mark.parametrize("backend", ["wandb", "mlflow"])
def test_missing_backend_package_says_what_to_install(tmp_path, monkeypatch, backend):
    monkeypatch.setitem(sys.modules, backend, None)  # makes `import <backend>` raise ImportError
    with pytest.raises(ImportError, match=rf"pip install rlvr\[{backend}\]"):
        MetricsLogger(tmp_path, [backend], "p", "r", {})


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="unknown logging backend 'tensorbord'; choices: tensorboard, wandb, mlflow"):
        MetricsLogger(tmp_path, ["tensorbord"], "p", "r", {})


def fake_wandb(calls):
    mod = types.ModuleType("wandb")
    mod.util = types.SimpleNamespace(generate_id=lambda: "abc123")
    mod.init = lambda **kw: calls.append(("init", kw))
    mod.log = lambda data, step: calls.append(("log", data, step))
    mod.finish = lambda: calls.append(("finish",))
    mod.Table = lambda columns, data: ("table", columns, data)
    return mod


def test_wandb_sink_with_a_fake_module(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    logger = MetricsLogger(tmp_path, ["wandb"], "proj", "", {"trainer": {"lr": 1e-6}})
    logger.log(7, {"loss": torch.tensor(2.0), "name": "x"})
    logger.log_completions(7, [{"prompt": "p", "details": {"a": 1}}])
    logger.close()
    init = calls[0][1]
    # run name defaults to the output folder's name; the run id is stored for resume
    assert (init["project"], init["name"], init["id"], init["resume"]) == ("proj", tmp_path.name, "abc123", "allow")
    assert init["config"] == {"trainer": {"lr": 1e-6}}
    assert calls[1] == ("log", {"loss": 2.0}, 7)
    # completions table: columns in first-seen order, nested values as JSON text
    assert calls[2] == ("log", {"completions": ("table", ["step", "prompt", "details"], [[7, "p", '{"a": 1}']])}, 7)
    assert calls[3] == ("finish",)
    assert (tmp_path / "wandb_run_id.txt").read_text() == "abc123"


def test_mlflow_sink_with_a_fake_module(tmp_path, monkeypatch):
    calls = []
    mod = types.ModuleType("mlflow")
    mod.set_experiment = lambda name: calls.append(("experiment", name))
    mod.start_run = lambda **kw: (calls.append(("start", kw)), types.SimpleNamespace(info=types.SimpleNamespace(run_id="R1")))[1]
    mod.log_params = lambda params: calls.append(("params", params))
    mod.log_metrics = lambda metrics, step: calls.append(("metrics", metrics, step))
    mod.log_table = lambda data, artifact_file: calls.append(("table", data, artifact_file))
    mod.end_run = lambda: calls.append(("end",))
    monkeypatch.setitem(sys.modules, "mlflow", mod)
    logger = MetricsLogger(tmp_path, ["mlflow"], "proj", "run", {"a": {"b": 1}})
    logger.log(2, {"loss": 1.5, "kl": float("inf"), "clip@frac": 0.1})
    logger.log_completions(2, [{"c": "x"}])
    logger.close()
    assert calls[:3] == [("experiment", "proj"), ("start", {"run_name": "run"}), ("params", {"a.b": "1"})]
    # mlflow rejects non-finite values and "@" in names: inf dropped, "@" -> "_"
    assert calls[3] == ("metrics", {"loss": 1.5, "clip_frac": 0.1}, 2)
    assert calls[4] == ("table", {"step": [2], "c": ["x"]}, "completions/step_0000002.json")
    # a second logger in the same folder resumes the stored run id
    calls.clear()
    MetricsLogger(tmp_path, ["mlflow"], "proj", "run", {}).close()
    assert calls[1] == ("start", {"run_id": "R1"})


def test_closed_logger_refuses_writes(tmp_path):
    logger = MetricsLogger(tmp_path, [], "p", "r", {})
    logger.close()
    logger.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        logger.log(1, {"x": 1})
