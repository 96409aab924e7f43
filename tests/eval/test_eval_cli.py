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
