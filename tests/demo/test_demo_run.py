"""The shortened demo (`rlvr demo --quick`): the same code path, every artifact written and consistent."""

import json

from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.demo.report import read_metrics


def test_quick_demo_writes_consistent_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    import rlvr.trainer

    seen_cfgs, real_train = [], rlvr.trainer.train
    monkeypatch.setattr(rlvr.trainer, "train", lambda cfg: seen_cfgs.append(cfg) or real_train(cfg))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["demo", "--quick", "--seed", "3", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output
    for name in ("metrics.jsonl", "completions.jsonl", "reward_curve.png", "summary.json", "report.md"):
        assert (out / name).is_file(), name
    assert (out / "reward_curve.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    metrics = read_metrics(out / "metrics.jsonl")
    # --quick: trainer.steps=2 with 2 prompts x 4 completions per step -> steps 1, 2 and 2 * 8 completion rows
    assert [m["step"] for m in metrics] == [1, 2]
    assert summary["steps"] == 2 and summary["completions_per_step"] == 8
    assert len((out / "completions.jsonl").read_text().splitlines()) == 16
    assert summary["first_reward_mean"] == metrics[0]["reward/mean"]
    assert summary["final_reward_mean"] == metrics[-1]["reward/mean"]
    assert summary["heldout_problems"] == 8 and not summary["base_cached"]
    # --seed 3: its own cached base (warm-up seeded with 3) and trainer.seed = 3
    assert summary["seed"] == 3 and summary["base_warmup_steps"] == 10 + 4  # QUICK_PRETRAIN: 10 learn + 4 flawed
    meta = json.loads((tmp_path / "cache" / "demo" / "quickseed3" / "base.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["config"]["slip"] == 0.75
    assert seen_cfgs[0].trainer.seed == 3
    for key in ("base_pass1", "final_pass1", "base_pass8", "final_pass8"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["wall_seconds"] >= summary["train_seconds"] > 0
    report = (out / "report.md").read_text()
    # the report's table rows are the summary's numbers, formatted by hand here
    b, f = summary["base_pass1"], summary["final_pass1"]
    assert f"| greedy pass@1 | {100 * b:.1f}% | {100 * f:.1f}% | {100 * (f - b):+.1f} pts |" in report
    b, f = summary["base_pass8"], summary["final_pass8"]
    assert f"| pass@8 (T=1) | {100 * b:.1f}% | {100 * f:.1f}% | {100 * (f - b):+.1f} pts |" in report
    assert "2 steps x 8 completions" in report

