"""A rollout engine with its own copy of the policy and a weight version: what runs apart from the trainer.

`RolloutWorker` is the body of a Ray rollout actor (rlvr/distributed/rollout.py) and of the rollout process of an
asynchronous run on one machine (rlvr/rollout/process.py). It loads cfg.model.path's weights (version 0), then
receives the trainer's trainable weights by name with the version they belong to; every completion it samples
carries that version (``Completion.version``).

Weight sync round trip: ``load_weights(..., probe_ids)`` answers the log-probs its copy now gives the probe tokens,
and the caller compares them with the trainer's (`rlvr.trainer.learner.probe_logprobs`): a transfer that silently
left old weights in place fails that check. (The vLLM engine additionally checks itself against this copy.)

Partial rollouts (async free mode): with an ``interrupt`` event, the HF decode loop stops at a token boundary when
it is set; unfinished completions come back with finish_reason "interrupted" and are continued by ``resume``
under the weights loaded meanwhile (the KV cache is rebuilt from the tokens: never reused across versions).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rlvr.rollout import derive_seed, resolve_seeds
from rlvr.types import Completion


class RolloutWorker:
    """One engine with its own policy copy; starts from cfg.model.path's weights (version 0).

    threads: torch threads (at least 1). interrupt: an Event (multiprocessing or threading) that stops the HF
    decode loop at the next token when set (partial rollouts); None = never interrupted."""

    def __init__(self, cfg, threads: int, interrupt=None):
        from rlvr.rollout import make_engine
        from rlvr.trainer.policy import load_policy, load_tokenizer, resolve_device, resolve_dtype

        torch.set_num_threads(max(1, int(threads)))
        device = resolve_device(cfg.model.device)
        dtype = resolve_dtype(cfg.model.dtype, device)
        self.tokenizer = load_tokenizer(cfg.model)
        torch.manual_seed(cfg.trainer.seed)
        # the engine's own copy of the policy: the HF engine decodes with it, vLLM receives its weights
        self.model = load_policy(cfg.model, device if cfg.rollout.engine == "hf" else torch.device("cpu"), dtype)
        self.model.requires_grad_(False)
        self.engine = make_engine(cfg, self.model, self.tokenizer, device, dtype, [])
        if interrupt is not None:
            self.engine.interrupt = interrupt  # the HF decode loop reads it (rlvr.rollout.hf)
        self.version = 0  # of the weights held: 0 = the model folder's

    def ping(self) -> int:
        return self.version

    def split_invariant(self) -> bool:
        return bool(getattr(self.engine, "split_invariant", False))

    def load_weights(self, weights: dict[str, torch.Tensor], version: int, probe_ids: list[int] | None = None):
        """The trainer's trainable weights (by parameter name) into this copy, then into the engine. Returns the
        version, or (version, log-probs of ``probe_ids`` under the new weights) when probe_ids are given."""
        from rlvr.trainer.learner import probe_logprobs

        own = dict(self.model.named_parameters())
        unknown = sorted(set(weights) - set(own))
        if unknown:
            raise KeyError(f"weights for parameters this worker's model does not have: {unknown[:5]}")
        with torch.no_grad():
            for name, value in weights.items():
                own[name].copy_(value.to(own[name].device, own[name].dtype))
        self.engine.sync_weights(self.model)  # vLLM: pushed and checked against this copy; HF: nothing more
        self.version = version
        if probe_ids is None:
            return version
        return version, probe_logprobs(self.model, probe_ids)

    def generate(self, prompts: list[str], n: int, kwargs: dict[str, Any]):
        """(groups, seconds, version); every completion carries the version."""
        t0 = time.perf_counter()
        groups = self.engine.generate(prompts, n, **kwargs)
        for group in groups:
            for c in group:
                c.version = self.version
        return groups, time.perf_counter() - t0, self.version

    def resume(self, groups: list[list[Completion]], kwargs: dict[str, Any], seeds: list[int]):
        """Continue every "interrupted" completion of ``groups`` under the weights held now (a new segment with
        this version and its own log-probs), from its prompt + tokens so far, within its remaining
        max_new_tokens; the others are returned as they were. ``seeds``: the groups' prompt seeds (the new
        segment's draws come from (seed, completion, tokens so far)). Returns (groups, seconds, version); the
        result may hold "interrupted" completions again when interrupted again."""
        t0 = time.perf_counter()
        todo = [(p, j) for p, group in enumerate(groups) for j, c in enumerate(group)
                if c.finish_reason == "interrupted"]
        if todo:
            budget = kwargs["max_new_tokens"]
            prefixes = [groups[p][j].prompt_ids + groups[p][j].token_ids for p, j in todo]
            left = [budget - len(groups[p][j].token_ids) for p, j in todo]
            seeds = resolve_seeds(seeds, len(groups))
            row_seeds = [derive_seed(seeds[p], j, len(groups[p][j].token_ids)) for p, j in todo]
            pieces = self.engine.continue_ids(prefixes, max(left), kwargs.get("temperature", 1.0),
                                              kwargs.get("top_p", 1.0), kwargs.get("top_k", 0), row_seeds)
            for (p, j), room, piece in zip(todo, left, pieces):
                old = groups[p][j]
                tokens, logprobs, finish = piece.token_ids[:room], piece.logprobs[:room], piece.finish_reason
                if len(piece.token_ids) > room or (finish != "eos" and len(old.token_ids) + len(tokens) >= budget):
                    finish = "length"  # at this completion's own budget
                segments = old.segments or [[old.version, len(old.token_ids)]]
                ids = old.token_ids + tokens
                groups[p][j] = Completion(
                    self.tokenizer.decode(ids, skip_special_tokens=True), ids, old.logprobs + logprobs, finish,
                    prompt_ids=old.prompt_ids, version=min(old.version, self.version),
                    segments=segments + [[self.version, len(tokens)]])
        return groups, time.perf_counter() - t0, self.version

    def sleep(self) -> None:
        self.engine.sleep()

    def close(self) -> None:
        self.engine.close()
