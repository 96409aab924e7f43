"""Checkpoints that resume exactly.

A checkpoint is a folder ``<output_dir>/checkpoints/step_000012/`` holding
- the policy as an HF-loadable folder (safetensors weights, config, tokenizer; a peft adapter folder with LoRA),
- ``trainer_state.pt``: optimizer, scheduler, torch/python/numpy RNG states, data sampler position, step and the
  trainer's own counters (KL coefficient, bad-step streak, best reward),
- ``reference.safetensors`` when the reference policy was reset away from the initial model (ProRL),
- ``trainer_state.json``: the same counters, human-readable.
It is written to ``step_000012.tmp`` and renamed when complete, so a run killed mid-write leaves the previous
checkpoint as the latest valid one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step_{step:06d}"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    output_dir: str | Path, step: int, model, tokenizer, trainer_state: dict[str, Any], keep: int,
    reference: torch.nn.Module | None = None,
) -> Path:
    """Write the checkpoint for ``step`` atomically and prune all but the ``keep`` most recent."""
    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if reference is not None:
        from safetensors.torch import save_model

        save_model(reference, str(tmp / "reference.safetensors"))  # handles tied (shared) weights
    torch.save({**trainer_state, "rng": rng_state()}, tmp / STATE_FILE)
    counters = trainer_state.get("counters", {})
    summary = {k: v for k, v in counters.items() if isinstance(v, (int, float, str, bool)) or v is None}
    (tmp / "trainer_state.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("_")[1])


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and not p.name.endswith(".tmp")
             and (p / STATE_FILE).is_file()]
    return sorted(found, key=step_of)


def find_resume(output_dir: str | Path, resume: str) -> Path | None:
    """The checkpoint to resume from: ``auto`` = the latest in output_dir (or none), ``never``, or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"checkpoint.resume: {path} is not a checkpoint folder (no {STATE_FILE})")
    return path


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)


def load_policy_weights(model, path: Path) -> None:
    """Load a checkpoint's weights into an already-built policy (full model or peft adapters)."""
    from safetensors.torch import load_file

    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        return
    state = {}
    for file in sorted(path.glob("*.safetensors")):
        if file.name != "reference.safetensors":
            state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}")


def restore(path: Path, model, optimizer, scheduler, sampler, counters: dict[str, Any],
            frozen_reference: torch.nn.Module | None) -> None:
    """Load everything a checkpoint holds back into the live objects (``counters`` is updated in place)."""
    saved = load_trainer_state(path)
    load_policy_weights(model, path)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    sampler.load_state_dict(saved["sampler"])
    counters.update(saved["counters"])
    if counters.get("reference_reset") and frozen_reference is not None:
        from safetensors.torch import load_model

        load_model(frozen_reference, str(path / "reference.safetensors"))
    set_rng_state(saved["rng"])
