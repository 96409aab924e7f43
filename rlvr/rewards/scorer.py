"""Score a batch of completions: built-in verifiers AND user functions in a pool of worker processes.

    with RewardScorer([RewardComponentConfig("auto")], timeout_s=10, num_workers=0) as scorer:
        results = scorer.score(examples, completions, metadata_extra=[{"completion_tokens": 37}, ...])

Guarantees: ``score`` never raises for a bad completion, a bad verifier or a bad user function; every score is
a finite float.
    - a verifier that raises       -> 0, reason "error: <Type>: <message>"
    - an item running past timeout_s -> 0, reason "timeout after <timeout_s>s"; its worker is SIGKILLed and
      replaced, the rest of its chunk is re-queued (math-verify's C big-integer work cannot be interrupted
      any other way)
    - a worker that dies (segfault, ``os._exit``, OOM kill) -> 0 for the item it was running, reason
      "error: worker died (exit code -11, SIGSEGV)"; it is replaced and the run goes on
User functions (``"file.py:fn"`` components, rlvr.rewards.user) are batch functions: each one's whole batch
is ONE pool item, called in a worker that imports the file by path, under the same memory limit; its timeout
is the component's ``params.timeout_s`` (else timeout_s) and is enforced by the same hard kill. When that call
raises, hangs or kills its worker, every item of the batch scores 0 with the reason. A component with
``params: {in_process: true}`` runs in the trainer process instead (a model-based reward that needs the
trainer's GPU / objects): a thread with a timeout, no memory limit, no protection from os._exit or a segfault.
Batch rewards (rlvr.rewards.batch: ``rlpr``, ``pairwise_judge``) run in this process too, once per ``score``
call with the whole batch grouped by prompt; the model-based ones use the policy given by ``attach_policy``.

The pool (``WorkerPool``) is a handful of plain ``python -c`` subprocesses talking pickles over pipes, not
multiprocessing: no re-import of the user's ``__main__`` (no ``if __name__ == "__main__"`` guard needed), no
fork of a parent holding torch threads, and a single worker can be killed. Each worker:
    - caps its address space with RLIMIT_AS (``memory_limit_mb``, 0 = no cap), sets OMP/MKL threads to 1;
    - scores a chunk of items (many items per message to amortise IPC; ~4 chunks per worker per batch) and
      writes (item index, start time) into a 16-byte shared mmap before each item, which is how the parent
      sees which item hangs, and since when, without a message per item.
Verifiers registered outside rlvr (a user module, a test module) are imported by the workers from their
module name or file path; verifiers defined in ``__main__`` cannot be (a clear error says so).
"""

from __future__ import annotations

import atexit
import logging
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool, call_verifier
from rlvr.rewards.batch import BATCH_REWARDS, PolicyContext, ScoreBatch, call_batch_reward
from rlvr.rewards.compose import Component, combine, resolve_components
from rlvr.rewards.user import call_user_function, is_user_spec, load_user_function
from rlvr.types import Example, RewardResult

log = logging.getLogger("rlvr.rewards")

_PROGRESS = struct.Struct("dd")  # (index in chunk being scored or -1, time.monotonic() when it started)
_BUILTIN_PREFIX = "rlvr."
_ANSWER_FORMAT_VERIFIERS = ("math", "mcqa")  # = rlvr.config.ANSWER_FORMAT_VERIFIERS
Item = tuple  # (verifier name, completion, reference, metadata, params)


# ----------------------------------------------------------------------------------------------------------
# worker side


def _import_plugins(plugins: list[tuple[str, str | None]]) -> None:
    """Import modules that register extra verifiers (by name, else from their file)."""
    import importlib
    import importlib.util

    for module, path in plugins:
        if module in sys.modules:
            continue
        try:
            importlib.import_module(module)
            continue
        except ImportError:
            if not path:
                raise
        spec = importlib.util.spec_from_file_location(module, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)


