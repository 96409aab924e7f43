"""Checks on rendered prompts, run after the tokenizer loads and before the model does.

    examples, held_out = drop_long_prompts(cfg, tokenizer, examples, held_out)

A prompt longer than ``data.max_prompt_tokens`` is skipped (counted, with a warning): 0 means the model's context
(``max_position_embeddings`` of its config.json) minus ``rollout.max_new_tokens`` (``eval.max_new_tokens`` for the
held-out set), and no limit when the context is unknown. Token counts use the tokenizer exactly as the rollout
engines do (special tokens added unless prompt.chat_template).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rlvr.data.sources import DataError
from rlvr.types import Example

log = logging.getLogger("rlvr")


def model_context_length(model_path: str) -> int | None:
    """``max_position_embeddings`` (or n_positions / max_seq_len) from a local model folder's config.json, or None."""
    config = Path(os.path.expanduser(model_path or "")) / "config.json"
    try:
        data: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (data, data.get("text_config") or {}):
        for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
            value = section.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def prompt_token_limit(cfg, max_new_tokens: int, context: int | None) -> tuple[int | None, str]:
    """(limit, where it comes from) for prompts followed by ``max_new_tokens`` generated tokens."""
    from rlvr.config import ConfigError

    if cfg.data.max_prompt_tokens > 0:
        return cfg.data.max_prompt_tokens, "data.max_prompt_tokens"
    if context is None:
        return None, "unknown model context"
    if max_new_tokens >= context:
        raise ConfigError(f"rollout.max_new_tokens = {max_new_tokens} leaves no room for a prompt in the model's "
                          f"context of {context} tokens (max_position_embeddings of {cfg.model.path}); lower it")
    return context - max_new_tokens, (f"the model's {context}-token context minus {max_new_tokens} new tokens; "
                                      "set data.max_prompt_tokens to change it")


def prompt_token_counts(tokenizer, prompts: list[str], add_special_tokens: bool) -> list[int]:
    """Tokens of each prompt as the rollout engines encode it (batched through the tokenizer, 1024 at a time)."""
    counts: list[int] = []
    for start in range(0, len(prompts), 1024):
        ids = tokenizer(prompts[start : start + 1024], add_special_tokens=add_special_tokens)["input_ids"]
        counts.extend(len(tokens) for tokens in ids)
    return counts


def _keep_short(examples: list[Example], tokenizer, limit: int, add_special_tokens: bool) -> tuple[list[Example], int]:
    counts = prompt_token_counts(tokenizer, [ex.prompt for ex in examples], add_special_tokens)
    kept = [ex for ex, n in zip(examples, counts) if n <= limit]
    longest = max((n for n in counts if n > limit), default=0)
    return kept, longest


def drop_long_prompts(cfg, tokenizer, examples: list[Example], held_out: list[Example]):
    """Skip (and warn about) prompts that do not fit; DataError when none of a set fits. Returns both lists."""
    context = model_context_length(cfg.model.path)
    add_special_tokens = not cfg.prompt.chat_template
    eval_new = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    out = []
    for name, items, new_tokens in (("training", examples, cfg.rollout.max_new_tokens), ("held-out", held_out, eval_new)):
        limit, why = prompt_token_limit(cfg, new_tokens, context)
        if limit is None or not items:
            out.append(items)
            continue
        kept, longest = _keep_short(items, tokenizer, limit, add_special_tokens)
        skipped = len(items) - len(kept)
        if skipped and not kept:
            raise DataError(f"every one of the {len(items)} {name} prompts is longer than {limit} tokens ({why}); "
                            "raise data.max_prompt_tokens, lower rollout.max_new_tokens or shorten prompt.template")
        if skipped:
            log.warning("skipped %d of %d %s prompts longer than %d tokens (%s; the longest has %d)",
                        skipped, len(items), name, limit, why, longest)
        out.append(kept)
    return out[0], out[1]
