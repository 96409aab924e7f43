"""Asynchronous rollouts (``async.max_staleness`` k > 0): sampling overlaps training under a strict staleness bound.

A producer thread drives a rollout engine that runs apart from the trainer (`rlvr.rollout.process.RolloutProcess`
on one machine, the Ray rollout workers with distributed.backend: ray) and the reward scorer, while the training
loop (rlvr/trainer/loop.py) updates. Weight versions: v = the weights after v updates; the trainer holds n - 1
before step n's update and pushes version n after it (``push``).

- ``mode: fixed``: the batch of step n is sampled with version max(0, n - 1 - k) *exactly* (k = 1: verl's one-step
  off-policy schedule). Jobs run in order: weights v_n, then the batch of step n + 1 + k; the batches of steps
  n + 1 .. n + k are sampled (or sampling) meanwhile. Deterministic: a run repeats from its seed.
- ``mode: free``: the producer samples rounds of P prompts continuously with the newest weights it has, into a
  buffer of at most max(k, 1) * P groups; step n takes the oldest P groups whose version is >= n - 1 - k and drops
  (and counts) the older ones: the bound holds per sample. With ``partial_rollout`` a push interrupts the
  generation in flight at a token boundary; it is resumed under the new weights as a new segment.

Every sync loads the weights within ``async.sync_timeout_s`` and checks them by a round trip: the engine's
log-probs of fixed probe tokens must match the trainer's (SYNC_CHECK_TOL). A failure stops the run with
`PipelineError`; the loop writes a checkpoint of the last finished step first. Checkpoints hold the sampled
batches not yet trained on (with their versions), so a resumed run continues the same pipeline (``state_dict``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from rlvr.algorithms.off_policy import staleness, staleness_histogram, within_staleness

log = logging.getLogger("rlvr")

# Largest |engine - trainer| probe log-prob after a sync, by model.dtype: the HF engine in another process runs the
# same kernels (measured ~1e-7 in float32); half precision on two devices (trainer GPU, engine copy) is coarser.
SYNC_CHECK_TOL = {"float32": 1e-4, "float64": 1e-4, "bfloat16": 0.1, "float16": 0.1}
WAIT_S = 0.2  # polling interval of every wait (each checks for a failed producer)


class PipelineError(RuntimeError):
    """A weight sync timed out or failed its check, or the producer failed: the run stops (resumably)."""


@dataclass
class SampledBatch:
    """What the producer made for one step (fixed) or one round (free): sample_groups' four results."""

    step: int
    examples: list
    groups: list
    results: list
    metrics: dict[str, float] = field(default_factory=dict)


