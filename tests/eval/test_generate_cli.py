"""`rlvr generate` end to end on a tiny random model: rows, resume, selections and scores, RAST from the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.rollout.hf import HFRolloutEngine

REWARD = '''
def first_is_digit(prompts, completions, answers, metadata):
    return [float(c[:1].isdigit()) for c in completions]
'''


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(args):
    result = CliRunner().invoke(app, ["generate", *map(str, args)])
    return result


@pytest.fixture()
def common(tiny_model_dir, arithmetic_jsonl):
    return ["--model", tiny_model_dir, "--data", arithmetic_jsonl, "--verifier", "exact_match", "--temperature",
            "1.0", "--max-new-tokens", "6", "--template", "{question}", "--no-progress",
            "--set", "reward.num_workers=1"]


def test_rows_resume_selections_and_scores(tmp_path, common, monkeypatch):
    (tmp_path / "reward.py").write_text(REWARD)
    reward = f"{tmp_path / 'reward.py'}:first_is_digit"
    full = tmp_path / "full.jsonl"
    res = _run([*common, "--limit", "8", "-n", "4", "-o", full, "--select", "majority",
                "--select", f"best_of_n:{reward},weighted_majority:{reward}", "--score"])
    assert res.exit_code == 0, res.output
    rows = _rows(full)
    assert [r["index"] for r in rows] == list(range(8))
    for r in rows:
        assert len(r["completions"]) == len(r["token_counts"]) == len(r["finish_reasons"]) == 4
        assert set(r["finish_reasons"]) <= {"eos", "length"} and max(r["token_counts"]) <= 6
        assert set(r["selections"]) == {"first", "majority", f"best_of_n:{reward}", f"weighted_majority:{reward}"}
        best = r["selections"][f"best_of_n:{reward}"]
        digits = [float(c[:1].isdigit()) for c in r["completions"]]
        assert best["index"] == digits.index(max(digits)) and r["rewards"][reward] == digits
        assert r["correct"] and r["extracted"]
    scores = json.loads((tmp_path / "full.scores.json").read_text())
    assert scores["num_problems"] == 8 and list(scores["curves"]["majority"]) == ["1", "2", "4"]
    first = sum(sum(r["correct"]) / 4 for r in rows) / 8
    assert scores["curves"]["first"]["4"] == pytest.approx(first)
    assert (tmp_path / "full.scores.png").stat().st_size > 0
    assert "best_of_n" in res.output and "n=4" in res.output

    # killed after 3 problems (a torn line at the end), then run again: only the other 5 are sampled
    part = tmp_path / "part.jsonl"
    assert _run([*common, "--limit", "3", "-n", "4", "-o", part]).exit_code == 0
    part.write_text(part.read_text() + '{"key": "3#torn')
    sampled = []
    original = HFRolloutEngine.generate

    def counting(self, prompts, *args, **kwargs):
        sampled.extend(prompts)
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(HFRolloutEngine, "generate", counting)
    assert _run([*common, "--limit", "8", "-n", "4", "-o", part]).exit_code == 0
    assert len(sampled) == 5
    resumed = _rows(part)
    assert [r["completions"] for r in resumed] == [r["completions"] for r in rows]  # per-problem seeds
    assert "selections" not in resumed[0]  # nothing selected without --select / --score

    # other sampling settings: a new hash, everything sampled again and the old lines dropped
    sampled.clear()
    assert _run([*common, "--limit", "8", "-n", "4", "-o", part, "--seed", "1"]).exit_code == 0
    assert len(sampled) == 8 and len(_rows(part)) == 8


def test_rast_from_the_cli(tmp_path, tiny_model_dir, arithmetic_jsonl):
    """--model = base_small, alpha 1: the rows are rl_small's own samples; another vocabulary is refused."""
    from rlvr.demo.tiny import DEFAULT_ALPHABET, build_char_tokenizer, build_tiny_llama, save_tiny

    tok = build_char_tokenizer()
    rl = save_tiny(build_tiny_llama(tok, hidden=64, layers=2, heads=2, seed=7), tok, tmp_path / "rl")
    args = ["--data", arithmetic_jsonl, "--limit", "4", "-n", "3", "--temperature", "1.0", "--max-new-tokens", "8",
            "--template", "{question}", "--no-progress"]
    assert _run(["--model", rl, *args, "-o", tmp_path / "plain.jsonl"]).exit_code == 0
    res = _run(["--model", tiny_model_dir, *args, "-o", tmp_path / "rast.jsonl",
                "--rast", f"base_small={tiny_model_dir}", f"rl_small={rl}", "alpha=1.0"])
    assert res.exit_code == 0, res.output
    plain, rast = _rows(tmp_path / "plain.jsonl"), _rows(tmp_path / "rast.jsonl")
    assert [r["completions"] for r in rast] == [r["completions"] for r in plain]

    other_tok = build_char_tokenizer(DEFAULT_ALPHABET[::-1])
    other = save_tiny(build_tiny_llama(other_tok, hidden=64, layers=2, heads=2, seed=7), other_tok, tmp_path / "o")
    res = _run(["--model", tiny_model_dir, *args, "-o", tmp_path / "bad.jsonl",
                "--rast", f"base_small={tiny_model_dir} rl_small={other}"])
    assert res.exit_code == 2 and "must share a vocabulary" in res.output and "token id 4" in res.output


