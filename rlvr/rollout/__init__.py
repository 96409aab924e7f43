"""Rollout engines: turn prompts into G sampled completions each, keeping token ids, sampling log-probs and
finish reasons. `hf` (our decode loop, or transformers generate, on the policy itself; rollout.hf) is the default
and runs anywhere; `vllm` (rlvr.rollout.vllm, optional) is a separate engine that receives the policy's weights
after every update."""

from __future__ import annotations

from typing import Protocol

import torch

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

    def sleep(self) -> None:
        """Free what the engine can while the trainer updates (vLLM sleep mode on GPU); no-op otherwise."""
        ...

    def sync_weights(self, model) -> dict[str, float]:
        """Make the engine sample from ``model``'s current weights; returns metrics (time, check)."""
        ...

    def close(self) -> None:
        """Release the engine (end of training)."""
        ...


def make_engine(cfg, model, tokenizer, device, dtype: torch.dtype, prompts: list[str],
                max_new_tokens: int = 0) -> RolloutEngine:
    """The engine named by ``cfg.rollout.engine``. With ``rollout.vllm.max_model_len`` 0, vLLM is sized for the
    longest of ``prompts`` (in tokens) plus the most new tokens a rollout, an eval or ``max_new_tokens`` asks for."""
    from rlvr.rollout.hf import HFRolloutEngine, _eos_ids

    add_special_tokens = not cfg.prompt.chat_template  # a chat template already carries the BOS text
    if cfg.rollout.engine == "hf":
        h = cfg.rollout.hf
        return HFRolloutEngine(model, tokenizer, device, add_special_tokens=add_special_tokens,
                               decode=h.decode, cache=h.cache, compile=h.compile)
    from rlvr.rollout.vllm import VLLMRolloutEngine
    from rlvr.trainer.policy import model_path

    v = cfg.rollout.vllm
    max_model_len = v.max_model_len
    if not max_model_len:
        from rlvr.data.checks import prompt_token_counts

        longest = max(prompt_token_counts(tokenizer, prompts, add_special_tokens), default=0)
        max_model_len = longest + max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0, max_new_tokens)
    name = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
    return VLLMRolloutEngine(
        model_path(cfg.model.path), tokenizer, v, dtype=name if v.dtype == "auto" else v.dtype,
        max_model_len=max_model_len, eos_ids=_eos_ids(model, tokenizer),
        add_special_tokens=add_special_tokens, trust_remote_code=cfg.model.trust_remote_code)