def _user_batch(spec: str, completions: list, answers: list, metadata: list, params: dict) -> list[RewardResult]:
    """One user batch function call inside a worker (the parent enforces the timeout with a hard kill)."""
    try:
        fn = load_user_function(spec)
    except BaseException as err:  # noqa: BLE001
        reason = f"error: cannot load {spec}: {type(err).__name__}: {err}"[:300]
        return [RewardResult(0.0, reason=reason) for _ in completions]
    # the thread timeout is a fallback only: the parent SIGKILLs the worker at params["timeout_s"]
    timeout = float(params.get("timeout_s", 10.0))
    return call_user_function(fn, params.get("prompts", [""] * len(completions)), completions, answers, metadata,
                              2 * timeout + 5, spec)


def _died(code: int | None) -> str:
    """The reason of a dead worker's item, e.g. ``error: worker died (exit code -11, SIGSEGV)``."""
    if code is None:
        return "error: worker died"
    if code < 0:
        import signal

        try:
            return f"error: worker died (exit code {code}, {signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"error: worker died (exit code {code})"


def worker_main() -> None:
    """Entry point of a worker process: ``python -c '...worker_main()' READ_FD WRITE_FD PROGRESS_FD MEM_MB``."""
    read_fd, write_fd, progress_fd, memory_mb = (int(a) for a in sys.argv[1:5])
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    progress = mmap.mmap(progress_fd, _PROGRESS.size)
    import rlvr.rewards  # noqa: F401 - registers every built-in verifier

    outbox.send(("ready", os.getpid()))
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        chunk_id, plugins, items = msg
        try:
            _import_plugins(plugins)
            plugin_error = None
        except Exception as err:  # noqa: BLE001
            plugin_error = f"error: cannot import verifier module: {type(err).__name__}: {err}"[:300]
        results = []
        for k, (name, completion, reference, metadata, params) in enumerate(items):
            _PROGRESS.pack_into(progress, 0, float(k), time.monotonic())
            if is_user_spec(name):  # a whole user batch: completion, reference, metadata are lists
                results.append(_user_batch(name, completion, reference, metadata, params))
            elif plugin_error and name not in VERIFIERS:
                results.append(RewardResult(0.0, reason=plugin_error))
            else:
                results.append(call_verifier(name, completion, reference, metadata, params))
        _PROGRESS.pack_into(progress, 0, -1.0, 0.0)
        outbox.send((chunk_id, results))


# ----------------------------------------------------------------------------------------------------------
# parent side


