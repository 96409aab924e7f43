"""Vision-language policies: recognising one, loading it, freezing its vision tower, LoRA on its language model.

A model folder is a vision-language model when its config has a ``vision_config`` (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, SmolVLM/Idefics3, InternVL, LLaVA ...). It loads with ``AutoModelForImageTextToText`` (the model's
own class where that mapping lacks it). ``model.freeze_vision: true`` sets requires_grad False on every parameter
of the vision tower (its patch embedding, blocks and, for Qwen, the merger that projects into the language model:
VLM-R1's ``freeze_vision_modules``), so the optimizer never sees them. LoRA adapters go on the language model's
linear layers only (`VISION_MODULES` are excluded), the recipe of VLM-R1 and of TRL's VLM examples.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

# module-name parts of vision towers across the families above (Qwen: visual; LLaVA/InternVL: vision_tower,
# vision_model; SmolVLM: model.vision_model; and their projectors are kept trainable unless they sit inside)
VISION_MODULES = ("visual", "vision_tower", "vision_model", "vision_encoder", "image_encoder")
VISION_PATTERN = re.compile(r"(^|\.)(" + "|".join(VISION_MODULES) + r")(\.|$)")


def is_vision_config(config) -> bool:
    """Whether a transformers config (or a model's) describes a vision-language model."""
    config = getattr(config, "config", config)
    return getattr(config, "vision_config", None) is not None


def load_vision_model(path: str, dtype: torch.dtype, trust_remote_code: bool = False):
    """AutoModelForImageTextToText, or the class the config names when that mapping does not know it."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    except ValueError:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        for name in config.architectures or []:
            cls = getattr(transformers, name, None)
            if cls is not None:
                return cls.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
        raise


def vision_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters inside the vision tower."""
    return [name for name, _ in model.named_parameters() if VISION_PATTERN.search(name)]


def freeze_vision(model: torch.nn.Module) -> int:
    """requires_grad False on the vision tower; returns how many parameters (elements) it froze. Raises when the
    model has none (freeze_vision on a text model is a configuration mistake, not a silent no-op)."""
    frozen = 0
    for name, param in model.named_parameters():
        if VISION_PATTERN.search(name):
            param.requires_grad_(False)
            frozen += param.numel()
    if not frozen:
        raise ValueError("model.freeze_vision: the model has no vision tower (no parameter under "
                         f"{', '.join(VISION_MODULES)})")
    return frozen


def lora_exclude_pattern() -> str:
    """peft ``exclude_modules``: every module of the vision tower (LoRA then adapts the language model only)."""
    return r".*(^|\.)(" + "|".join(VISION_MODULES) + r")\..*"


PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
                   "chat_template.json", "chat_template.jinja")


def copy_processor_files(src: str, dst: str | Path) -> None:
    """Copy the model folder's processor files into a checkpoint, so the checkpoint loads as the same VLM."""
    for name in PROCESSOR_FILES:
        if (Path(src) / name).is_file() and not (Path(dst) / name).exists():
            shutil.copy2(Path(src) / name, Path(dst) / name)
