"""Reward workers on Ray: ``RayRewardGroup``, a drop-in for RewardScorer in the training loop.

    with RayRewardGroup(cfg.reward, workers=4, cpus=1.0, max_restarts=3) as scorer:
        results = scorer.score(examples, completions, metadata_extra)   # = RewardScorer.score, same order
        scorer.last_metrics  # {"time/reward_worker_max_s": 0.8, "faults/reward_restarts": 0.0}

Each worker is a Ray actor (``num_cpus=cpus``, Ray's own ``max_restarts``) holding an ordinary RewardScorer with
its pool of verifier processes, so per-item timeouts, the memory limit (RLIMIT_AS), the sandbox and the "never
raises for a bad completion" contract hold inside every worker exactly as in one process. ``score`` splits the
batch into ``workers`` contiguous chunks, scores them in parallel and gathers them in order.

A worker that dies (the actor process, not one of its verifier processes: those are the scorer's business) is
restarted by Ray; its chunk is retried once it answers a ping, up to ``max_restarts`` times per call, with a
warning, and counted in ``faults/reward_restarts``. A worker Ray cannot restart (its lifetime ``max_restarts``
used up, or no node can host it within RESTART_WAIT_S) raises DistributedError: that is an infrastructure
failure, not a bad completion, and is not hidden behind zero rewards.

User functions (``"file.py:fn"``) are sent with absolute paths and verifier modules registered outside rlvr are
imported by the actors (by module name, else from their file), as the scorer's own worker processes do; on a
multi-node cluster those files must exist at the same paths on every node. A component with ``params:
{in_process: true}`` runs inside the reward actor, not in the trainer process.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

from rlvr.config import RewardComponentConfig, RewardConfig
from rlvr.distributed.cluster import DistributedError, first_line as _first_line, import_ray, stop_actors, \
    threads_for, wait_for_restart
from rlvr.rewards.compose import resolve_components
from rlvr.rewards.user import is_user_spec
from rlvr.types import Example, RewardResult

log = logging.getLogger("rlvr.distributed")

START_TIMEOUT_S = 120.0  # the actors must be scheduled and built within this (else: too few CPUs in the cluster?)
RESTART_WAIT_S = 60.0  # how long a dead worker may take to come back before the call fails
CLOSE_WAIT_S = 10.0  # close() waits this long at most for the killed actors to be gone


def _absolute_spec(spec: str) -> str:
    """``"rel/file.py:fn"`` -> ``"/abs/rel/file.py:fn"`` (the actor's working directory may differ)."""
    from rlvr.rewards.scorer import _absolute_spec as absolute

    return absolute(spec)


def _plugins(names: set[str]) -> list[tuple[str, str | None]]:
    """(module, absolute file) of the verifiers registered outside rlvr, for the actors to import: those in
    ``names`` (one defined in ``__main__`` raises, as in RewardScorer) and every other importable one, so that
    the actors' registry, and its "unknown verifier ... choices" reasons, match this process's."""
    from rlvr.rewards.base import VERIFIERS
    from rlvr.rewards.scorer import RewardScorer

    found = RewardScorer._plugins({name for name in names if name in VERIFIERS})
    for name in VERIFIERS.names():
        if name in names:
            continue
        try:
            extra = RewardScorer._plugins({name})
        except ValueError:  # defined in __main__ and not needed by this call
            continue
        found += [p for p in extra if p not in found]
    return [(module, os.path.abspath(path) if path else None) for module, path in found]


# ----------------------------------------------------------------------------------------------------------
# actor side


class RewardWorker:
    """The body of one reward actor (``ray.remote`` is applied by RayRewardGroup): a RewardScorer."""

    def __init__(self, reward_cfg: RewardConfig, plugins: list[tuple[str, str | None]], cpus: float):
        from rlvr.rewards.scorer import RewardScorer, _import_plugins

        threads = threads_for(cpus)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        _import_plugins(plugins)
        num_workers = reward_cfg.num_workers if reward_cfg.num_workers > 0 else threads
        self.scorer = RewardScorer(reward_cfg.components, reward_cfg.timeout_s, num_workers,
                                   memory_limit_mb=reward_cfg.memory_limit_mb)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # one per incarnation: tells a restart apart

    def ping(self) -> str:
        return self.token

    def score(self, plugins: list[tuple[str, str | None]], examples: list[Example], completions: list[str],
              metadata_extra: list[dict] | None) -> tuple[str, list[RewardResult], float]:
        from rlvr.rewards.scorer import _import_plugins

        t0 = time.perf_counter()
        _import_plugins(plugins)
        results = self.scorer.score(examples, completions, metadata_extra)
        return self.token, results, time.perf_counter() - t0

    def close(self) -> None:
        self.scorer.close()


# ----------------------------------------------------------------------------------------------------------
# driver side


class RayRewardGroup:
    """``workers`` reward actors behind RewardScorer's ``score``; see the module docstring."""

    def __init__(self, reward_cfg: RewardConfig, workers: int, cpus: float = 1.0, max_restarts: int = 3):
        if workers < 1:
            raise ValueError(f"distributed.reward_workers must be >= 1, got {workers}")
        if reward_cfg.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {reward_cfg.timeout_s}")
        ray = import_ray()
        if not ray.is_initialized():
            raise DistributedError("RayRewardGroup needs a Ray connection: call rlvr.distributed.connect() first")
        self._ray = ray
        self.workers = int(workers)
        self.cpus = float(cpus)
        self.max_restarts = int(max_restarts)
        self.last_metrics: dict[str, float] = {}
        # the driver resolves the components too: unknown names / bad user files fail here, with the scorer's error
        configs = [c if isinstance(c, RewardComponentConfig) else RewardComponentConfig(**c)
                   for c in reward_cfg.components]
        shown = [c.display for c in resolve_components(configs)]
        sent = [replace(c, name=_absolute_spec(c.name)) if is_user_spec(c.name) else c for c in configs]
        # display names the actors will use (absolute paths) -> the ones RewardScorer would show here
        self._rename = {a: b for a, b in zip((c.display for c in resolve_components(sent)), shown) if a != b}
        self._component_verifiers = {c.name for c in configs if c.name != "auto" and not is_user_spec(c.name)}
        cfg = replace(reward_cfg, components=sent)
        plugins = _plugins(self._component_verifiers)
        actor_cls = ray.remote(RewardWorker)
        self.actors = [
            actor_cls.options(num_cpus=self.cpus, max_restarts=self.max_restarts, max_task_retries=0).remote(
                cfg, plugins, self.cpus)
            for _ in range(self.workers)
        ]
        try:
            self._tokens = ray.get([a.ping.remote() for a in self.actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise DistributedError(
                f"{self.workers} reward workers of {self.cpus:g} CPUs each did not start within {START_TIMEOUT_S:g}s; "
                "does the Ray cluster have that many free CPUs? (distributed.reward_workers / reward_cpus)") from None
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
            self.close()
            raise DistributedError(f"reward worker failed to start: {_first_line(err)}") from None

    # -- public ------------------------------------------------------------------------------------------

    def score(self, examples: list[Example], completions: list[str],
              metadata_extra: list[dict] | None = None) -> list[RewardResult]:
        """One combined RewardResult per completion, as RewardScorer.score, from ``workers`` actors in parallel."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples for {len(completions)} completions")
        if metadata_extra is not None and len(metadata_extra) != len(completions):
            raise ValueError(f"metadata_extra has {len(metadata_extra)} items for {len(completions)} completions")
        if not self.actors:
            raise DistributedError("RayRewardGroup.score after close()")
        self.last_metrics = {"time/reward_worker_max_s": 0.0, "faults/reward_restarts": 0.0}
        if not examples:
            return []
        names = set(self._component_verifiers) | {ex.verifier for ex in examples if not is_user_spec(ex.verifier)}
        plugins = _plugins(names)  # raises, as RewardScorer does, for a verifier defined in __main__
        slim = self._slim(examples)
        n, w = len(examples), self.workers
        bounds = [(k * n // w, (k + 1) * n // w) for k in range(w)]
        chunks = [(k, a, b) for k, (a, b) in enumerate(bounds) if b > a]
        ray = self._ray

        def submit(k: int, a: int, b: int):
            extra = None if metadata_extra is None else list(metadata_extra[a:b])
            return self.actors[k].score.remote(plugins, slim[a:b], list(completions[a:b]), extra)

        pending = {submit(*c): c for c in chunks}
        out: list[RewardResult | None] = [None] * n
        tries = {k: 0 for k, _, _ in chunks}
        slowest = 0.0
        restarts = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                k, a, b = pending.pop(ref)
                try:
                    token, results, seconds = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    tries[k] += 1
                    if tries[k] > self.max_restarts:
                        raise DistributedError(f"reward worker {k} died {tries[k]}x in one score call, more than "
                                               f"distributed.max_restarts={self.max_restarts}: {_first_line(err)}"
                                               ) from None
                    log.warning("reward worker %d died during a score call (%s: %s); waiting for Ray to restart it",
                                k, type(err).__name__, _first_line(err))
                    t0 = time.monotonic()
                    self._tokens[k] = self._await_restart(k, err)
                    restarts += 1
                    log.warning("reward worker %d is back after %.1fs; retrying its %d items", k,
                                time.monotonic() - t0, b - a)
                    pending[submit(k, a, b)] = (k, a, b)
                    continue
                except ray.exceptions.RayTaskError as err:
                    raise DistributedError(f"reward worker {k} failed: {_first_line(err.cause or err)}") from None
                if token != self._tokens[k]:  # Ray restarted it between calls, before anything failed here
                    log.warning("reward worker %d was restarted by Ray since the last score call", k)
                    self._tokens[k] = token
                    restarts += 1
                slowest = max(slowest, float(seconds))
                out[a:b] = [self._renamed(r) for r in results]
        self.last_metrics = {"time/reward_worker_max_s": slowest, "faults/reward_restarts": float(restarts)}
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Kill the actors (idempotent); their verifier processes go with them."""
        actors, self.actors = getattr(self, "actors", []), []
        ray = getattr(self, "_ray", None)
        if not actors or ray is None or not ray.is_initialized():
            return
        stop_actors(actors, "close", timeout_s=5, wait_s=CLOSE_WAIT_S)  # stop the verifier processes cleanly

    def __enter__(self) -> "RayRewardGroup":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- helpers -----------------------------------------------------------------------------------------

    def _await_restart(self, k: int, err: BaseException) -> str:
        """Ping worker ``k`` until its new incarnation answers (its token), within RESTART_WAIT_S."""
        return wait_for_restart(self.actors[k], f"reward worker {k}", RESTART_WAIT_S, self.max_restarts, err)

    @staticmethod
    def _slim(examples: list[Example]) -> list[Example]:
        """What score needs of each example (no source / index); one object per distinct example, so a group
        of G completions of one prompt pickles its question, prompt and metadata once."""
        seen: dict[int, Example] = {}
        out = []
        for ex in examples:
            s = seen.get(id(ex))
            if s is None:
                metadata, verifier = ex.metadata, ex.verifier
                if is_user_spec(verifier):  # "auto" on a user function: absolute path, metadata as shown here
                    metadata = {"verifier": verifier, **(metadata or {})}
                    verifier = _absolute_spec(verifier)
                s = seen[id(ex)] = Example(question=ex.question, answer=ex.answer, verifier=verifier,
                                           metadata=metadata, prompt=ex.prompt)
            out.append(s)
        return out

    def _renamed(self, r: RewardResult) -> RewardResult:
        """Component names as RewardScorer shows them here (relative user paths, not the actors' absolute ones)."""
        if not self._rename:
            return r
        r.components = {self._rename.get(k, k): v for k, v in r.components.items()}
        reasons = r.details.get("reasons") if isinstance(r.details, dict) else None
        if isinstance(reasons, dict):
            r.details["reasons"] = {self._rename.get(k, k): v for k, v in reasons.items()}
        return r