class _Worker:
    """One worker subprocess, its two pipes and its progress mmap."""

    def __init__(self, memory_mb: int):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        fd, path = tempfile.mkstemp(prefix="rlvr-progress-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.unlink(path)
        os.ftruncate(fd, _PROGRESS.size)
        self.progress = mmap.mmap(fd, _PROGRESS.size)
        _PROGRESS.pack_into(self.progress, 0, -1.0, 0.0)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the rlvr package
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = "1"
        code = "from rlvr.rewards.scorer import worker_main; worker_main()"
        args = [sys.executable, "-c", code, str(to_child_r), str(from_child_w), str(fd), str(memory_mb)]
        self.proc = subprocess.Popen(args, pass_fds=(to_child_r, from_child_w, fd), env=env, stdin=subprocess.DEVNULL)
        for child_end in (to_child_r, from_child_w, fd):
            os.close(child_end)
        self.inbox = Connection(from_child_r, writable=False)
        self.outbox = Connection(to_child_w, readable=False)
        self.ready = False
        self.chunk: tuple[int, list[tuple[int, Item]]] | None = None  # (chunk id, [(task index, item)])

    def read_progress(self) -> tuple[int, float]:
        a = _PROGRESS.unpack_from(self.progress, 0)
        b = _PROGRESS.unpack_from(self.progress, 0)
        return (int(a[0]), a[1]) if a == b else (-1, 0.0)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for conn in (self.inbox, self.outbox):
            try:
                conn.close()
            except OSError:
                pass
        try:
            self.progress.close()
        except (BufferError, ValueError):
            pass

    def stop(self) -> None:
        try:
            self.outbox.send(None)
            self.proc.wait(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    """``num_workers`` verifier processes with per-item timeouts; see the module docstring."""

    def __init__(self, num_workers: int = 0, timeout_s: float = 10.0, memory_limit_mb: int = 4096):
        self.num_workers = num_workers if num_workers > 0 else (os.cpu_count() or 1)
        self.timeout_s = float(timeout_s)
        self.memory_limit_mb = int(memory_limit_mb)
        self.workers: list[_Worker] = []
        self.restarts = 0  # workers killed and replaced (timeouts + deaths), for logs and tests
        self._failed_starts = 0

    def _start(self) -> None:
        while len(self.workers) < self.num_workers:
            self.workers.append(_Worker(self.memory_limit_mb))

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.restarts += 1
        self.workers[self.workers.index(w)] = _Worker(self.memory_limit_mb)

    def run(self, items: list[Item], plugins: list[tuple[str, str | None]] = ()) -> list[RewardResult]:
        """Score ``items`` (verifier name, completion, reference, metadata, params) -> results in order."""
        results: list[RewardResult | None] = [None] * len(items)
        if not items:
            return []
        self._start()
        size = max(1, min(512, -(-len(items) // (4 * self.num_workers))))
        queue = deque()
        for chunk_id, start in enumerate(range(0, len(items), size)):
            queue.append((chunk_id, [(i, items[i]) for i in range(start, min(start + size, len(items)))]))
        next_id = len(queue)
        while queue or any(w.chunk is not None for w in self.workers):
            for w in self.workers:  # hand out work
                if w.ready and w.chunk is None and queue:
                    chunk_id, chunk = queue.popleft()
                    try:
                        w.outbox.send((chunk_id, list(plugins), [item for _, item in chunk]))
                        w.chunk = (chunk_id, chunk)
                    except (OSError, ValueError):
                        queue.appendleft((chunk_id, chunk))
                        self._replace(w)
            conns = {w.inbox: w for w in self.workers}
            for conn in wait(list(conns), timeout=0.05):
                w = conns[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    if not w.ready:  # died before "ready": an import error, not a verifier
                        self._failed_starts += 1
                        if self._failed_starts >= 3:
                            code = w.proc.wait()
                            self.close()
                            raise RuntimeError(f"reward worker failed to start 3 times (exit code {code}); "
                                               "its error is printed above") from None
                    next_id = self._lost(w, queue, results, next_id, "error: worker died")
                    continue
                if msg[0] == "ready":
                    w.ready = True
                    self._failed_starts = 0
                    continue
                chunk_id, out = msg
                if w.chunk is not None and w.chunk[0] == chunk_id:
                    for (i, _), res in zip(w.chunk[1], out):
                        results[i] = res
                    w.chunk = None
            now = time.monotonic()
            for w in list(self.workers):  # per-item deadlines
                if w.chunk is None:
                    continue
                k, t0 = w.read_progress()
                limit = self._limit(w, k)
                if k >= 0 and t0 > 0 and now - t0 > limit:
                    next_id = self._lost(w, queue, results, next_id, f"timeout after {limit:g}s", k)
                elif w.proc.poll() is not None:
                    next_id = self._lost(w, queue, results, next_id, "error: worker died", k)
        return [r if r is not None else RewardResult(0.0, reason="error: lost result") for r in results]

    def _limit(self, w: _Worker, k: int) -> float:
        """Timeout of item ``k`` of ``w``'s chunk: a user batch carries its own (params["timeout_s"])."""
        try:
            name, _, _, _, params = w.chunk[1][k][1]
        except (IndexError, TypeError, ValueError):
            return self.timeout_s
        return float(params.get("timeout_s", self.timeout_s)) if is_user_spec(name) else self.timeout_s

    def _lost(self, w: _Worker, queue: deque, results: list, next_id: int, reason: str, k: int | None = None) -> int:
        """Worker ``w`` hung or died: fail its current item, re-queue the rest of its chunk (before and after it),
        replace it."""
        if k is None:
            k = w.read_progress()[0]
        code = w.proc.poll()
        if code is None and reason.startswith("error: worker died"):
            try:  # its pipe closed first: give the exit status a moment to arrive
                code = w.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        if w.chunk is not None:
            chunk = w.chunk[1]
            k = max(k, 0)
            if reason.startswith("error: worker died"):
                reason = _died(code)
            results[chunk[k][0]] = RewardResult(0.0, reason=reason)
            # the worker sends a chunk's results at its end: the items before k are lost with it too
            rest = [item for item in chunk[:k] if results[item[0]] is None] + chunk[k + 1 :]
            if rest:
                queue.appendleft((next_id, rest))
                next_id += 1
            w.chunk = None
        log.warning("reward worker %s: %s; replacing it", w.proc.pid, reason)
        self._replace(w)
        return next_id

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []


# ----------------------------------------------------------------------------------------------------------
# the scorer


def _absolute_spec(spec: str) -> str:
    """``"rel/file.py:fn"`` -> ``"/abs/rel/file.py:fn"`` (a worker imports the file by path)."""
    path, _, fn = spec.rpartition(":")
    return f"{Path(path).expanduser().resolve()}:{fn}"


_LIVE: "weakref.WeakSet[RewardScorer]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for scorer in list(_LIVE):
        scorer.close()


class RewardScorer:
    """Weighted reward components over a batch; see rlvr.rewards.compose for how they combine.

    components:  RewardComponentConfig list (name "auto" | registered verifier | "file.py:function", weight, params)
    timeout_s:   per item for verifiers; per batch call for user functions (a user component may override it
                 with ``params: {timeout_s: ...}``; ``params: {in_process: true}`` runs it in this process)
    num_workers: verifier processes; 0 = os.cpu_count()
    memory_limit_mb: RLIMIT_AS of each worker (0 = none)
    """

    def __init__(self, components: list, timeout_s: float = 10.0, num_workers: int = 0,
                 memory_limit_mb: int = 4096):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.components: list[Component] = resolve_components(components)
        self.timeout_s = float(timeout_s)
        self.pool = WorkerPool(num_workers, timeout_s, memory_limit_mb)
        self._user_fns: dict[str, Any] = {}
        self.policy: PolicyContext | None = None
        _LIVE.add(self)

    @property
    def needs_policy(self) -> bool:
        """Whether a component (``rlpr``) scores with the policy: the trainer then calls ``attach_policy``."""
        return any(c.kind == "batch" and c.name in BATCH_REWARDS.policy_rewards for c in self.components)

    def attach_policy(self, model, tokenizer, device, add_special_tokens: bool = True) -> None:
        """Give model-based batch rewards the policy they score with (the trainer's live module: rewards see
        the weights of the step that sampled, since scoring happens before the update)."""
        self.policy = PolicyContext(model, tokenizer, device, add_special_tokens)

    # -- public ------------------------------------------------------------------------------------------

    def score(self, examples: list[Example], completions: list[str],
              metadata_extra: list[dict] | None = None) -> list[RewardResult]:
        """One combined RewardResult per completion (``examples[i]`` is the problem of ``completions[i]``)."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples for {len(completions)} completions")
        if metadata_extra is not None and len(metadata_extra) != len(completions):
            raise ValueError(f"metadata_extra has {len(metadata_extra)} items for {len(completions)} completions")
        completions = [c if isinstance(c, str) else ("" if c is None else str(c)) for c in completions]
        metadata = []
        for i, ex in enumerate(examples):
            md = dict(ex.metadata or {})
            if metadata_extra is not None:
                md.update(metadata_extra[i] or {})
            md.setdefault("verifier", ex.verifier)
            md.setdefault("question", ex.question)  # judges and rubric rewards need the question
            metadata.append(md)
        # 1) which (component, item) pairs run in the pool and which are user-function calls
        per_component: list[list[RewardResult | None]] = [[None] * len(examples) for _ in self.components]
        pool_items: list[Item] = []
        pool_slots: list[tuple[int, int]] = []
        user_calls: dict[tuple[int, str], list[int]] = {}
        batch = None
        for k, comp in enumerate(self.components):
            if comp.kind == "batch":  # the whole batch at once, in this process (rlvr.rewards.batch)
                batch = batch or ScoreBatch(list(examples), completions, metadata)
                per_component[k] = call_batch_reward(comp.name, batch, self.policy, comp.params, self.timeout_s)
                continue
            for i, ex in enumerate(examples):
                name = ex.verifier if comp.kind == "auto" else comp.name
                if comp.kind == "user" or is_user_spec(name):
                    user_calls.setdefault((k, name), []).append(i)
                elif name not in VERIFIERS:
                    per_component[k][i] = call_verifier(name, "", None, {}, {})  # the "unknown verifier" reason
                else:
                    params = comp.params
                    if comp.kind == "auto" and "answer_format" in params and name not in _ANSWER_FORMAT_VERIFIERS:
                        params = {k: v for k, v in params.items() if k != "answer_format"}  # math / mcqa only
                    pool_items.append((name, completions[i], ex.answer, metadata[i], params))
                    pool_slots.append((k, i))
        # 2) user functions: a whole batch per call, in a worker (one pool item) unless in_process: true
        plugins = self._plugins({item[0] for item in pool_items if not is_user_spec(item[0])})
        batch_slots: list[tuple[int, list[int]]] = []
        for (k, name), idx in user_calls.items():
            comp = self.components[k]
            timeout = float(comp.params.get("timeout_s", self.timeout_s)) if comp.kind == "user" else self.timeout_s
            if not (comp.kind == "user" and as_bool(comp.params.get("in_process", False))):
                spec = _absolute_spec(name)
                pool_items.append((spec, [completions[i] for i in idx], [examples[i].answer for i in idx],
                                   [metadata[i] for i in idx],
                                   {"timeout_s": timeout,
                                    "prompts": [examples[i].prompt or examples[i].question for i in idx]}))
                batch_slots.append((k, idx))
                continue
            fn = comp.fn if comp.kind == "user" else self._user_fn(name)
            if fn is None:
                out = [RewardResult(0.0, reason=f"error: cannot load {name}")] * len(idx)
            else:
                out = call_user_function(
                    fn, [examples[i].prompt or examples[i].question for i in idx], [completions[i] for i in idx],
                    [examples[i].answer for i in idx], [metadata[i] for i in idx], timeout, name)
            for i, res in zip(idx, out):
                per_component[k][i] = res
        pooled = self.pool.run(pool_items, plugins)
        for (k, i), res in zip(pool_slots, pooled):
            per_component[k][i] = res
        for (k, idx), out in zip(batch_slots, pooled[len(pool_slots):]):
            if isinstance(out, RewardResult):  # the batch call timed out or its worker died
                log.warning("user reward %s: %s; every item of the batch scores 0", self.components[k].name, out.reason)
                out = [RewardResult(0.0, reason=out.reason) for _ in idx]
            for i, res in zip(idx, out):
                per_component[k][i] = res
        return combine(self.components, per_component)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        self.pool.close()

    def __enter__(self) -> "RewardScorer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- helpers -----------------------------------------------------------------------------------------

    def _user_fn(self, spec: str) -> Any:
        if spec not in self._user_fns:
            try:
                self._user_fns[spec] = load_user_function(spec)
            except Exception as err:  # noqa: BLE001
                log.warning("cannot load user reward %s: %s", spec, err)
                self._user_fns[spec] = None
        return self._user_fns[spec]

    @staticmethod
    def _plugins(names: set[str]) -> list[tuple[str, str | None]]:
        """(module, file) of verifiers registered outside rlvr, for the workers to import."""
        plugins = []
        for name in sorted(names):
            fn = VERIFIERS.get(name)
            module = getattr(fn, "__module__", "") or ""
            if module.startswith(_BUILTIN_PREFIX) or module == "rlvr":
                continue
            if module == "__main__":
                raise ValueError(
                    f"verifier {name!r} is defined in __main__, which worker processes cannot import; "
                    "move it to a module file (or use a 'file.py:function' reward)")
            path = getattr(sys.modules.get(module), "__file__", None)
            if (module, path) not in plugins:
                plugins.append((module, path))
        return plugins
