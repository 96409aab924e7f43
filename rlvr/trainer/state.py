"""Checkpoints that resume exactly.

A checkpoint is a folder ``<output_dir>/checkpoints/step_000012/`` holding
- the policy as an HF-loadable folder (safetensors weights, config, tokenizer; a peft adapter folder with LoRA),
- ``trainer_state.pt``: optimizer, scheduler, torch/python/numpy RNG states, data sampler position, step and the
  trainer's own counters (KL coefficient, bad-step streak, best reward),
- ``reference/model.safetensors`` when the reference policy was reset away from the initial model (ProRL); in a
  subfolder, because vLLM loads every ``*.safetensors`` of a model folder as its weights (checkpoints written
  before kept it as ``reference.safetensors`` beside the policy, still read on resume),
- PPO's critic: ``critic/`` (an HF token-classification folder, a peft adapter, or ``value_head.safetensors``:
  a head on the policy), its optimizer and schedule in ``trainer_state.pt`` (rlvr/trainer/critic.py),
- ``trainer_state.json``: the same counters, human-readable.
- ``manifest.json``: the size and sha256 of every other file, written last.
It is written to ``step_000012.tmp`` and renamed when complete, so a run killed mid-write leaves the previous
checkpoint as the latest valid one. Resuming checks the manifest (older checkpoints without one: the safetensors
headers and sizes); a damaged latest checkpoint is renamed ``step_000012.damaged`` with a warning naming the file,
and the previous complete one is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
REFERENCE_FILE = "reference/model.safetensors"
NOT_POLICY_FILES = ("reference.safetensors",)  # an older checkpoint's reference, beside the policy's weights
MANIFEST = "manifest.json"
log = logging.getLogger("rlvr")


class CheckpointError(FileNotFoundError):
    """No usable checkpoint where one was asked for (a FileNotFoundError: the CLI prints it, exit code 2)."""


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    (folder / MANIFEST).write_text(json.dumps({"files": entries}, indent=1))


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint (naming the file), or None. Sizes are compared before hashes."""
    from rlvr.trainer.guard import safetensors_problem

    if not (folder / STATE_FILE).is_file():
        return f"{STATE_FILE} is missing"
    manifest = folder / MANIFEST
    if not manifest.is_file():  # written before manifests existed: check what can be checked cheaply
        for file in sorted(folder.rglob("*.safetensors")):
            problem = safetensors_problem(file)
            if problem:
                return f"{file.relative_to(folder)}: {problem}"
        return None
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{MANIFEST} is unreadable"
    for name, entry in entries.items():
        file = folder / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != entry["size"]:
            return f"{name}: {file.stat().st_size} bytes, the manifest says {entry['size']}"
    for name, entry in entries.items():
        if _sha256(folder / name) != entry["sha256"]:
            return f"{name}: sha256 differs from the manifest"
    return None


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
    reference: torch.nn.Module | None = None, model_state: dict[str, torch.Tensor] | None = None,
    reference_state: dict[str, torch.Tensor] | None = None, extra=None,
) -> Path:
    """Write the checkpoint for ``step`` atomically and prune all but the ``keep`` most recent.

    model_state / reference_state: the full state dicts when the modules themselves are sharded (FSDP2 rank 0,
    `full_model_state`); None = read them from the modules. extra: ``extra(folder)`` writes more files into the
    checkpoint before its manifest (PPO's critic)."""
    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if model_state is None:
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
    tokenizer.save_pretrained(tmp)
    if reference_state is not None or reference is not None:
        (tmp / REFERENCE_FILE).parent.mkdir()
    if reference_state is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in reference_state.items()}, str(tmp / REFERENCE_FILE))
    elif reference is not None:
        from safetensors.torch import save_model

        save_model(reference, str(tmp / REFERENCE_FILE))  # handles tied (shared) weights
    if extra is not None:
        extra(tmp)
    torch.save({**trainer_state, "rng": rng_state()}, tmp / STATE_FILE)
    counters = trainer_state.get("counters", {})
    summary = {k: v for k, v in counters.items() if isinstance(v, (int, float, str, bool)) or v is None}
    (tmp / "trainer_state.json").write_text(json.dumps(summary, indent=2))
    write_manifest(tmp)
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
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and "." not in p.name
             and (p / STATE_FILE).is_file()]  # not step_*.tmp (being written) nor step_*.damaged
    return sorted(found, key=step_of)


