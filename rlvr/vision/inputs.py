"""Pixel inputs of many rows -> one forward's keyword arguments.

A row's `PromptInputs` (rlvr.vision.processor) has per-item tensors (``pixel_values``: (patches, D),
``image_grid_thw``: (images, 3), first dim counting what the row holds) and per-token tensors (``mm_token_type_ids``:
(Lp,), one value per prompt token). For a forward over rows r_1 .. r_k in that order:

    items:  torch.cat over the rows that have the key, in row order (the model pairs image i with the i-th run
            of image tokens, counting across the batch, so the order must be the rows' order)
    tokens: (k, lp + t) built like the ids: each row's values right-aligned in the lp prompt columns (left
            padding 0), then t response columns of 0 (responses hold no image tokens)

Rows without images contribute nothing to items and zeros to tokens.
"""

from __future__ import annotations

import torch


def forward_inputs(rows: list, lp: int, t: int, device) -> dict[str, torch.Tensor]:
    """``rows``: PromptInputs (or None for a text-only row), one per batch row -> the forward's extra kwargs.

    lp: the prompt width of the forward (rows' prompts left-padded to it), t: its response width."""
    present = [r for r in rows if r is not None and r.items]
    if not present:
        return {}
    extra: dict[str, torch.Tensor] = {}
    for key in dict.fromkeys(k for r in present for k in r.items):
        extra[key] = torch.cat([r.items[key] for r in present if key in r.items]).to(device)
    for key in dict.fromkeys(k for r in present for k in r.tokens):
        ref = next(r.tokens[key] for r in present if key in r.tokens)
        out = torch.zeros((len(rows), lp + t), dtype=ref.dtype)
        for i, r in enumerate(rows):
            if r is not None and key in r.tokens:
                values = r.tokens[key][-lp:] if lp else r.tokens[key][:0]
                out[i, lp - len(values) : lp] = values
        extra[key] = out.to(device)
    return extra


def has_images(rows: list) -> bool:
    return any(r is not None and r.items for r in rows)
