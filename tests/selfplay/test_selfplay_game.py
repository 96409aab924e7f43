"""The self-play step with a scripted engine (so every reward is known by hand), and `rlvr selfplay` through the
real training loop: metrics per type and role, buffers in the checkpoint, exact resume, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rlvr.config import ConfigError, config_from_dict
from rlvr.selfplay.game import SelfPlay
from rlvr.trainer.state import load_trainer_state
from rlvr.types import Completion

from ..trainer.test_trainer_loop import weights

N = 4


class ScriptedEngine:
    """Completions decided by the prompt and the completion's index j (the seed varies the proposals):
    proposers: j < N-1 a valid "a+d" program (deduction / abduction) or inputs (induction), j = N-1 a broken format;
    solvers: the right answer when j is even, a wrong one when odd (so every solve rate is 0.5)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer

    def _complete(self, prompt: str, j: int, seed: int) -> str:
        head = prompt.split("\n", 1)[0]
        kind = head.split()[1].rstrip(":")
        if head.startswith("propose"):
            if j == N - 1:
                return "I would rather not"
            if kind == "induction":
                return "<think></think><answer>" + "".join(f"<input>{seed % 50 + 5 * j + k}</input>" for k in range(4)) + \
                    "<message>adds</message></answer>"
            return f"<think></think><answer><program>def f(a): return a+{seed % 97}+{j}</program>" \
                   f"<input>{10 + j}</input></answer>"
        right = j % 2 == 0
        if kind == "induction":
            pairs = re.findall(r"<input>(.*?)</input><output>(.*?)</output>", prompt)
            i, o = pairs[0]
            try:
                net = int(o) - int(i)
            except ValueError:
                net = 0
            return f"<think></think><answer>def f(a): return a+{net if right else net + 1}</answer>"
        program = re.search(r"<program>(.*?)</program>", prompt, re.S).group(1)
        d = sum(int(x) for x in re.findall(r"\+(\d+)", program))
        if kind == "deduction":
            x = re.search(r"<input>(.*?)</input>", prompt).group(1)
            value = eval(f"{x}+{d}") if "a+" in program else x  # noqa: S307 - our own scripted programs
            return f"<think></think><answer>{value if right else repr('nope')}</answer>"
        out = re.search(r"<output>(.*?)</output>", prompt).group(1)
        guess = f"{int(out) - d}" if "a+" in program else out
        return f"<think></think><answer>{guess if right else '-12345'}</answer>"

    def generate(self, prompts, n, *, seeds=None, **_):
        groups = []
        for p, prompt in enumerate(prompts):
            ids = self.tok(prompt, add_special_tokens=False).input_ids
            group = []
            for j in range(n):
                text = self._complete(prompt, j, (seeds or [0] * len(prompts))[p])
                tokens = self.tok(text, add_special_tokens=False).input_ids + [self.tok.eos_token_id]
                group.append(Completion(text, tokens, [0.0] * len(tokens), "eos", prompt_ids=ids))
            groups.append(group)
        return groups

    def sync_weights(self, policy):
        return {}

    def sleep(self):
        pass

    def close(self):
        pass


def selfplay_tree(tmp_path, model_dir, steps=2, **selfplay):
    return {
        "output_dir": str(tmp_path / "run"), "model": {"path": str(model_dir)},
        "prompt": {"template": "{question}"}, "algorithm": "azr",
        "rollout": {"n": N, "max_new_tokens": 16},
        "selfplay": {"enabled": True, "style": "compact", "n_refs": 2, "n_inputs": 4, "propose_per_type": 2,
                     "solve_per_type": 2, "n_solve": N, **selfplay},
        "trainer": {"steps": steps, "lr": 1e-3, "micro_batch_size": 16, "seed": 3, "reuse_rollout_logprobs": "never"},
        "checkpoint": {"every": 1, "keep": 10}, "logging": {"progress": False},
    }


