"""`rlvr data filter | select | stats` end to end on the tiny model and small files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.config import config_from_dict, to_yaml
from rlvr.rollout.hf import HFRolloutEngine

REWARD = '''
def first_is_digit(prompts, completions, answers, metadata):
    return [float(c[:1].isdigit()) for c in completions]
'''


def _run(*args):
    return CliRunner().invoke(app, ["data", *map(str, args)])


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_filter_keeps_the_pass_rate_range_writes_a_histogram_and_resumes(tmp_path, tiny_model_dir,
                                                                        arithmetic_jsonl, monkeypatch):
    (tmp_path / "reward.py").write_text(REWARD)
    args = ["filter", "--model", tiny_model_dir, "--data", arithmetic_jsonl, "--n", "6", "--limit", "16",
            "--keep", "0<pass<1", "--max-new-tokens", "3", "--template", "{question}", "--temperature", "1.5",
            "--no-progress", "--set", "reward.num_workers=1",
            "--set", f"reward.components=[{{name: '{tmp_path / 'reward.py'}:first_is_digit'}}]"]
    out = tmp_path / "mid.jsonl"
    res = _run(*args, "-o", out)
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    records = {r["index"]: r for r in _rows(tmp_path / "mid.jsonl.eval" / "problems.jsonl")}
    assert len(records) == 16
    expected = [i for i, r in sorted(records.items()) if 0 < r["correct"] < 6]
    assert expected and len(expected) < 16  # the range keeps some, not all (random model, 6 samples)
    by_question = {f"{a}+{b}=": str(a + b) for a in range(1, 9) for b in range(1, 5)}
    assert [r["question"] for r in rows] == [records[i]["question"] for i in expected]
    for r in rows:
        assert r["answer"] == by_question[r["question"]] and r["pass_n"] == 6 and 0 < r["pass_rate"] < 1
    hist = (tmp_path / "mid.hist.txt").read_text()
    assert "pass rate over n=6 samples (16 problems); kept: 0<pass<1" in hist
    assert (tmp_path / "mid.hist.png").stat().st_size > 1000
    assert f"kept {len(rows)} of 16" in " ".join(res.output.split())

    def no_sampling(self, *a, **k):
        raise AssertionError("a finished filter must not sample again")

    monkeypatch.setattr(HFRolloutEngine, "generate", no_sampling)
    again = _run(*args, "-o", tmp_path / "mid2.jsonl")
    assert again.exit_code != 0  # another output = another work dir: it samples (and here fails)
    monkeypatch.undo()
    monkeypatch.setattr(HFRolloutEngine, "generate", no_sampling)
    res = _run(*args, "-o", out)
    assert res.exit_code == 0, res.output
    assert _rows(out) == rows
    train = config_from_dict({"data": {"source": str(out)}})  # the output trains as it is
    from rlvr.data import load_examples

    assert len(load_examples(train.data).examples) == len(rows)


def test_filter_rejects_a_bad_range_in_one_line(tiny_model_dir, arithmetic_jsonl, tmp_path):
    res = _run("filter", "--model", tiny_model_dir, "--data", arithmetic_jsonl, "--keep", "pass=0.5",
               "-o", tmp_path / "x.jsonl")
    assert res.exit_code == 2 and "expected a range" in res.output and not (tmp_path / "x.jsonl").exists()


def test_select_ranks_by_accuracy_variance_and_writes_the_rows(tmp_path, arithmetic_jsonl):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(config_from_dict({"data": {"source": str(arithmetic_jsonl)}})))
    flags = {3: [[1, 1], [1, 1], [1, 1]], 5: [[0, 0], [1, 1], [0, 0]], 7: [[0, 1], [1, 1], [1, 1]]}
    lines = [{"step": 1 + 10 * visit, "index": index, "correct": bool(f), "reward": float(f)}
             for index, visits in flags.items() for visit, fs in enumerate(visits) for f in fs]
    (run / "completions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = _run("select", run, "--top", "2", "-o", tmp_path / "pick.jsonl")
    assert res.exit_code == 0, res.output
    picked = _rows(tmp_path / "pick.jsonl")
    assert [p["question"] for p in picked] == ["2+2=", "2+4="]  # index 5 (var 2/9), then 7 (var 1/18)
    assert picked[0]["accuracy_history"] == [0.0, 1.0, 0.0]
    assert picked[0]["accuracy_variance"] == pytest.approx(2 / 9) and picked[0]["answer"] == "4"
    missing = _run("select", tmp_path, "-o", tmp_path / "p.jsonl")
    assert missing.exit_code == 2 and "completions.jsonl not found" in missing.output


def test_stats_reports_counts_types_lengths_and_rejected_rows(tmp_path, tiny_model_dir):
    src = tmp_path / "d.jsonl"
    src.write_text('{"question": "1+1", "answer": "2"}\n{"question": "1+1", "answer": "2"}\n'
                   '{"question": "x", "answer": ""}\n{"question": "2^3", "answer": 8}\n')
    res = _run("stats", src, "--tokenizer", tiny_model_dir, "--json")
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert (stats["usable"], stats["rejected"], stats["duplicate_rows"]) == (3, 1, 1)
    assert stats["rejected_by_reason"] == {"no answer": 1}
    assert stats["answer_types"] == {"numeric string": 2, "int": 1}
    assert stats["prompt_tokens"]["min"] >= 3
    table = _run("stats", src)
    assert table.exit_code == 0 and "rejected_by_reason" in table.output
