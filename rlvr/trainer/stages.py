"""Cascaded stages (Nemotron-Cascade style): train domain after domain in one output folder.

    stages:
      - {name: math, data: {source: math.jsonl}, trainer: {steps: 200}}
      - {name: code, data: {source: code.jsonl, verifier: code}, trainer: {steps: 100}, algorithm: {name: dapo}}

``train_stages(cfg)`` runs each stage of ``cfg.stages`` (built by ``rlvr.config.stage_configs``: the stage's
sections on the base config) as an ordinary run of ``train()`` in ``<output_dir>/stages/<k>_<name>/``, so each
stage has its own checkpoints, metrics and completions and resumes exactly like any run. Stage k + 1 starts from
stage k's final checkpoint (its weights; a fresh optimizer, LR schedule and data position; the KL reference is
that starting point), so a stage's checkpoints are tagged by their folder. Re-running the same command skips
finished stages (their final checkpoint is at their trainer.steps) and resumes the unfinished one at its step.

With LoRA a stage's final checkpoint is an adapter folder: it is merged into its base once
(``<stage>/merged/``) and the next stage trains fresh adapters on that merged model.

``<output_dir>/metrics.jsonl`` gathers every stage's metrics under a global step (stage k's step s is
s + the steps of the stages before it) with a ``stage`` field, and ``curves.png`` plots them; ``stages.json``
lists the stages, their folders, global step ranges and final checkpoints.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rlvr.config import RunConfig, stage_configs
from rlvr.logging import METRICS_FILE
from rlvr.trainer import state as ckpt

log = logging.getLogger("rlvr")


def stage_dir(output_dir: str | Path, k: int, name: str) -> Path:
    return Path(output_dir) / "stages" / f"{k:02d}_{name}"


def train_stages(cfg: RunConfig) -> dict[str, Any]:
    """Run (or resume) every stage in order; returns the last stage's result, its ``step`` the global step (with
    ``stage`` and ``stage_step`` added)."""
    from rlvr.trainer.loop import train

    out = Path(cfg.output_dir)
    stages = stage_configs(cfg)
    start_model, offset, summary, result = cfg.model.path, 0, [], {}
    for k, (name, stage) in enumerate(stages):
        folder = stage_dir(out, k, name)
        stage.output_dir = str(folder)
        stage.model.path = start_model
        stage.checkpoint.save_final = True  # the next stage starts from it
        final = _final_checkpoint(folder, stage.trainer.steps)
        if final is None:
            log.info("stage %d/%d %s: %d steps from %s", k + 1, len(stages), name, stage.trainer.steps, start_model)
            result = train(stage)
            result = {**result, "step": offset + result["step"], "stage": name, "stage_step": result["step"]}
            final = _final_checkpoint(folder, stage.trainer.steps)
            if final is None:  # interrupted (SIGTERM) or stopped early: resume with the same command
                _gather(out, summary + [_entry(k, name, folder, offset, stage, None)])
                return result
        else:
            log.info("stage %d/%d %s: already finished (%s)", k + 1, len(stages), name, final)
            result = {"step": offset + stage.trainer.steps, "stage": name, "stage_step": stage.trainer.steps}
        summary.append(_entry(k, name, folder, offset, stage, final))
        offset += stage.trainer.steps
        start_model = str(_as_full_model(final, stage))
        _gather(out, summary)
    return result


def _final_checkpoint(folder: Path, steps: int) -> Path | None:
    """The stage's checkpoint at its last step, when it got there."""
    done = [c for c in ckpt.list_checkpoints(folder) if ckpt.step_of(c) >= steps] if folder.is_dir() else []
    return done[-1] if done else None


def _entry(k: int, name: str, folder: Path, offset: int, stage: RunConfig, final: Path | None) -> dict[str, Any]:
    return {"stage": k, "name": name, "folder": str(folder), "first_step": offset + 1,
            "last_step": offset + stage.trainer.steps, "model": stage.model.path,
            "final_checkpoint": str(final) if final else None}


def _as_full_model(checkpoint: Path, stage: RunConfig) -> Path:
    """The checkpoint itself (a full model folder), or, for a LoRA adapter, the adapter merged into the stage's
    base model, written once to <stage folder>/merged."""
    if not (checkpoint / "adapter_config.json").is_file():
        return checkpoint
    merged = Path(stage.output_dir) / "merged"
    if (merged / "config.json").is_file():
        return merged
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.trainer.policy import model_path

    base = AutoModelForCausalLM.from_pretrained(model_path(stage.model.path), dtype=torch.float32,
                                                trust_remote_code=stage.model.trust_remote_code)
    model = PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
    tmp = merged.with_name("merged.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(checkpoint)).save_pretrained(tmp)
    tmp.replace(merged)
    log.info("merged the LoRA adapters of %s into %s for the next stage", checkpoint, merged)
    return merged


def _gather(out: Path, summary: list[dict[str, Any]]) -> None:
    """<out>/metrics.jsonl (every stage's lines under the global step, with "stage"), curves.png, stages.json."""
    lines = []
    for entry in summary:
        path = Path(entry["folder"]) / METRICS_FILE
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed stage
            lines.append(json.dumps({**row, "step": row["step"] + entry["first_step"] - 1,
                                     "stage": entry["name"], "stage_step": row["step"]}))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (METRICS_FILE + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(out / METRICS_FILE)
    (out / "stages.json").write_text(json.dumps(summary, indent=2))
    if lines:
        from rlvr.eval.plots import plot_curves

        plot_curves(out / METRICS_FILE, out / "curves.png")
