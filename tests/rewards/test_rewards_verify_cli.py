"""`rlvr verify`: the verify_command typer function on a small app, and the rlvr.rewards.verify helpers."""

import importlib.util
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rlvr.rewards.verify import parse_params, read_rows, summarize, verify_rows
from rlvr.types import RewardResult

try:
    from rlvr.cli.verify import verify_command
except ImportError:  # rlvr/cli/__init__.py imports every command; load this one alone if another is missing
    _spec = importlib.util.spec_from_file_location(
        "rlvr_cli_verify_standalone", Path(__file__).parents[2] / "rlvr" / "cli" / "verify.py")
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    verify_command = _mod.verify_command

ROWS = [
    {"completion": "<answer>4</answer>", "answer": "4"},
    {"completion": r"so \boxed{\frac{1}{2}}", "answer": "0.5"},
    {"completion": "no idea", "answer": "3"},
    {"completion": "<answer>B</answer>", "answer": "B", "verifier": "mcqa", "options": ["x", "y"]},
]


@pytest.fixture()
def app():
    a = typer.Typer()
    a.command()(verify_command)
    return a


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_json_output_auto_reward(app, jsonl):
    r = CliRunner().invoke(app, [str(jsonl), "--json", "--workers", "1"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.strip().splitlines()]
    # rows 0, 1 right (math), row 2 has no answer, row 3 scored by its own verifier mcqa
    assert [line["score"] for line in lines] == [1.0, 1.0, 0.0, 1.0]
    assert lines[1]["extracted"] == r"\frac{1}{2}" and set(lines[0]) == {"score", "extracted", "reason"}


def test_table_output_with_params_and_limit(app, jsonl):
    r = CliRunner().invoke(app, [str(jsonl), "--reward", "math", "--param", "extract=answer_tag", "--limit", "2",
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    # with extract=answer_tag row 1 (boxed only) has no answer: mean 0.5, 50% correct
    assert "count 2" in r.stdout and "mean score 0.5000" in r.stdout and "50.0%" in r.stdout
    assert "no <answer> tag" in r.stdout


def test_errors_exit_2(app, jsonl, tmp_path):
    r = CliRunner().invoke(app, [str(jsonl), "--reward", "matth"])
    assert r.exit_code == 2 and "did you mean 'math'" in r.output
    r = CliRunner().invoke(app, [str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "no such file" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"completion": "x"}\n')
    r = CliRunner().invoke(app, [str(bad)])
    assert r.exit_code == 2 and "missing field(s) answer" in r.output


def test_helpers(jsonl):
    assert parse_params(["extract=boxed", "max_len=100", "x="]) == {"extract": "boxed", "max_len": 100, "x": ""}
    with pytest.raises(ValueError):
        parse_params(["novalue"])
    assert len(read_rows(jsonl, limit=3)) == 3
    s = summarize([RewardResult(1.0, "correct"), RewardResult(0.0, "wrong"), RewardResult(0.0, "wrong")])
    assert s == {"count": 3, "mean_score": pytest.approx(1 / 3), "frac_correct": pytest.approx(1 / 3),
                 "reasons": {"wrong": 2, "correct": 1}}
    out = verify_rows(read_rows(jsonl), "exact_match", {"extract": "answer_tag"}, num_workers=1)
    assert [r.score for r in out] == [1.0, 0.0, 0.0, 1.0]
