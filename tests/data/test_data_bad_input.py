"""Issue 21 "bad input never crashes", data side: non-UTF-8 lines, unknown row verifiers, duplicate rows,
over-long prompts and resuming on changed data are each a counted skip, a warning or a one-line error."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from typer.testing import CliRunner

from rlvr.config import ConfigError, DataConfig, config_from_dict
from rlvr.data import DataError, PromptSampler, load_examples
from rlvr.data.checks import drop_long_prompts, model_context_length
from rlvr.types import Example


def _jsonl(tmp_path, lines: list[bytes]):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_non_utf8_line_is_a_counted_bad_row(tmp_path):
    good = json.dumps({"question": "1+1", "answer": "2"}).encode()
    path = _jsonl(tmp_path, [good, b'{"question": "caf\xe9", "answer": "1"}', good])
    report = load_examples(DataConfig(source=str(path)))
    assert len(report.examples) == 2 and report.bad_rows[0].line == 2
    assert "line 2: not UTF-8 text: byte 0xe9 at column 18" in report.summary()
    with pytest.raises(DataError, match=r"1 of 3 rows are unusable .*line 2: not UTF-8"):
        load_examples(DataConfig(source=str(path), on_bad_row="fail"))


def test_a_utf8_bom_is_still_accepted(tmp_path):
    path = _jsonl(tmp_path, [b"\xef\xbb\xbf" + json.dumps({"question": "q", "answer": "a"}).encode()])
    assert len(load_examples(DataConfig(source=str(path))).examples) == 1


def test_an_unknown_row_verifier_is_a_bad_row_with_did_you_mean(tmp_path):
    rows = [{"question": "q1", "answer": "1", "verifier": "mathh"}, {"question": "q2", "answer": "2"}]
    path = _jsonl(tmp_path, [json.dumps(r).encode() for r in rows])
    report = load_examples(DataConfig(source=str(path)))
    assert [ex.question for ex in report.examples] == ["q2"]
    assert "line 1: unknown verifier 'mathh'; did you mean 'math'?" in report.summary()


def test_mostly_duplicate_rows_are_counted_in_a_note(tmp_path):
    rows = [{"question": "1+1", "answer": "2"}] * 8 + [{"question": "2+2", "answer": "4"}, {"question": "1+1", "answer": "3"}]
    path = _jsonl(tmp_path, [json.dumps(r).encode() for r in rows])
    report = load_examples(DataConfig(source=str(path)))
    assert len(report.examples) == 10  # kept: the warning only says so
    assert "7 of 10 examples (70%) repeat an earlier row exactly (same question and answer; e.g. line 2 = line 1)" \
        in report.summary()
    few = _jsonl(tmp_path, [json.dumps({"question": f"q{i}", "answer": "1"}).encode() for i in range(20)])
    assert not load_examples(DataConfig(source=str(few))).notes


class _CharTokenizer:
    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [list(t) + ([0] if add_special_tokens else []) for t in texts]}


def _examples(lengths):
    return [Example(question="x" * n, answer="1", prompt="x" * n, index=i) for i, n in enumerate(lengths)]


def _model_dir(tmp_path, context):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": context}))
    return str(folder)


def test_prompts_longer_than_the_context_minus_new_tokens_are_skipped_with_a_warning(tmp_path, caplog):
    cfg = config_from_dict({"model": {"path": _model_dir(tmp_path, 64)}, "data": {"source": "d.jsonl"}},
                           ["rollout.max_new_tokens=32"])
    assert model_context_length(cfg.model.path) == 64
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        kept, held = drop_long_prompts(cfg, _CharTokenizer(), _examples([10, 31, 32, 50]), _examples([20, 40]))
    assert [len(ex.prompt) for ex in kept] == [10, 31]  # 31 chars + 1 special token = 32 tokens fit
    assert "skipped 2 of 4 training prompts longer than 32 tokens (the model's 64-token context minus 32 new " \
        "tokens; set data.max_prompt_tokens to change it; the longest has 51)" in caplog.text
    assert [len(ex.prompt) for ex in held] == [20]  # eval.max_new_tokens 0 = rollout.max_new_tokens
    assert "skipped 1 of 2 held-out prompts" in caplog.text

def test_explicit_max_prompt_tokens_and_nothing_left(tmp_path):
    cfg = config_from_dict({"model": {"path": "m"}, "data": {"source": "d.jsonl", "max_prompt_tokens": 5}})
    kept, _ = drop_long_prompts(cfg, _CharTokenizer(), _examples([3, 4, 9]), [])
    assert len(kept) == 2
    with pytest.raises(DataError, match="every one of the 1 training prompts is longer than 5 tokens"):
        drop_long_prompts(cfg, _CharTokenizer(), _examples([9]), [])
    cfg = config_from_dict({"model": {"path": _model_dir(tmp_path, 64)}, "data": {"source": "d.jsonl"}},
                           ["rollout.max_new_tokens=64"])
    with pytest.raises(ConfigError, match="rollout.max_new_tokens = 64 leaves no room for a prompt"):
        drop_long_prompts(cfg, _CharTokenizer(), _examples([3]), [])


def test_resuming_on_changed_data_is_a_data_error_that_says_what_to_do():
    state = PromptSampler(_examples([1, 2, 3]), 2, seed=0).state_dict()
    with pytest.raises(DataError, match=r"saved for 3 examples but the data now has 4.*restore the data file"):
        PromptSampler(_examples([1, 2, 3, 4]), 2, seed=0).load_state_dict(state)


def test_cli_prints_the_resume_error_on_one_line(tmp_path, monkeypatch):
    from rlvr import cli

    def fake_train(cfg):
        PromptSampler(_examples([1, 2]), 2, seed=0).load_state_dict(PromptSampler(_examples([1]), 1, 0).state_dict())

    monkeypatch.setattr("rlvr.trainer.train", fake_train)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": "m"}, "data": {"source": "d.jsonl"}}))
    result = CliRunner().invoke(cli.app, ["train", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sampler state was saved for 1 examples but the data now "
                                                   "has 2") and "another output_dir" in lines[0]