class AsyncRollout:
    """The producer thread and its buffers (module docstring).

    engine: a rollout engine with ``load_weights(weights, version, probe_ids, timeout_s)`` (and, for partial
    rollouts, ``interrupt`` / ``resume``); sample: ``sample(generate, step)`` -> (examples, groups, results,
    metrics), `loop.sample_groups` over this engine and the scorer; probe_ids: the round-trip tokens;
    saved: ``state_dict()`` of the run being resumed, or None.
    """

    def __init__(self, cfg, engine, sample: Callable, probe_ids: list[int], saved: dict[str, Any] | None = None):
        s = cfg.async_
        self.k, self.mode, self.partial = s.max_staleness, s.mode, s.partial_rollout
        self.timeout_s, self.steps = s.sync_timeout_s, cfg.trainer.steps
        self.per_step = cfg.rollout.prompts_per_step
        self.capacity = max(self.k, 1) * self.per_step  # free mode: groups buffered at most
        self.engine, self._sample, self.probe_ids = engine, sample, probe_ids
        self.tol = SYNC_CHECK_TOL.get(_weights_dtype(cfg), 0.1)
        self._cond = threading.Condition()
        # fixed: ("weights", weights, version, expected) | ("sample", step) | ("call", fn, box, done), in order; a job
        # leaves only once done, so after a failure the unfinished ones (the failed one first) are what remains
        self._jobs: deque = deque()
        self._ready: dict[int, SampledBatch] = {}  # fixed: finished batches by step
        self._groups: list[tuple] = []  # free: (example, completions, results), oldest first
        self._pending = None  # free: the newest (weights, version, expected) not loaded yet
        self._calls: list = []  # free: functions to run in the producer (held-out evaluation)
        self._paused = self._busy = self._stop = False
        self._error: BaseException | None = None
        self.round = 0  # free: rounds sampled
        self.version = -1  # of the weights the engine holds
        self._counts = {"dropped": 0, "engine_idle_s": 0.0, "sync_s": 0.0, "syncs": 0, "interrupted": 0}
        self._round_metrics: dict[str, float] = {}
        saved = saved or {}
        if saved.get("mode") not in (None, self.mode):
            log.warning("async: the checkpoint's buffer was made in %s mode, this run is %s: it is discarded (%d "
                        "batches / groups)", saved["mode"], self.mode, len(saved.get("ready", saved.get("groups", []))))
            saved = {}
        self._restored = saved
        self._thread = threading.Thread(target=self._run, name="rlvr-async-rollout", daemon=True)

    # ------------------------------------------------------------------------------------------ trainer side
    def start(self, step: int, learner) -> None:
        """Begin at ``step`` (the resumed step, 0 for a new run): the engine gets the learner's weights as version
        ``step``; fixed mode queues the batches of steps step + 1 .. step + 1 + k not restored from the checkpoint."""
        saved = self._restored
        if self.mode == "fixed":
            self._ready = {b.step: b for b in saved.get("ready", []) if b.step > step}
            self._jobs.extend(tuple(job) for job in saved.get("jobs", []))  # a failed sync's, replayed first
        else:
            self._groups = list(saved.get("groups", []))
            self.round = int(saved.get("round", 0))
        if saved:
            log.info("async: resumed with %d sampled %s from the checkpoint", len(self._ready) or len(self._groups),
                     "batches" if self.mode == "fixed" else "groups")
        self.push(step, learner, first=True)  # before the producer starts: nothing is sampled from other weights
        self._thread.start()

    def push(self, version: int, learner, first: bool = False) -> dict[str, float]:
        """After the update to ``version``: hand its weights (a snapshot, taken now) and the trainer's probe
        log-probs to the producer; fixed mode then queues the batch of step version + 1 + k."""
        self._raise_if_failed()
        t0 = time.perf_counter()
        item = (learner.weights_snapshot(), version, learner.probe_logprobs(self.probe_ids))
        if self.mode == "fixed":
            self._put(("weights", *item))
            first_step = version + 1 if first else version + 1 + self.k
            with self._cond:
                queued = {job[1] for job in self._jobs if job[0] == "sample"}
            for step in range(first_step, min(version + 1 + self.k, self.steps) + 1):
                if step not in self._ready and step not in queued:
                    self._put(("sample", step))
        else:
            with self._cond:
                self._pending = item
                self._cond.notify_all()
            if self.partial and not first:
                self.engine.interrupt()
        return {"time/weight_snapshot_s": time.perf_counter() - t0}

    def next_batch(self, step: int) -> tuple[list, list, list, dict[str, float]]:
        """The groups step ``step`` trains on (sample_groups' four results) plus the ``async/*`` metrics; waits
        for them (trainer idle time)."""
        t0 = time.perf_counter()
        current = step - 1
        with self._cond:
            if self.mode == "fixed":
                self._wait(lambda: step in self._ready)
                batch = self._ready.pop(step)
                examples, groups, results, metrics = batch.examples, batch.groups, batch.results, dict(batch.metrics)
            else:
                def enough():
                    self._drop_stale(current)
                    return len(self._groups) >= self.per_step
                self._wait(enough)
                taken, self._groups = self._groups[: self.per_step], self._groups[self.per_step :]
                self._cond.notify_all()  # room in the buffer
                examples = [g[0] for g in taken]
                groups = [g[1] for g in taken]
                results = [x for g in taken for x in g[2]]
                metrics, self._round_metrics = self._round_metrics, {}
            counts = dict(self._counts)
            self._counts.update(dropped=0, engine_idle_s=0.0, sync_s=0.0, syncs=0, interrupted=0)
        versions = torch.tensor([oldest_version(c) for g in groups for c in g])
        stale = staleness(versions, current)
        if bool((stale > self.k).any()):  # the bound is the contract: never train on an older sample
            raise PipelineError(f"step {step}: a sample of weights version {int(versions.min())} is older than "
                                f"async.max_staleness = {self.k} allows (a bookkeeping bug; please report it)")
        metrics.update({
            "async/staleness_mean": float(stale.float().mean()), "async/staleness_max": float(stale.max()),
            "async/version_min": float(versions.min()), "async/dropped_groups": float(counts["dropped"]),
            "async/trainer_idle_s": time.perf_counter() - t0, "async/engine_idle_s": counts["engine_idle_s"],
            "async/interrupted": float(counts["interrupted"]),
            **staleness_histogram(stale, self.k)})
        if counts["syncs"]:
            metrics["time/weight_sync_s"] = counts["sync_s"] / counts["syncs"]
        return examples, groups, results, metrics

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the producer between two jobs, with the engine holding the newest pushed weights
        (held-out evaluation uses the engine); returns its result."""
        box: dict[str, Any] = {}
        done = threading.Event()
        if self.mode == "fixed":
            self._put(("call", fn, box, done))
        else:
            with self._cond:
                self._calls.append((fn, box, done))
                self._cond.notify_all()
        while not done.wait(WAIT_S):
            self._raise_if_failed()
        if "error" in box:
            raise box["error"]
        return box["value"]

    @contextlib.contextmanager
    def paused(self):
        """Nothing samples inside (fixed: every queued job finished; free: the round in flight finished): the
        buffers and the sampler can be saved."""
        with self._cond:
            if self.mode == "fixed":
                self._wait(lambda: not self._jobs)
            else:
                self._paused = True
                self._cond.notify_all()
                self._wait(lambda: not self._busy)
        try:
            yield
        finally:
            with self._cond:
                self._paused = False
                self._cond.notify_all()

    def state_dict(self) -> dict[str, Any]:
        """The sampled batches (fixed) or groups (free) not trained on yet, with their versions; call inside
        ``paused()`` (or after a failure: what finished is kept)."""
        with self._cond:
            if self.mode == "fixed":  # after a failure also the jobs not done, in order, weights included
                jobs = [(kind, _persistable(rest[0]), *rest[1:]) if kind == "weights" else (kind, *rest)
                        for kind, *rest in self._jobs if kind != "call"]
                return {"mode": "fixed", "ready": [self._ready[s] for s in sorted(self._ready)], "jobs": jobs}
            return {"mode": "free", "groups": list(self._groups), "round": self.round}

    @property
    def failed(self) -> bool:
        return self._error is not None

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self.partial:
            self.engine.interrupt()
        self._thread.join(timeout=self.timeout_s)

    # ------------------------------------------------------------------------------------------ helpers
    def _put(self, job) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Under self._cond: wait until ``ready()``, raising if the producer failed."""
        while not ready():
            self._raise_if_failed()
            self._cond.wait(WAIT_S)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise PipelineError(str(self._error)) from self._error

    def _drop_stale(self, current: int) -> None:
        keep = []
        for item in self._groups:
            if bool(within_staleness(torch.tensor([oldest_version(c) for c in item[1]]), current, self.k).all()):
                keep.append(item)
            else:
                self._counts["dropped"] += 1
        self._groups = keep

    # ------------------------------------------------------------------------------------------ producer
    def _run(self) -> None:
        try:
            self._run_fixed() if self.mode == "fixed" else self._run_free()
        except BaseException as err:  # noqa: BLE001 - reported to the trainer at its next call
            log.error("async rollout: %s", err)
            with self._cond:
                self._error = err
                self._cond.notify_all()

    def _load(self, weights, version: int, expected: torch.Tensor) -> None:
        """Load and check one version (the round trip); PipelineError-worthy failures raise."""
        t0 = time.perf_counter()
        try:
            probes = self.engine.load_weights(weights, version, self.probe_ids, self.timeout_s)
        except TimeoutError as err:
            raise RuntimeError(f"weight sync of version {version} timed out (async.sync_timeout_s = "
                               f"{self.timeout_s:g}): {err}") from err
        tol = self.tol
        for i, got in enumerate(probes):
            diff = float((got.float() - expected.float()).abs().max())
            if not diff <= tol:
                raise RuntimeError(f"weight sync of version {version}: rollout engine {i}'s log-probs of the probe "
                                   f"tokens differ from the trainer's by {diff:.3g} (> {tol:g}): it is not sampling "
                                   "from the weights sent")
        self.version = version
        with self._cond:
            self._counts["sync_s"] += time.perf_counter() - t0
            self._counts["syncs"] += 1

    def _run_fixed(self) -> None:
        while True:
            with self._cond:
                t0 = time.perf_counter()
                while not self._stop and not self._jobs:
                    self._cond.wait(WAIT_S)
                self._counts["engine_idle_s"] += time.perf_counter() - t0
                if self._stop:
                    return
                job = self._jobs[0]
            if job[0] == "weights":
                self._load(*job[1:])
            elif job[0] == "sample":
                step = job[1]
                made = SampledBatch(step, *self._sample(self.engine.generate, step))
                with self._cond:
                    self._ready[step] = made
            elif job[0] == "call":
                self._run_call(*job[1:])
            with self._cond:  # done: only now does it leave the queue (a failed job stays, for the checkpoint)
                self._jobs.popleft()
                self._cond.notify_all()

    def _run_call(self, fn, box, done) -> None:
        try:
            box["value"] = fn()
        except Exception as err:  # noqa: BLE001 - the caller's error, raised in the caller
            box["error"] = err
        done.set()

    def _apply_pending(self) -> None:
        with self._cond:
            item, self._pending = self._pending, None
        if item is not None:
            self._load(*item)

    def _run_free(self) -> None:
        while True:
            with self._cond:
                t0 = time.perf_counter()
                while not self._stop and (self._paused or (len(self._groups) >= self.capacity and not self._calls
                                                           and self._pending is None)):
                    self._cond.wait(WAIT_S)
                self._counts["engine_idle_s"] += time.perf_counter() - t0
                if self._stop:
                    return
                self._busy = True
            try:
                self._apply_pending()
                with self._cond:
                    calls, self._calls = self._calls, []
                for call in calls:
                    self._run_call(*call)
                with self._cond:
                    full = len(self._groups) >= self.capacity
                if full:
                    continue
                self.round += 1
                examples, groups, results, metrics = self._sample(self._generate, self.round)
                n = len(groups[0]) if groups else 0
                with self._cond:
                    for p, ex in enumerate(examples):
                        self._groups.append((ex, groups[p], results[p * n : (p + 1) * n]))
                    for key, value in metrics.items():
                        if key.startswith(("time/", "faults/")) or key == "sampling/groups_dropped":
                            self._round_metrics[key] = self._round_metrics.get(key, 0.0) + value
                    self._cond.notify_all()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _generate(self, prompts, n, **kwargs):
        """engine.generate; with partial rollouts, interrupted completions are resumed under the weights pushed
        meanwhile until every one has finished."""
        groups = self.engine.generate(prompts, n, **kwargs)
        if not self.partial:
            return groups
        seeds = kwargs.get("seeds")
        while not self._stop and any(c.finish_reason == "interrupted" for g in groups for c in g):
            with self._cond:
                self._counts["interrupted"] += sum(c.finish_reason == "interrupted" for g in groups for c in g)
            self._apply_pending()
            groups = self.engine.resume(groups, kwargs, seeds)
        return groups