@pytest.mark.parametrize("extra,message", [
    (["--select", "majorty"], "did you mean 'majority'"),
    (["--select", "best_of_n:exact_matc"], "did you mean 'exact_match'"),
    (["--rast", "base_small=a"], "rl_small=PATH"),
    (["--rast", "base_small=a", "rl_smal=b"], "did you mean 'rl_small'"),
    (["--rast", "base_small=a", "rl_small=b", "alpha=x"], "alpha must be a number"),
    (["stray"], "unexpected arguments"),
])
def test_bad_arguments_exit_2(tmp_path, extra, message):
    res = _run(["--model", tmp_path, "--data", tmp_path / "x.jsonl", "-o", tmp_path / "o.jsonl", *extra])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


@pytest.mark.slow  # ~15 s (starts vLLM's CPU engine): .ci/run runs it with `pytest -m slow`
def test_vllm_engine_rows_equal_the_hf_engine_greedy(tmp_path, common):
    pytest.importorskip("vllm", reason="vLLM is not installed (bash scripts/install-vllm-cpu.sh)")
    args = [*common, "--limit", "4", "-n", "2", "--temperature", "0", "--set", "rollout.vllm.kv_cache_gb=0.05"]
    assert _run([*args, "-o", tmp_path / "hf.jsonl"]).exit_code == 0
    res = _run([*args, "--engine", "vllm", "-o", tmp_path / "vllm.jsonl"])
    assert res.exit_code == 0, res.output
    hf, vllm = _rows(tmp_path / "hf.jsonl"), _rows(tmp_path / "vllm.jsonl")
    assert [r["completions"] for r in vllm] == [r["completions"] for r in hf]
    assert [r["finish_reasons"] for r in vllm] == [r["finish_reasons"] for r in hf]
    assert hf[0]["settings_hash"] != vllm[0]["settings_hash"]  # the engine is part of what the file resumes on


def test_prompts_without_answers_generate_and_vote_but_cannot_be_scored(tmp_path, tiny_model_dir):
    """Plain prompts (no answer field): rows and a majority vote are written; --score says which rows it skipped."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"question": f"{a}+{a}="}) + "\n" for a in range(1, 5)))
    args = ["--model", tiny_model_dir, "--data", prompts, "--verifier", "exact_match", "--max-new-tokens", "4",
            "--template", "{question}", "--no-progress", "--set", "reward.num_workers=1", "-n", "3"]
    res = _run([*args, "-o", tmp_path / "out.jsonl", "--select", "majority"])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "out.jsonl")
    assert len(rows) == 4 and all(len(r["completions"]) == 3 and "majority" in r["selections"] for r in rows)
    assert all(r.get("answer") is None for r in rows)
    scored = _run([*args, "-o", tmp_path / "scored.jsonl", "--score"])
    assert scored.exit_code != 0 and "no answer" in scored.output
