"""RLPR in the training loop: the reward computed on the live policy in the trainer process, the std-EMA prompt
filter composed with dynamic sampling, its running std in the checkpoint (exact resume), and `rlvr list`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from rlvr.config import config_from_dict
from rlvr.trainer import train
from rlvr.trainer.state import load_trainer_state

from .test_trainer_loop import REWARD, make_cfg, weights

# empty tags: every completion's "span" is its end, so the untrained model's completions all get a probability
# reward (the reference appended after the completion), computed on the live policy
COMPONENTS = [{"name": REWARD}, {"name": "rlpr", "params": {"format_weight": 0.1, "open_tag": "", "close_tag": ""}}]


def rlpr_cfg(tmp_path, model_dir, data, steps, **extra):
    return config_from_dict(make_cfg(tmp_path, model_dir, data, reward={"components": COMPONENTS, "num_workers": 1},
                                     algorithm={"name": "rlpr", "dynamic_sampling": True, "max_sample_batches": 2},
                                     trainer={"steps": steps, "micro_batch_size": 16},
                                     prompt={"template": "{question}<think>"}, **extra))


def test_rlpr_trains_with_the_std_filter_and_resumes_exactly(tmp_path, tiny_model_dir, arithmetic_jsonl):
    straight = rlpr_cfg(tmp_path / "a", tiny_model_dir, arithmetic_jsonl, 3)
    train(straight)
    lines = [json.loads(x) for x in (Path(straight.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert all("reward/rlpr/mean" in x and "sampling/std_ema" in x and "sampling/std_filtered" in x for x in lines)
    assert all(x["sampling/std_ema"] > 0 for x in lines)
    rows = [json.loads(x) for x in (Path(straight.output_dir) / "completions.jsonl").read_text().splitlines()]
    assert all(r["details"]["reasons"]["rlpr"].startswith("rlpr p=") for r in rows)
    assert len({r["components"]["rlpr"] for r in rows}) > 10 and min(r["components"]["rlpr"] for r in rows) >= 0.1
    saved = load_trainer_state(Path(straight.output_dir) / "checkpoints" / "step_000003")
    assert saved["counters"]["std_ema"] == lines[-1]["sampling/std_ema"]

    first = rlpr_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, 2)
    train(first)
    resumed = rlpr_cfg(tmp_path / "b", tiny_model_dir, arithmetic_jsonl, 3)
    train(resumed)
    a = weights(Path(straight.output_dir) / "checkpoints" / "step_000003")
    b = weights(Path(resumed.output_dir) / "checkpoints" / "step_000003")
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = [json.loads(x) for x in (Path(resumed.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert again[-1]["sampling/std_ema"] == lines[-1]["sampling/std_ema"]
    assert again[-1]["reward/rlpr/mean"] == lines[-1]["reward/rlpr/mean"]


def test_rlvr_list_shows_the_batch_rewards_and_presets():
    from rlvr.cli import app

    out = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"}).output
    for name in ("rlpr", "pairwise_judge", "rubric_judge", "brpo", "writing_zero", "batch rewards"):
        assert name in out, name
