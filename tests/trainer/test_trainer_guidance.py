"""Teacher guidance and label-free rewards in the loop: teacher completions in their slots with an off-policy mask,
bad teacher fields, ReLIFT's buffer and supervised step (exact resume), TTRL without answers, and config errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rlvr.config import ConfigError, config_from_dict
from rlvr.demo.tiny import build_char_tokenizer
from rlvr.trainer import train
from rlvr.trainer.batch import build_batch
from rlvr.trainer.guidance import Guide
from rlvr.trainer.state import load_trainer_state
from rlvr.types import Completion, Example, RewardResult

from .test_trainer_loop import make_cfg, weights

EXACT = [{"name": "exact_match", "params": {"extract": "none"}}]


@pytest.fixture
def teacher_jsonl(tmp_path) -> Path:
    """'a+b=' problems whose teacher completion is the answer; a quarter with an empty teacher field."""
    rows = [{"question": f"{a}+{b}=", "answer": str(a + b), "teacher": str(a + b) if (a + b) % 4 else ""}
            for a in range(1, 9) for b in range(1, 5)]
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class FakeScorer:
    """Scores a completion 1 when it equals the answer (what exact_match with extract none does)."""

    def score(self, examples, texts, extra=None):
        return [RewardResult(float(t == ex.answer) * 0.5, reason="half") for ex, t in zip(examples, texts)]


def guide_for(tmp_path, teacher_jsonl, **guidance):
    cfg = config_from_dict(make_cfg(tmp_path, tmp_path, teacher_jsonl, data={"source": str(teacher_jsonl),
                                                                              "teacher_field": "teacher"},
                                    algorithm={"guidance": {"trigger": "always", **guidance}},
                                    rollout={"prompts_per_step": 2, "n": 4, "max_new_tokens": 3}))
    return Guide(cfg, build_char_tokenizer())


def test_teachers_take_the_last_slots_are_masked_and_forced(tmp_path, teacher_jsonl, caplog):
    guide = guide_for(tmp_path, teacher_jsonl, n_inject=2, force_teacher_reward=1.0)
    tok = guide.tokenizer
    examples = [Example("1+2=", "3", teachers=["3", "12345"]), Example("2+2=", "4", teachers=[])]
    own = lambda: Completion("x", [5, 6], [-0.1, -0.2], "eos", prompt_ids=[1, 7, 8])  # noqa: E731
    groups = [[own() for _ in range(4)] for _ in examples]
    results = [RewardResult(0.0) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        new_groups, new_results, m = guide.apply(examples, groups, results, np.zeros((2, 4)), FakeScorer(), 1)
    assert "truncated" in caplog.text and "have none" in caplog.text  # 12345 + EOS > 3 tokens; the empty field
    assert [c.off_policy for c in new_groups[0]] == [False, False, True, True]
    assert not any(c.off_policy for c in new_groups[1])
    t = new_groups[0][2]
    assert t.token_ids == tok("3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert t.prompt_ids == [1, 7, 8] and t.logprobs == [] and t.finish_reason == "eos"
    assert new_groups[0][3].finish_reason == "length" and len(new_groups[0][3].token_ids) == 3
    assert new_results[2].score == 1.0 and "forced" in new_results[2].reason  # scored 0.5 < 1.0
    assert new_results[3].score == 1.0 and groups[0][2].off_policy is False  # the input lists are left alone
    assert m["guidance/injected"] == 2 and m["guidance/no_teacher"] == 1 and m["guidance/teacher_reward"] == 0.25
    batch = build_batch(examples, new_groups, new_results, 0)
    assert batch.off_policy_mask[:, :1].flatten().tolist() == [False, False, True, True] + [False] * 4
    assert batch.off_policy_mask.sum() == 2 + 3 and batch.rollout_logp is None


def test_all_fail_leaves_solved_groups_alone(tmp_path, teacher_jsonl):
    guide = guide_for(tmp_path, teacher_jsonl, trigger="all_fail")
    examples = [Example("1+2=", "3", teachers=["3"]), Example("2+1=", "3", teachers=["3"])]
    groups = [[Completion("x", [5], [-0.1], "eos", prompt_ids=[1]) for _ in range(4)] for _ in examples]
    correct = np.array([[0, 0, 0, 0], [0, 1, 0, 0]])
    new_groups, _, m = guide.apply(examples, groups, [RewardResult(0.0)] * 8, correct, FakeScorer(), 1)
    assert [c.off_policy for c in new_groups[0]] == [False, False, False, True]
    assert not any(c.off_policy for c in new_groups[1]) and m["guidance/triggered_groups"] == 1


@pytest.mark.slow  # ~8 s idle, ~18 s on the busy 2-core machine
def test_luffy_trains_with_teachers_in_the_groups(tmp_path, tiny_model_dir, teacher_jsonl):
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, teacher_jsonl, data={"teacher_field": "teacher"},
                                    algorithm="luffy", reward={"components": EXACT, "num_workers": 1},
                                    trainer={"steps": 2, "micro_batch_size": 16}, checkpoint={"every": 0}))
    train(cfg)
    run = Path(cfg.output_dir)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for x in lines:
        assert x["guidance/injected"] > 0 and x["guidance/off_loss"] != 0 and 0 < x["guidance/teacher_prob"] < 1
        assert x["loss"] == pytest.approx(x["guidance/on_loss"] + x["guidance/off_loss"] - 0.001 * x["entropy"],
                                          abs=1e-5)
    rows = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    teacher = [r for r in rows if r.get("teacher")]
    assert teacher and all(r["reward"] == 1.0 and r["completion"] == r["answer"] for r in teacher)


def relift_cfg(tmp_path, model_dir, data, steps):
    return config_from_dict(make_cfg(tmp_path, model_dir, data, data={"teacher_field": "teacher"},
                                     algorithm={"name": "relift", "guidance": {"sft_buffer_size": 3, "sft_lr": 1e-2}},
                                     reward={"components": EXACT, "num_workers": 1},
                                     trainer={"steps": steps, "micro_batch_size": 16}))


@pytest.mark.slow  # four short runs: ~25 s idle, ~55 s on the busy 2-core machine
def test_relift_supervised_steps_change_the_policy_and_resume_exactly(tmp_path, tiny_model_dir, teacher_jsonl):
    straight = relift_cfg(tmp_path / "a", tiny_model_dir, teacher_jsonl, 3)
    train(straight)
    lines = [json.loads(x) for x in (Path(straight.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert sum(x["guidance/sft_steps"] for x in lines) >= 2 and all("guidance/sft_buffer" in x for x in lines)
    stepped = next(x for x in lines if x["guidance/sft_steps"])
    assert stepped["guidance/sft_nll"] > 0 and stepped["guidance/sft_grad_norm"] > 0
    saved = load_trainer_state(Path(straight.output_dir) / "checkpoints" / "step_000002")["guidance"]
    assert saved["optimizer"]["state"]  # the supervised AdamW's moments travel with the checkpoint
    first = relift_cfg(tmp_path / "b", tiny_model_dir, teacher_jsonl, 2)
    train(first)
    resumed = relift_cfg(tmp_path / "b", tiny_model_dir, teacher_jsonl, 3)
    train(resumed)
    a = weights(Path(straight.output_dir) / "checkpoints" / "step_000003")
    b = weights(Path(resumed.output_dir) / "checkpoints" / "step_000003")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the supervised steps are what moved it: the same run with an unreachable buffer ends elsewhere
    never = relift_cfg(tmp_path / "c", tiny_model_dir, teacher_jsonl, 3)
    never.algorithm.guidance.sft_buffer_size = 10_000
    train(never)
    c = weights(Path(never.output_dir) / "checkpoints" / "step_000003")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_ttrl_trains_on_rows_without_answers(tmp_path, tiny_model_dir):
    data = tmp_path / "noanswer.jsonl"
    data.write_text("".join(json.dumps({"question": f"{a}+{a}="}) + "\n" for a in range(1, 9)))
    votes = [{"name": "majority_vote", "params": {"extract": "last_number", "n_train": 2}}]
    cfg = config_from_dict(make_cfg(tmp_path, tiny_model_dir, data, reward={"components": votes, "num_workers": 1},
                                    trainer={"steps": 2}, checkpoint={"every": 0}))
    train(cfg)
    run = Path(cfg.output_dir)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("vote/majority_ratio" in x and "vote/label_accuracy" not in x for x in lines)
    rows = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 4 * 2  # steps x P x n_train (of n = 4 votes)
    with pytest.raises(ConfigError, match="n_train"):
        config_from_dict(make_cfg(tmp_path, tiny_model_dir, data, reward={"components": [
            {"name": "majority_vote", "params": {"n_train": 9}}]}))


@pytest.mark.parametrize("change,match", [
    ({"algorithm": "luffy"}, "data.teacher_field"),
    ({"algorithm": {"name": "ampo", "guidance": {"n_inject": 4}}, "data": {"teacher_field": "t"}}, "n_inject"),
    ({"algorithm": {"name": "luffy", "guidance": {"select": "best"}}, "data": {"teacher_field": "t"}}, "select"),
    ({"algorithm": {"name": "luffy", "guidance": {"gamma": 0}}, "data": {"teacher_field": "t"}}, "gamma"),
    ({"algorithm": {"name": "luffy", "rollout_is": "token_truncate"}, "data": {"teacher_field": "t"}}, "rollout_is"),
])
def test_bad_guidance_settings_are_config_errors(tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(make_cfg(tmp_path, tmp_path, tmp_path / "x.jsonl", **change))


def test_presets_carry_the_papers_settings_and_merge_key_by_key(tmp_path):
    cfg = config_from_dict(make_cfg(tmp_path, tmp_path, tmp_path / "x.jsonl", data={"teacher_field": "t"},
                                    algorithm={"name": "ampo", "guidance": {"n_inject": 1}}))
    g = cfg.algorithm.guidance
    assert (g.trigger, g.n_inject, g.select, g.force_teacher_reward, cfg.algorithm.dual_clip) == \
        ("all_fail", 1, "comprehension", 1.0, 10.0)
    plus = config_from_dict(make_cfg(tmp_path, tmp_path, tmp_path / "x.jsonl", data={"teacher_field": "t"},
                                     algorithm="rl_plus")).algorithm
    assert (plus.guidance.off_weight, plus.guidance.adv_scale, plus.guidance.on_clip, plus.norm_by_std) == \
        ("rlplus", "explore", False, False)
