"""Shared fixtures: a tiny char-level Llama saved to disk, and a small arithmetic dataset (no downloads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained ~0.3M-parameter LlamaForCausalLM with a character tokenizer, saved as an HF folder."""
    from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama, save_tiny

    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, hidden=64, layers=2, heads=2, seed=0)
    return save_tiny(model, tokenizer, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def arithmetic_jsonl(tmp_path_factory) -> Path:
    """32 addition problems 'a+b=' with numeric answers."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [{"question": f"{a}+{b}=", "answer": str(a + b)} for a in range(1, 9) for b in range(1, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
