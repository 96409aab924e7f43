"""Data recipes in the trainer on the tiny model: a mixture with the weakness sampler resumes exactly, per-source
metrics are logged, and cascaded stages run in one folder and resume in the right stage at the right step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rlvr.config import config_from_dict
from rlvr.trainer import train
from tests.trainer.test_trainer_loop import make_cfg, weights


@pytest.fixture()
def two_sources(tmp_path, arithmetic_jsonl):
    other = tmp_path / "sub.jsonl"
    other.write_text("".join(json.dumps({"q": f"{a}-{b}=", "a": str(a - b)}) + "\n" for a in range(5, 9)
                             for b in range(1, 4)))
    return {"sources": [{"source": str(arithmetic_jsonl), "weight": 0.75, "name": "add"},
                        {"source": str(other), "weight": 0.25, "name": "sub", "question_field": "q",
                         "answer_field": "a", "template": "minus: {question}"}],
            "source": "", "sampling": "weakness", "skip_solved": 1}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_weakness_mixture_logs_per_source_and_resumes_exactly(tmp_path, tiny_model_dir, two_sources):
    def cfg(name, steps):
        return config_from_dict(make_cfg(tmp_path / name, tiny_model_dir, None, data=two_sources,
                                         trainer={"steps": steps, "seed": 2, "deterministic": True}))

    straight = cfg("straight", 4)
    train(straight)
    train(cfg("resumed", 2))
    train(cfg("resumed", 4))  # same folder: resumes from step 2, sampler statistics included
    runs = [Path(c.output_dir) for c in (straight, cfg("resumed", 4))]
    seqs = [[(r["step"], r.get("source"), r["index"]) for r in lines(run / "completions.jsonl")] for run in runs]
    assert seqs[0] == seqs[1]
    assert {s for _, s, _ in seqs[0]} == {"add", "sub"}
    a, b = (weights(run / "checkpoints" / "step_000004") for run in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = lines(runs[0] / "metrics.jsonl")
    for key in ("reward/source/add/mean", "reward/source/sub/mean", "accuracy/source/add", "data/source/sub/share",
                "data/failure_rate_mean/add", "data/skipped_solved/sub"):
        assert key in metrics[-1], key
    shares = [m["data/source/add/share"] + m["data/source/sub/share"] for m in metrics]
    assert shares == pytest.approx([1.0] * 4)
    prompts = {r["prompt"] for r in lines(runs[0] / "completions.jsonl") if r.get("source") == "sub"}
    assert all(p.startswith("minus: ") for p in prompts)  # the source's own template
    assert (runs[0] / "config.yaml").is_file()


def test_stages_run_in_one_folder_and_resume_in_the_right_stage(tmp_path, tiny_model_dir, arithmetic_jsonl,
                                                                  two_sources):
    stages = [{"name": "add", "trainer": {"steps": 2}},
              {"name": "mix", "data": two_sources, "trainer": {"steps": 3, "lr": 5e-4}}]

    def cfg(name):
        return config_from_dict(make_cfg(tmp_path / name, tiny_model_dir, arithmetic_jsonl, stages=stages,
                                         trainer={"steps": 99, "seed": 4, "deterministic": True}))

    straight = cfg("straight")
    result = train(straight)
    out = Path(straight.output_dir)
    assert (result["stage"], result["step"], result["stage_step"]) == ("mix", 5, 3)
    first, second = out / "stages" / "00_add", out / "stages" / "01_mix"
    assert [c.name for c in sorted((first / "checkpoints").iterdir())] == ["step_000001", "step_000002"]
    summary = json.loads((out / "stages.json").read_text())
    assert [(s["name"], s["first_step"], s["last_step"]) for s in summary] == [("add", 1, 2), ("mix", 3, 5)]
    assert summary[1]["model"] == str(first / "checkpoints" / "step_000002")  # stage 2 starts from stage 1
    merged = lines(out / "metrics.jsonl")
    assert [(m["step"], m["stage"], m["stage_step"]) for m in merged] == \
        [(1, "add", 1), (2, "add", 2), (3, "mix", 1), (4, "mix", 2), (5, "mix", 3)]
    assert merged[3]["lr"] <= 5e-4 and (out / "curves.png").is_file()

    # a run killed in stage 2 after its step 1: the same command skips stage 1 and resumes stage 2 at step 1
    killed = cfg("killed")
    shutil.copytree(out, Path(killed.output_dir))
    k2 = Path(killed.output_dir) / "stages" / "01_mix"
    for step in (2, 3):
        shutil.rmtree(k2 / "checkpoints" / f"step_{step:06d}")
    stage1_mtime = (Path(killed.output_dir) / "stages" / "00_add" / "metrics.jsonl").stat().st_mtime
    result = train(killed)
    assert (result["step"], result["stage_step"]) == (5, 3)
    assert (Path(killed.output_dir) / "stages" / "00_add" / "metrics.jsonl").stat().st_mtime == stage1_mtime
    assert [m["step"] for m in lines(k2 / "metrics.jsonl")] == [1, 2, 3]
    a, b = weights(second / "checkpoints" / "step_000003"), weights(k2 / "checkpoints" / "step_000003")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train(killed)["stage"] == "mix"  # everything finished: nothing runs again
