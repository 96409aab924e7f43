"""Argument handling of `rlvr eval` / `rlvr compare` (errors exit with code 2 and say what is wrong)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from rlvr.cli.eval import compare_command, default_ks, eval_command, parse_ks


def _app():
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    return app


def test_parse_and_default_ks():
    assert parse_ks("8, 1,2,2") == [1, 2, 8]  # sorted, unique, spaces ignored
    with pytest.raises(ValueError):
        parse_ks("1,two")
    with pytest.raises(ValueError):
        parse_ks("0,1")
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(12, [3, 99]) == [1, 2, 3, 4, 8, 12]  # powers of 2 <= 12, n itself, extra 3 (99 > n dropped)


def test_eval_errors_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["eval", "--data", "x.jsonl", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "no model" in res.output
    res = runner.invoke(_app(), ["eval", "--model", "m", "--data", "x.jsonl", "--k", "1,x", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--k" in res.output
    res = runner.invoke(_app(), ["eval", "--model", "m", "--set", "rollout.nn=3"])
    assert res.exit_code == 2 and "rollout.n" in res.output  # the config error names the closest key


def test_compare_errors_exit_2(tmp_path):
    res = CliRunner().invoke(_app(), ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 2 and "results.json" in res.output
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--labels", "only_one"])
    assert res.exit_code == 2 and "--labels" in res.output


REWARD = '''
def first_is_digit(prompts, completions, answers, metadata):
    return [float(c[:1].isdigit()) for c in completions]
'''


def _greedy_config(tmp_path):
    (tmp_path / "reward.py").write_text(REWARD)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"reward:\n  components:\n    - name: {tmp_path / 'reward.py'}:first_is_digit\n  num_workers: 1\n"
                   "prompt:\n  template: '{question}'\nmodel:\n  device: cpu\neval:\n  temperature: 0\n")
    return cfg


def test_eval_n_gt_1_at_config_temperature_0_is_refused(tmp_path):
    # eval.temperature: 0 (the training default, and examples/demo.yaml's) with --n 16: 16 identical samples
    cfg = _greedy_config(tmp_path)
    res = CliRunner().invoke(_app(), ["eval", "--config", str(cfg), "--model", "m", "--data", "x.jsonl", "--n", "16"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "temperature 0" in text and "pass@16 = pass@1" in text and "--temperature 1.0" in text
    assert "loading" not in text  # refused before the model loads


def test_eval_explicit_temperature_0_with_n_gt_1_warns_and_runs(tmp_path, tiny_model_dir, arithmetic_jsonl):
    cfg = _greedy_config(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), [
        "eval", "--config", str(cfg), "--model", str(tiny_model_dir), "--data", str(arithmetic_jsonl),
        "--limit", "2", "--n", "3", "--temperature", "0", "--max-new-tokens", "2", "--no-progress", "-o", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "WARNING" in text and "identical" in text
    import json

    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["n"] == 3 and summary["pass@3"] == summary["pass@1"]


def test_eval_names_a_damaged_model_folder_in_one_line(tmp_path, tiny_model_dir, arithmetic_jsonl):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    for f in model.glob("tokenizer*"):
        f.unlink()
    res = CliRunner().invoke(_app(), ["eval", "--model", str(model), "--data", str(arithmetic_jsonl), "-o",
                                      str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no tokenizer files" in lines[0] and "Traceback" not in res.output
