"""The rollout engine of an asynchronous run on one machine: a `RolloutWorker` in a child process of its own.

    engine = RolloutProcess(cfg, threads=1, start_timeout_s=600)     # spawns, loads the model and engine
    probes = engine.load_weights(weights, version=3, probe_ids=ids, timeout_s=120)
    groups = engine.generate(prompts, n, max_new_tokens=..., seeds=...)   # completions carry .version
    engine.close()

The child has its own torch threads, so sampling and the trainer's update overlap on CPU too (a thread in the
trainer's process would share its interpreter and thread pool). Calls travel over a pipe, one at a time; each has
a deadline (TimeoutError naming it, after which the child is killed: a half-finished call leaves the pipe
unusable). An error inside the child comes back as `RolloutProcessError` with its traceback's last line; a child
that dies is reported with its exit code.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import traceback
from typing import Any

from rlvr.rollout import resolve_seeds

log = logging.getLogger("rlvr")


class RolloutProcessError(RuntimeError):
    """The rollout process failed a call (its error), died, or missed a deadline."""


def _serve(conn, cfg, threads: int, interrupt) -> None:
    """The child: build the worker, then answer (method, args) messages until "close" or the pipe closes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from rlvr.rollout.worker import RolloutWorker

        worker = RolloutWorker(cfg, threads, interrupt)
        conn.send(("ok", worker.version))
    except BaseException as err:  # noqa: BLE001
        conn.send(("error", _describe(err)))
        return
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            break
        try:
            result = getattr(worker, method)(*args)
            conn.send(("ok", result))
        except BaseException as err:  # noqa: BLE001
            conn.send(("error", _describe(err)))
        if method == "close":
            break


def _describe(err: BaseException) -> str:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last[:2000]


class RolloutProcess:
    """A rollout engine (generate / load_weights / sleep / close) served by a spawned child process.

    threads: the child's torch threads. interrupt: create the Event partial rollouts use (``interrupt()`` sets it,
    ``generate`` / ``resume`` clear it before they start)."""

    def __init__(self, cfg, threads: int, start_timeout_s: float = 600.0, partial: bool = False):
        ctx = mp.get_context("spawn")  # never fork a process that holds torch threads
        self._interrupt = ctx.Event() if partial else None
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, cfg, threads, self._interrupt), daemon=True,
                                   name="rlvr-rollout")
        self.process.start()
        child.close()
        self.version = self._answer("start", start_timeout_s)
        self.split_invariant = cfg.rollout.engine == "hf" and cfg.rollout.hf.decode == "loop"
        self.last_metrics: dict[str, float] = {}

    # -------------------------------------------------------------------------------------------- calls
    def _call(self, method: str, args: tuple, timeout_s: float | None) -> Any:
        if not self.process.is_alive():
            raise RolloutProcessError(f"the rollout process is gone (exit code {self.process.exitcode})")
        self._conn.send((method, args))
        return self._answer(method, timeout_s)

    def _answer(self, method: str, timeout_s: float | None) -> Any:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._conn.poll(0.2):
            if not self.process.is_alive():
                raise RolloutProcessError(f"the rollout process died during {method} (exit code "
                                          f"{self.process.exitcode}; out of memory?)")
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"the rollout process did not answer {method} within {timeout_s:g} s")
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            raise RolloutProcessError(f"the rollout process closed its pipe during {method} (exit code "
                                      f"{self.process.exitcode}); a script that starts training must do so under "
                                      "`if __name__ == '__main__':` (the process is spawned)") from None
        if status == "error":
            raise RolloutProcessError(f"the rollout process failed {method}: {value}")
        return value

    # -------------------------------------------------------------------------------------------- engine
    def generate(self, prompts: list[str], n: int, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, batch_size: int = 0, seeds=None) -> list:
        if temperature != 0:
            seeds = resolve_seeds(seeds, len(prompts))
        if self._interrupt is not None:
            self._interrupt.clear()
        kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                      batch_size=batch_size, seeds=seeds)
        groups, seconds, _ = self._call("generate", (prompts, n, kwargs), None)
        self.last_metrics = {"time/rollout_worker_s": seconds}
        return groups

    def resume(self, groups: list, kwargs: dict[str, Any], seeds: list[int]) -> list:
        """Continue the "interrupted" completions of ``groups`` under the weights loaded now (RolloutWorker.resume)."""
        if self._interrupt is not None:
            self._interrupt.clear()
        groups, _, _ = self._call("resume", (groups, kwargs, seeds), None)
        return groups

    def interrupt(self) -> None:
        """Stop the generation in flight at the next token (partial rollouts; a no-op without them)."""
        if self._interrupt is not None:
            self._interrupt.set()

    def load_weights(self, weights, version: int, probe_ids: list[int] | None, timeout_s: float):
        """Load ``weights`` as ``version`` within ``timeout_s`` (TimeoutError otherwise); returns the probe
        log-probs under the new weights, one tensor per engine (a list of one)."""
        answer = self._call("load_weights", (weights, version, probe_ids), timeout_s)
        self.version = version
        return [answer[1]] if probe_ids is not None else []

    def sleep(self) -> None:
        """Nothing: an asynchronous engine keeps sampling while the trainer updates."""

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self._call("close", (), 30.0)
            except (RolloutProcessError, TimeoutError, OSError, EOFError) as err:
                log.warning("rollout process: %s; killing it", err)
            self.process.join(timeout=10)  # let it exit by itself (a kill mid-exit leaks its semaphores)
        self.kill()
        self._conn.close()
