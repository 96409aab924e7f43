"""Rollout engines: turn prompts into G sampled completions each, keeping token ids, sampling log-probs and
finish reasons. `hf` (transformers generate) is the default and runs anywhere."""

from __future__ import annotations

from typing import Protocol

from rlvr.types import Completion


class RolloutEngine(Protocol):
    def generate(
        self,
        prompts: list[str],
        n: int,
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        batch_size: int = 0,
    ) -> list[list[Completion]]:
        """P prompts -> P lists of n completions (temperature 0 = greedy)."""
        ...