def oldest_version(completion) -> int:
    """The weight version a sample's staleness counts from: the oldest of its segments (partial rollouts)."""
    return min([completion.version] + [v for v, _ in completion.segments])


def _weights_dtype(cfg) -> str:
    """model.dtype as the trainer resolves it ("auto": bfloat16 on GPU, float32 on CPU)."""
    if cfg.model.dtype != "auto":
        return cfg.model.dtype
    gpu = cfg.distributed.trainer_gpus > 0 if cfg.distributed.backend == "ray" else torch.cuda.is_available()
    return "bfloat16" if gpu and cfg.model.device != "cpu" else "float32"


def _persistable(weights):
    """A weights snapshot as tensors (a Ray object reference is fetched) for a checkpoint."""
    if isinstance(weights, dict):
        return weights
    from rlvr.distributed.cluster import import_ray

    return import_ray().get(weights)


def probe_ids_for(tokenizer, prompt: str, add_special_tokens: bool, limit: int = 48) -> list[int]:
    """The round-trip tokens: a training prompt followed by a fixed text, at most ``limit`` ids (at least 2)."""
    from rlvr.rollout.vllm import PROBE_TEXT

    ids = tokenizer(prompt + PROBE_TEXT, add_special_tokens=add_special_tokens)["input_ids"][:limit]
    return ids if len(ids) >= 2 else ids + [tokenizer.eos_token_id or 0] * 2


def thread_split(cfg) -> tuple[int, int]:
    """(trainer threads, rollout threads) of an asynchronous run on one machine."""
    import os

    cores = os.cpu_count() or 1
    rollout = cfg.async_.rollout_threads or max(1, cores // 2)
    trainer = cfg.async_.trainer_threads or max(1, cores - rollout)
    return trainer, rollout