def test_one_step_rewards_by_hand(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    cfg = config_from_dict(selfplay_tree(tmp_path, tiny_model_dir))
    game = SelfPlay(cfg, lambda text: text)
    examples, groups, results, metrics = game.play(ScriptedEngine(AutoTokenizer.from_pretrained(tiny_model_dir)), 1)
    assert [ex.origin for ex in examples] == ["deduction/propose"] * 2 + ["abduction/propose"] * 2 + \
        ["induction/propose"] * 2 + ["deduction/solve"] * 2 + ["abduction/solve"] * 2 + ["induction/solve"] * 2
    assert all(len(g) == N for g in groups) and len(results) == len(examples) * N
    by_role = lambda key: [results[i * N + j].score for i, ex in enumerate(examples)  # noqa: E731
                           if ex.origin == key for j in range(N)]
    # proposers: three valid proposals, each solved 2 times in 4 -> r = 1 - 0.5 = 0.5; the broken one -> -1
    for t in ("deduction", "abduction", "induction"):
        assert by_role(f"{t}/propose") == [0.5, 0.5, 0.5, -1.0] * 2, t
        # solvers: right (1) / wrong but formatted (-0.5), alternating
        assert by_role(f"{t}/solve") == [1.0, -0.5, 1.0, -0.5] * 2, t
        assert metrics[f"selfplay/{t}/propose/validity"] == 0.75
        assert metrics[f"selfplay/{t}/solve/solve_rate"] == 0.5
        assert metrics[f"selfplay/{t}/propose/solve_rate"] == 0.5
    assert metrics["selfplay/rejected/format"] == 6.0
    # the valid proposals joined the buffers (induction tasks got their outputs from execution)
    assert metrics["selfplay/duplicates"] == 0.0
    assert metrics["selfplay/deduction/buffer_size"] == 1 + 6 and metrics["selfplay/induction/buffer_size"] == 6
    ind = game.buffers.tasks["induction"]
    assert ind and all(len(t.inputs) == 4 and len(t.outputs) == 4 for t in ind)
    # the solver saw this step's fresh tasks first
    assert examples[6].metadata["task"]["step"] == 1
    assert results[0].details["task"]["outputs"]  # executed, not proposed


def test_selfplay_cli_trains_and_resumes_exactly(tmp_path, tiny_model_dir, monkeypatch):
    import rlvr.trainer.loop as loop
    from rlvr.cli import app

    monkeypatch.setattr(loop, "make_engine", lambda cfg, model, tok, *a, **k: ScriptedEngine(tok))
    straight = config_from_dict(selfplay_tree(tmp_path / "a", tiny_model_dir, steps=3))
    loop.train(straight)
    lines = [json.loads(x) for x in (Path(straight.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(x["selfplay/deduction/solve/solve_rate"] == 0.5 for x in lines)
    assert all(x["grad_norm"] > 0 for x in lines)  # the update really moves the policy
    rows = [json.loads(x) for x in (Path(straight.output_dir) / "completions.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} == {f"{t}/{r}" for t in ("deduction", "abduction", "induction")
                                           for r in ("propose", "solve")}
    saved = load_trainer_state(Path(straight.output_dir) / "checkpoints" / "step_000003")
    assert saved["sampler"]["kind"] == "selfplay" and len(saved["sampler"]["buffers"]["tasks"]["deduction"]) > 1

    tree = selfplay_tree(tmp_path / "b", tiny_model_dir, steps=2)
    tree["selfplay"].pop("enabled")  # the command sets it
    path = tmp_path / "sp.yaml"
    path.write_text(json.dumps(tree))
    run = CliRunner().invoke(app, ["selfplay", str(path)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(app, ["selfplay", str(path), "trainer.steps=3"])
    assert run.exit_code == 0, run.output
    a = weights(Path(straight.output_dir) / "checkpoints" / "step_000003")
    b = weights(tmp_path / "b" / "run" / "checkpoints" / "step_000003")
    assert all(torch.equal(a[k], b[k]) for k in a)
    resumed = load_trainer_state(tmp_path / "b" / "run" / "checkpoints" / "step_000003")
    assert resumed["sampler"] == saved["sampler"]  # the same buffers, task by task


def test_selfplay_config_errors(tmp_path, tiny_model_dir):
    for change, words in [({"selfplay": {"enabled": True, "task_types": ["deduction", "planning"]}}, "planning"),
                          ({"selfplay": {"enabled": True, "n_inputs": 1}}, "n_inputs"),
                          ({"data": {"source": "x.jsonl"}}, "data.source must be empty"),
                          ({"async": {"max_staleness": 1}}, "async")]:
        tree = selfplay_tree(tmp_path, tiny_model_dir)
        for key, value in change.items():
            tree[key] = {**tree.get(key, {}), **value}
        with pytest.raises(ConfigError, match=words):
            config_from_dict(tree)


def test_seed_tasks_join_both_buffers_with_executed_outputs(tmp_path, tiny_model_dir):
    from rlvr.data import DataError

    cfg = config_from_dict(selfplay_tree(tmp_path, tiny_model_dir))
    game = SelfPlay(cfg, lambda text: text)
    good = tmp_path / "seed.jsonl"
    good.write_text('{"program": "def f(a): return a*3", "inputs": ["4"]}\n\n{"program": "def f(a): return a", '
                    '"input": "[1]"}\n')
    assert game.add_seed_tasks(str(good)) == 4
    assert [(t.program, t.outputs) for t in game.buffers.tasks["abduction"]][1:] == \
        [("def f(a): return a*3", ["12"]), ("def f(a): return a", ["[1]"])]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"program": "import os\\ndef f(a): return a", "inputs": ["1"]}\n')
    with pytest.raises(DataError, match="line 1: invalid program \\(forbidden"):
        game.add_seed_tasks(str(bad))
    bad.write_text('{"inputs": ["1"]}\n')
    with pytest.raises(DataError, match="line 1: expected"):
        game.add_seed_tasks(str(bad))
