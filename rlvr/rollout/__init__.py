"""Rollout engines: turn prompts into G sampled completions each, keeping token ids, sampling log-probs and
finish reasons. `hf` (our decode loop, or transformers generate, on the policy itself; rollout.hf) is the default
and runs anywhere; `vllm` (rlvr.rollout.vllm, optional) is a separate engine that receives the policy's weights
after every update.

Seeds: ``generate(..., seeds=[...])`` takes one integer per prompt (0 .. 2**63-1); a prompt's samples then depend
on its own seed only, not on the other prompts of the call (docs/rollout.md, "Seeds"). Without seeds, one seed per
prompt is drawn from torch's global RNG (`resolve_seeds`), so ``torch.manual_seed`` before a call reproduces it.
"""

from __future__ import annotations

import operator
from typing import Protocol

import torch

from rlvr.types import Completion

MAX_SEED = 2**63 - 1
_MASK64 = 2**64 - 1


def resolve_seeds(seeds, count: int) -> list[int]:
    """``seeds`` checked (``count`` ints in 0 .. 2**63-1), or, when None, ``count`` seeds drawn from torch's global RNG
    (one ``torch.randint`` call)."""
    if seeds is None:
        return torch.randint(0, MAX_SEED, (count,)).tolist() if count else []
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.tolist()
    seeds = list(seeds)
    if len(seeds) != count:
        raise ValueError(f"seeds: {len(seeds)} seeds for {count} prompts (one per prompt)")
    out = []
    for s in seeds:
        try:
            if isinstance(s, bool):
                raise TypeError
            s = operator.index(s)
        except TypeError:
            raise TypeError(f"seeds: {s!r} is not an integer") from None
        if not 0 <= s <= MAX_SEED:
            raise ValueError(f"seeds: {s} is outside 0 .. 2**63-1")
        out.append(s)
    return out


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(seed: int, *keys: int) -> int:
    """A seed in 0 .. 2**63-1 derived from ``seed`` and ``keys`` (splitmix64): nearby inputs give unrelated seeds."""
    x = _splitmix64(seed & _MASK64)
    for key in keys:
        x = _splitmix64(x ^ (key & _MASK64))
    return x >> 1


class RolloutEngine(Protocol):
    split_invariant: bool  # a prompt's samples depend on its seed only, not on the batch it shares (see "Seeds")

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
        seeds: list[int] | None = None,
    ) -> list[list[Completion]]:
        """P prompts -> P lists of n completions (temperature 0 = greedy); ``seeds``: one int per prompt."""
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
                max_new_tokens: int = 0, examples: list | None = None) -> RolloutEngine:
    """The engine named by ``cfg.rollout.engine``. With ``rollout.vllm.max_model_len`` 0, vLLM is sized for the
    longest of ``prompts`` (in tokens) plus the most new tokens a rollout, an eval or ``max_new_tokens`` asks for.
    With ``rollout.multi_turn`` (tools or an environment) that engine is wrapped in the multi-turn loop
    (rlvr.rollout.multi_turn); ``examples`` (rendered) are what an environment's ``reset`` receives."""
    engine = _make_engine(cfg, model, tokenizer, device, dtype, prompts, max_new_tokens)
    if not cfg.rollout.multi_turn.enabled:
        return engine
    from rlvr.rollout.multi_turn import MultiTurnEngine

    return MultiTurnEngine(engine, tokenizer, cfg.rollout.multi_turn, add_special_tokens=not cfg.prompt.chat_template,
                           examples={ex.prompt: ex for ex in reversed(examples or [])})


def _make_engine(cfg, model, tokenizer, device, dtype, prompts, max_new_tokens) -> RolloutEngine:
    from rlvr.rollout.hf import HFRolloutEngine, _eos_ids

    add_special_tokens = not cfg.prompt.chat_template  # a chat template already carries the BOS text
    if cfg.rollout.engine == "hf":
        h = cfg.rollout.hf
        engine = HFRolloutEngine(model, tokenizer, device, add_special_tokens=add_special_tokens,
                                 decode=h.decode, cache=h.cache, compile=h.compile)
        from rlvr.vision.model import is_vision_config

        if is_vision_config(getattr(model, "config", None)):  # prompts with images: the model's processor
            from rlvr.trainer.policy import model_path
            from rlvr.vision.processor import VisionProcessor

            engine.processor = VisionProcessor.load(model_path(cfg.model.path), tokenizer,
                                                    cfg.model.trust_remote_code)
            engine.suppress_ids = engine.processor.placeholder_ids()
        return engine
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
