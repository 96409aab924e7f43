"""User environments for multi-turn rollouts: ``rollout.multi_turn.env: my_env.py:MyEnv``.

    class MyEnv:
        def reset(self, example) -> str:                       # example: rlvr.types.Example
            return "first observation (may be empty)"
        def step(self, action_text: str) -> tuple[str, float, bool, dict]:
            return observation, reward, done, info

One instance per trajectory, created (``MyEnv()``, no arguments) and called in ``env_workers`` worker processes
(plain ``python -c`` subprocesses talking pickles over pipes, like the reward workers; OMP threads 1), so an
environment that hangs, crashes or leaks cannot take the trainer with it. Every call has ``timeout_s``: past
it the worker is SIGKILLed and restarted, the call fails with "timeout after Xs", and the other trajectories
that lived in that worker lose their environment ("environment lost: its worker was restarted") and end. A call
that raises or returns the wrong shape fails with the reason; a failed call ends its trajectory (finish
"env_error"), keeping the rewards it had collected. Trajectory t lives in worker t % env_workers.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path

log = logging.getLogger("rlvr.rollout")

START_TIMEOUT_S = 120.0  # a worker's start-up (python, rlvr, the environment's imports), outside call timeouts


def load_env_class(spec: str):
    """``"path/to/file.py:ClassName"`` -> the class (the file imported by path, once per process)."""
    path, _, name = spec.rpartition(":")
    path = str(Path(path).expanduser().resolve())
    module_name = "rlvr_env_" + str(abs(hash(path)))
    module = sys.modules.get(module_name)
    if module is None:
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        loader.loader.exec_module(module)
    return getattr(module, name)


def _checked_step(out) -> tuple[str, float, bool, dict]:
    if not (isinstance(out, tuple) and len(out) == 4):
        raise TypeError(f"step must return (observation, reward, done, info), got {type(out).__name__}")
    obs, reward, done, info = out
    if not isinstance(obs, str):
        raise TypeError(f"step's observation must be a str, got {type(obs).__name__}")
    reward = float(reward)
    if not math.isfinite(reward):
        raise ValueError(f"step's reward is not finite: {reward}")
    return obs, reward, bool(done), dict(info or {})


def worker_main() -> None:
    """``python -c '...worker_main()' READ_FD WRITE_FD SPEC THIS_FILE``: holds the environments of its
    trajectories (rlvr.types is imported when an Example arrives; torch only if the environment imports it)."""
    read_fd, write_fd, spec = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        cls, load_error = load_env_class(spec), ""
    except BaseException as err:  # noqa: BLE001
        cls, load_error = None, f"cannot load {spec}: {type(err).__name__}: {err}"[:300]
    envs: dict[int, object] = {}
    outbox.send(("ready", load_error))
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        for k, (op, tid, payload) in enumerate(msg):
            try:
                if load_error:
                    raise RuntimeError(load_error)
                if op == "reset":
                    envs[tid] = cls()
                    obs = envs[tid].reset(payload)
                    out = ("ok", "" if obs is None else str(obs))
                elif op == "step":
                    if tid not in envs:
                        raise RuntimeError("environment lost: its worker was restarted")
                    out = ("ok", _checked_step(envs[tid].step(payload)))
                else:  # drop
                    envs.pop(tid, None)
                    out = ("ok", None)
            except BaseException as err:  # noqa: BLE001
                out = ("error", f"{type(err).__name__}: {err}"[:300])
            outbox.send((k, out))


class _Worker:
    def __init__(self, spec: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the rlvr package
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = "1"
        # this file by path, not as rlvr.rollout.tools.env: importing the package would import torch (seconds)
        code = ("import importlib.util, sys; "
                "s = importlib.util.spec_from_file_location('rlvr_env_worker', sys.argv[4]); "
                "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.worker_main()")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(to_child_r), str(from_child_w), spec, __file__],
                                     pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.inbox = Connection(from_child_r, writable=False)
        self.outbox = Connection(to_child_w, readable=False)
        self.ready = False

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait for the worker's start-up (its imports and the environment file) outside any call's timeout."""
        if not self.ready and self.inbox.poll(timeout_s):
            try:
                self.inbox.recv()
            except (EOFError, OSError):
                pass
        self.ready = True

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        for conn in (self.inbox, self.outbox):
            conn.close()


class EnvPool:
    """``env_workers`` processes holding one environment per trajectory id; every call has ``timeout_s``."""

    def __init__(self, spec: str, num_workers: int = 1, timeout_s: float = 10.0):
        self.spec, self.timeout_s = spec, timeout_s
        self.workers = [_Worker(spec) for _ in range(num_workers)]
        self.restarts = 0

    def call(self, requests: list[tuple[str, int, object]]) -> list[tuple[str, object]]:
        """requests: [(op "reset" | "step" | "drop", trajectory id, example | action text | None)] -> one
        ("ok", value) or ("error", reason) per request, in order. Requests of different workers run in
        parallel; each request gets ``timeout_s`` from the end of the previous one in its worker."""
        results: list = [None] * len(requests)
        per_worker: dict[int, list[int]] = {}
        for i, (_, tid, _) in enumerate(requests):
            per_worker.setdefault(tid % len(self.workers), []).append(i)
        pending = {}  # worker index -> (request indices, answered count, deadline)
        for w, idx in per_worker.items():
            try:
                self.workers[w].wait_ready()
                self.workers[w].outbox.send([requests[i] for i in idx])
                pending[w] = [idx, 0, time.monotonic() + self.timeout_s]
            except OSError as err:
                self._restart(w)
                for i in idx:
                    results[i] = ("error", f"environment worker died ({err})")
        while pending:
            now = time.monotonic()
            conns = {self.workers[w].inbox: w for w in pending}
            ready = wait(list(conns), timeout=max(0.0, min(p[2] for p in pending.values()) - now))
            for conn in ready:
                w = conns[conn]
                idx, done, _ = pending[w]
                try:
                    k, out = conn.recv()
                except (EOFError, OSError):
                    code = self.workers[w].proc.poll()
                    for i in idx[done:]:
                        results[i] = ("error", f"environment worker died (exit code {code})")
                    self._restart(w)
                    del pending[w]
                    continue
                results[idx[k]] = out
                pending[w] = [idx, k + 1, time.monotonic() + self.timeout_s]
                if k + 1 == len(idx):
                    del pending[w]
            now = time.monotonic()
            for w in [w for w, p in pending.items() if p[2] <= now]:
                idx, done, _ = pending.pop(w)
                results[idx[done]] = ("error", f"timeout after {self.timeout_s:g}s")
                for i in idx[done + 1 :]:
                    results[i] = ("error", "environment lost: its worker was restarted after a timeout")
                log.warning("multi_turn.env: a call ran past %gs; worker %d restarted (%d of its calls failed)",
                            self.timeout_s, w, len(idx) - done)
                self._restart(w)
        return results

    def _restart(self, w: int) -> None:
        self.workers[w].kill()
        self.workers[w] = _Worker(self.spec)
        self.restarts += 1

    def close(self) -> None:
        for w in self.workers:
            try:
                w.outbox.send(None)
            except OSError:
                pass
            w.kill()
