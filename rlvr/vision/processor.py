"""A prompt and its images -> the token ids the policy reads and the pixel inputs its forward takes.

    proc = VisionProcessor.load(model_path, tokenizer)
    inputs = proc.encode(prompt_text, [pil_image, ...])   # PromptInputs
    inputs.input_ids     # the prompt's ids, each image token expanded to the image's number of patch tokens
    inputs.items         # {"pixel_values": (patches, D), "image_grid_thw": (images, 3)}: first dim counts items
    inputs.tokens        # {"mm_token_type_ids": (L,)}: one value per prompt token (padded like the ids)

The prompt text places images with the processor's image token (the chat template writes it for each
``{"type": "image"}`` content part; rlvr.data.templates does that for examples with images). Where the model
folder's ``AutoProcessor`` loads, it does the work (Qwen2.5-VL, Qwen3-VL, SmolVLM, InternVL ...: their own
expansion rules). Where it does not (the Qwen-VL processors also build a video processor, which needs
torchvision), the folder's image processor and the tokenizer are used with the Qwen2-VL rule: an image of grid
(t, h, w) patches becomes t*h*w / merge_size**2 image tokens, and ``mm_token_type_ids`` marks them (1) for the
model's 3-D rotary positions. That fallback serves image processors returning ``image_grid_thw`` only (Qwen2-VL,
Qwen2.5-VL, Qwen3-VL); others need their AutoProcessor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

log = logging.getLogger("rlvr")


@dataclass
class PromptInputs:
    """One prompt's encoding: ids, per-item tensors (concatenated over rows) and per-token tensors (padded)."""

    input_ids: list[int]
    items: dict[str, torch.Tensor] = field(default_factory=dict)
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)  # image_label of each image, for logs


class VisionProcessor:
    """``encode(text, images) -> PromptInputs`` over an AutoProcessor or the image-processor fallback."""

    def __init__(self, tokenizer, *, processor=None, image_processor=None, image_token: str = "<|image_pad|>"):
        if processor is None and image_processor is None:
            raise ValueError("VisionProcessor needs a processor or an image processor")
        self.tokenizer = tokenizer
        self.processor = processor
        self.image_processor = image_processor if processor is None else getattr(processor, "image_processor", None)
        self.image_token = getattr(processor, "image_token", None) or getattr(tokenizer, "image_token", None) \
            or image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    def placeholder_ids(self) -> list[int]:
        """Token ids that stand for pixels (image / video placeholders): never to be sampled in a response."""
        names = {self.image_token, getattr(self.processor, "video_token", None) or "<|video_pad|>"}
        unk = self.tokenizer.unk_token_id
        ids = {self.tokenizer.convert_tokens_to_ids(name) for name in names if name}
        return sorted(i for i in ids if isinstance(i, int) and i >= 0 and i != unk)

    @classmethod
    def load(cls, path: str, tokenizer, trust_remote_code: bool = False) -> "VisionProcessor":
        """The folder's AutoProcessor, or (when it cannot be built) its image processor + ``tokenizer``."""
        from transformers import AutoImageProcessor, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
            if hasattr(processor, "image_processor"):
                processor.tokenizer = tokenizer  # the run's tokenizer (its pad token) everywhere
                return cls(tokenizer, processor=processor)
            reason = f"AutoProcessor gave a {type(processor).__name__} without an image processor"
        except Exception as err:  # noqa: BLE001 - e.g. a video processor that needs torchvision
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        try:
            image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"model.path {path}: neither AutoProcessor ({reason}) nor AutoImageProcessor "
                             f"({type(err).__name__}: {err}) loads; a vision-language model needs one") from None
        log.info("vision: AutoProcessor did not load (%s); using %s + the tokenizer (Qwen2-VL token expansion)",
                 reason, type(image_processor).__name__)
        return cls(tokenizer, image_processor=image_processor)

    def encode(self, text: str, images: list, add_special_tokens: bool = False) -> PromptInputs:
        """``text`` holding one image token per image (in order) and the PIL ``images`` -> PromptInputs."""
        placed = text.count(self.image_token)
        if placed != len(images):
            raise ValueError(f"the prompt places {placed} image(s) ({self.image_token!r}) but the example has "
                             f"{len(images)}; images are placed by the chat template's {{'type': 'image'}} parts")
        if not images:
            return PromptInputs(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
        if self.processor is not None:
            out = self.processor(text=[text], images=list(images), return_tensors="pt",
                                 add_special_tokens=add_special_tokens)
            ids = out["input_ids"][0]
            items, tokens = {}, {}
            for key, value in out.items():
                if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
                    continue
                if value.dim() >= 2 and value.shape[:2] == out["input_ids"].shape:
                    tokens[key] = value[0]
                else:
                    items[key] = value
            return PromptInputs(ids.tolist(), items, tokens)
        pixels = self.image_processor(images=list(images), return_tensors="pt")
        if "image_grid_thw" not in pixels:
            raise ValueError(f"{type(self.image_processor).__name__} returns no image_grid_thw: without the model's "
                             "AutoProcessor only the Qwen2-VL family's token expansion is known")
        merge = int(getattr(self.image_processor, "merge_size", 2)) ** 2
        counts = [int(g.prod()) // merge for g in pixels["image_grid_thw"]]
        pieces = text.split(self.image_token)
        expanded = pieces[0] + "".join(self.image_token * c + rest for c, rest in zip(counts, pieces[1:]))
        ids = self.tokenizer(expanded, add_special_tokens=add_special_tokens)["input_ids"]
        if sum(i == self.image_token_id for i in ids) != sum(counts):
            raise ValueError(f"the tokenizer does not keep {self.image_token!r} as one token")
        types = torch.tensor([int(i == self.image_token_id) for i in ids], dtype=torch.long)
        items = {k: v for k, v in pixels.items() if isinstance(v, torch.Tensor)}
        return PromptInputs(ids, items, {"mm_token_type_ids": types})
