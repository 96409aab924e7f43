"""`rlvr train` on a tiny Qwen2.5-VL with image rows: metrics, completions.jsonl naming the images, checkpoints that
load as the same VLM (processor files included) and resume exactly; freeze_vision leaves the tower untouched."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from rlvr.cli import app


SPREAD = '''
def vowels(prompts, completions, answers, metadata):
    return [sum(ch in "aeiou" for ch in c) / 6 for c in completions]
'''


def _config(tmp_path, tiny_vlm, **model):
    (tmp_path / "spread.py").write_text(SPREAD)  # a random policy scores 0 on the class: give rewards a spread
    data = tiny_vlm["data"] / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tiny_vlm["rows"]))
    cfg = {
        "output_dir": str(tmp_path / "run"), "model": {"path": tiny_vlm["model"], "dtype": "float32",
                                                       "device": "cpu", **model},
        "data": {"source": str(data), "eval_source": str(data), "image_field": "image", "verifier": "classification"},
        "prompt": {"template": "{question}", "chat_template": True},
        "rollout": {"prompts_per_step": 2, "n": 4, "max_new_tokens": 6, "temperature": 1.0},
        "reward": {"components": [{"name": "classification"}, {"name": "think_answer_consistency", "weight": 0.1},
                               {"name": f"{tmp_path / 'spread.py'}:vowels"}], "num_workers": 1},
        "trainer": {"steps": 2, "lr": 1e-2, "micro_batch_size": 2, "seed": 3},
        "checkpoint": {"every": 1, "keep": 2}, "eval": {"every": 2, "temperature": 0.0},
        "logging": {"progress": False, "log_completions": True},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_train_with_images_from_the_cli_and_resume(tmp_path, tiny_vlm):
    path = _config(tmp_path, tiny_vlm, freeze_vision=True)
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and "eval/pass@1" in metrics[-1] and metrics[0]["grad_norm"] > 0
    rows = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(r["images"][0].endswith(".png") for r in rows)
    ckpt = run / "checkpoints" / "step_000002"
    assert (ckpt / "preprocessor_config.json").is_file()  # the checkpoint is a loadable VLM folder
    base = load_file(f"{tiny_vlm['model']}/model.safetensors")
    trained = load_file(str(ckpt / "model.safetensors"))
    vision = [k for k in base if ".visual." in f".{k}"]
    assert vision and all(torch.equal(base[k], trained[k]) for k in vision)  # freeze_vision: untouched
    lm = [k for k in base if k not in vision]  # saved in Qwen2-VL's layout: model.layers..., visual...
    assert any(not torch.equal(base[k], trained[k]) for k in lm)  # ... while the language model trained
    # resume from step 1 in a copy: the same step-2 weights
    import shutil

    again = tmp_path / "again"
    (again / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints" / "step_000001", again / "checkpoints" / "step_000001")
    result = CliRunner().invoke(app, ["train", str(path), f"output_dir={again}", "checkpoint.resume=auto"])
    assert result.exit_code == 0, result.output
    resumed = load_file(str(again / "checkpoints" / "step_000002" / "model.safetensors"))
    assert all(torch.equal(trained[k], resumed[k]) for k in trained)
