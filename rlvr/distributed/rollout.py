"""Rollout workers: ``distributed.rollout_workers`` Ray actors, each holding its own copy of the policy and a
rollout engine (the HF engine, or vLLM with ``rollout.engine: vllm``).

`RayRolloutGroup` is a rollout engine for the driver: ``generate`` splits the prompts into contiguous shares,
samples them on the workers in parallel and returns the groups in prompt order; ``sync_weights`` puts the
trainer's new weights (gathered once, in the object store) into every worker. Each prompt carries its own seed
(rlvr.rollout.resolve_seeds), so with the HF decode loop a prompt's completions do not depend on which worker,
or how many, sampled it.

Faults: a worker that dies (killed, out of memory) is restarted by Ray (``distributed.max_restarts``); its share
of the call is sampled again after the current weights are pushed to it. Every answer carries the version of
the weights the worker holds, so a worker restarted between two calls (which would answer from the initial
weights) is caught the same way. Both count in ``faults/rollout_restarts``, with a logged warning.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from rlvr.distributed.cluster import DistributedError, first_line, import_ray, stop_actors, threads_for, wait_for_restart
from rlvr.rollout.worker import RolloutWorker

log = logging.getLogger("rlvr")

RESTART_WAIT_S = 600.0  # how long a restarted worker may take to load its model and engine


class RayRolloutGroup:
    """A rollout engine over ``rollout_workers`` RolloutWorker actors (see the module docstring).

    placement: (placement group, [bundle index per worker]) to colocate with the trainer ranks, or None.
    """

    def __init__(self, cfg, placement=None):
        ray = import_ray()
        d = cfg.distributed
        self.max_restarts = d.max_restarts
        actor = ray.remote(RolloutWorker)
        self.workers = []
        for i in range(d.rollout_workers):
            options: dict[str, Any] = {"num_cpus": d.rollout_cpus, "num_gpus": d.rollout_gpus,
                                       "max_restarts": d.max_restarts}
            if placement is not None:
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                group, bundles = placement
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    placement_group=group, placement_group_bundle_index=bundles[i])
                if d.colocate and d.trainer_gpus:
                    options["num_gpus"] = d.trainer_gpus / 2  # the other half of the rank's GPU
            self.workers.append(actor.options(**options).remote(cfg, threads_for(d.rollout_cpus)))
        try:
            invariant = ray.get([w.split_invariant.remote() for w in self.workers])
        except Exception as err:  # noqa: BLE001
            raise DistributedError(f"the rollout workers could not start: {first_line(err)}") from err
        if len(self.workers) > 1 and not all(invariant):
            log.warning("rollout: the engine's samples depend on how prompts are batched (rollout.hf.decode "
                        "generate): with %d rollout workers they differ from a one-process run's (same seed)",
                        len(self.workers))
        self.version = 0
        self._weights = None  # object-store reference of the weights at self.version
        self.last_metrics: dict[str, float] = {}

    # -------------------------------------------------------------------------------------------- protocol
    def generate(self, prompts: list[str], n: int, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, batch_size: int = 0, seeds=None) -> list:
        from rlvr.rollout import resolve_seeds

        if temperature != 0:  # drawn here as one engine would: the same samples as in one process
            seeds = resolve_seeds(seeds, len(prompts))
        kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                      batch_size=batch_size)
        shares = [s for s in np.array_split(np.arange(len(prompts)), len(self.workers)) if len(s)]
        calls = []
        for i, share in enumerate(shares):
            args = {**kwargs, "seeds": [seeds[k] for k in share] if seeds is not None else None}
            calls.append((i, "generate", ([prompts[k] for k in share], n, args)))
        answers, restarts = self._run(calls, check_version=True)
        self.last_metrics = {"time/rollout_worker_max_s": max((a[1] for a in answers), default=0.0),
                             "faults/rollout_restarts": float(restarts)}
        return [group for groups, _, _ in answers for group in groups]

    def sync_weights(self, policy) -> dict[str, float]:
        """Push the trainer group's weights after an update (``policy``: the RayTrainerGroup)."""
        t0 = time.perf_counter()
        self._weights = policy.weights_ref()
        self.version += 1
        self._run([(i, "load_weights", (self._weights, self.version)) for i in range(len(self.workers))])
        return {"time/weight_sync_s": time.perf_counter() - t0}

    def load_weights(self, weights, version: int, probe_ids: list[int] | None, timeout_s: float):
        """Asynchronous runs: load ``weights`` (an object-store reference taken right after the update) as
        ``version`` into every worker within ``timeout_s``; returns each worker's probe log-probs."""
        ray = import_ray()
        self._weights, self.version = weights, version
        refs = [w.load_weights.remote(weights, version, probe_ids) for w in self.workers]
        try:
            answers = ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"the rollout workers did not load weights version {version} within "
                               f"{timeout_s:g} s") from None
        return [a[1] for a in answers] if probe_ids is not None else []

    def sleep(self) -> None:
        import_ray().get([w.sleep.remote() for w in self.workers])

    def close(self) -> None:
        workers, self.workers = self.workers, []
        stop_actors(workers, "close", timeout_s=60)

    # -------------------------------------------------------------------------------------------- faults
    def _run(self, calls: list[tuple[int, str, tuple]], check_version: bool = False) -> tuple[list, int]:
        """Run ``(worker, method, args)`` calls in parallel; answers in call order and the restarts it took. A
        call whose worker died, or answered from other weights than the current ones, runs again on the
        restarted worker once it holds the current weights."""
        ray = import_ray()
        refs = [getattr(self.workers[i], method).remote(*args) for i, method, args in calls]
        answers, restarts = [], 0
        for (i, method, args), ref in zip(calls, refs):
            for attempt in range(self.max_restarts + 1):
                err = None
                try:
                    answer = ray.get(ref)
                    stale = check_version and answer[2] != self.version
                    if not stale:
                        break
                    reason = f"it answered from weights version {answer[2]}, not {self.version} (restarted)"
                except ray.exceptions.RayActorError as died:
                    err, reason = died, first_line(died)
                if attempt == self.max_restarts:
                    raise DistributedError(f"rollout worker {i} failed {attempt + 1} times ({reason}); "
                                           f"distributed.max_restarts = {self.max_restarts}")
                restarts += 1
                log.warning("rollout worker %d: %s; Ray restarts it and its share of the %s call runs again",
                            i, reason, method)
                self._revive(i, err)
                ref = getattr(self.workers[i], method).remote(*args)
            answers.append(answer)
        return answers, restarts

    def _revive(self, i: int, err: BaseException | None) -> None:
        """Wait for Ray to restart worker i, then give it the current weights."""
        version = wait_for_restart(self.workers[i], f"rollout worker {i}", RESTART_WAIT_S, self.max_restarts,
                                   err or DistributedError("stale weights"))
        if self._weights is not None and version != self.version:
            import_ray().get(self.workers[i].load_weights.remote(self._weights, self.version))
