"""`rlvr train` with rollout.multi_turn: a user environment answers the tiny model's turns; metrics, rewards
(the environment's added to the verifier's) and completions.jsonl turn by turn come out of the real loop."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from rlvr.cli import app

ENV = '''
class DigitEnv:
    """Reward 0.5 for each turn holding a digit; two turns, then done."""
    def reset(self, example):
        self.turns = 0
        return "[" + example.question + "]"
    def step(self, action):
        self.turns += 1
        return "|ok|", 0.5 * any(ch.isdigit() for ch in action), self.turns >= 2, {"turn": self.turns}
'''


def test_train_from_the_cli_with_an_environment(tmp_path, tiny_model_dir, arithmetic_jsonl):
    env = tmp_path / "digit_env.py"
    env.write_text(ENV)
    cfg = {
        "output_dir": str(tmp_path / "run"), "model": {"path": str(tiny_model_dir)},
        "data": {"source": str(arithmetic_jsonl)}, "prompt": {"template": "{question}"},
        "rollout": {"prompts_per_step": 2, "n": 4, "max_new_tokens": 24, "temperature": 1.0,
                    "multi_turn": {"env": f"{env}:DigitEnv", "max_turns": 3, "stop": ["+"]}},
        "reward": {"components": [{"name": "exact_match", "weight": 0.0}], "num_workers": 1},
        "trainer": {"steps": 2, "lr": 1e-3, "micro_batch_size": 8, "seed": 1},
        "checkpoint": {"every": 0}, "logging": {"progress": False},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["train", str(path), "rollout.multi_turn.discount=0.5"])
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    for m in metrics:
        assert 1.0 <= m["multi_turn/turns_mean"] <= 3.0 and m["multi_turn/observation_tokens_mean"] > 0
        assert m["reward/mean"] == m["multi_turn/env_reward_mean"]  # the verifier's weight is 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    for row in rows:
        turns = row["turns"]
        assert turns[0]["role"] == "env" and turns[0]["text"].startswith("[")  # reset's observation
        rewards = [t["reward"] for t in turns if t["role"] == "env" and "reward" in t]
        # per-turn rewards discounted: r_0 + 0.5 r_1 (+ 0.25 r_2), the return added to the score
        assert abs(row["reward"] - sum(r * 0.5 ** k for k, r in enumerate(rewards))) < 1e-6
        assert row["finish_reason"] in ("env_done", "length", "max_turns")
        whole = "".join(t["text"] for t in turns)  # the turns in order are the trajectory (special tokens shown)
        for special in ("<pad>", "<bos>", "<unk>"):
            whole = whole.replace(special, "")
        assert row["completion"] == whole