def find_resume(output_dir: str | Path, resume: str) -> Path | None:
    """The checkpoint to resume from: ``auto`` = the latest in output_dir (or none), ``never``, or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        damaged = []
        for candidate in reversed(found):
            problem = checkpoint_problem(candidate)
            if problem is None:
                for bad, why in damaged:  # out of the way: the run rewrites these steps
                    aside = bad.with_name(bad.name + ".damaged")
                    shutil.rmtree(aside, ignore_errors=True)
                    bad.rename(aside)
                    log.warning("checkpoint %s is damaged (%s); moved to %s, resuming from %s instead",
                                bad, why, aside.name, candidate.name)
                return candidate
            damaged.append((candidate, problem))
        if damaged:
            raise CheckpointError(
                f"checkpoint.resume=auto: no usable checkpoint in {Path(output_dir) / 'checkpoints'}: "
                + "; ".join(f"{bad.name}: {why}" for bad, why in damaged)
                + ". Delete them or start over with checkpoint.resume=never and a new output_dir")
        return None
    path = Path(resume).expanduser()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"checkpoint.resume: {path} is not a checkpoint folder (no {STATE_FILE})")
    problem = checkpoint_problem(path)
    if problem:
        raise CheckpointError(f"checkpoint.resume: {path} is damaged: {problem}")
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
        if file.name not in NOT_POLICY_FILES:
            state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if (set(missing) - tied or unexpected) and hasattr(model, "from_pretrained") and unexpected:
        # saved under the checkpoint key layout of its class (transformers renames on save, e.g. Qwen2.5-VL's
        # model.layers -> model.language_model.layers): let from_pretrained apply the renaming
        first = next(model.parameters())
        renamed = type(model).from_pretrained(str(path), dtype=first.dtype).state_dict()
        missing, unexpected = model.load_state_dict(renamed, strict=False)
        tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}")


def load_reference(reference: torch.nn.Module, path: Path) -> None:
    """A reset reference policy (ProRL) back from ``reference/model.safetensors`` (or an older checkpoint's
    ``reference.safetensors``)."""
    from safetensors.torch import load_file, load_model

    file = str(path / REFERENCE_FILE if (path / REFERENCE_FILE).is_file() else path / "reference.safetensors")
    try:
        load_model(reference, file)
    except RuntimeError:  # written from a full state dict (FSDP): every key, tied ones included
        reference.load_state_dict(load_file(file), strict=False)


def _full_options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict on CPU; collective under FSDP2 (rank 0 receives it, the others {})."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_full_options(cpu_offload=True))
    tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
    return {k: v for k, v in state.items() if k not in tied}  # a tied head is the embedding, saved once


def full_optimizer_state(model: torch.nn.Module, optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name (not position), full tensors: loadable on any number of
    ranks (`load_optimizer_state`). Collective under FSDP2."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))


def load_optimizer_state(model: torch.nn.Module, optimizer, saved: dict[str, Any]) -> None:
    """Load a `full_optimizer_state` (or a plain ``optimizer.state_dict()`` of an older checkpoint, keyed by
    parameter position, in one process) into ``optimizer``, whether ``model`` is sharded or not."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    positional = all(isinstance(p, int) for g in saved.get("param_groups", []) for p in g["params"])
    if positional:
        if any(hasattr(p, "full_tensor") for p in model.parameters()):
            names = [n for n, p in model.named_parameters() if p.requires_grad]
            saved = {"state": {names[i]: v for i, v in saved["state"].items()},
                     "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]]}
        else:
            optimizer.load_state_dict(saved)
            return
    set_optimizer_state_dict(model, optimizer, saved, options=_full_options())


def restore_driver(path: Path, sampler, counters: dict[str, Any]) -> dict[str, Any]:
    """The driver's part of a checkpoint (data position, counters, RNG) back into the live objects; the
    learner loads its own part (weights, optimizer, schedule: `rlvr.trainer.learner.Learner`)."""
    saved = load_trainer_state(path)
    sampler.load_state_dict(saved["sampler"])
    counters.update(saved["counters"])
    set_rng_state(saved["rng"])
    return saved
