"""User reward functions loaded from a file: component name ``"path/to/file.py:function"``.

The ONE signature (sync or ``async def``), called once per batch, in a reward worker process (the scorer, see
rlvr.rewards.scorer; ``params: {in_process: true}`` calls it in the trainer process instead):

    def my_reward(prompts: list[str], completions: list[str], answers: list, metadata: list[dict]
                  ) -> list[float | dict | None]:
        return [1.0 if a in c else 0.0 for c, a in zip(completions, answers)]

Each returned item is a number (the score), a dict ``{"score": float, "reason": str, "extracted": str}``
("reason" and "extracted" optional), or None (score 0, reason "returned None").
If the function raises, returns the wrong number of items, returns a non-finite score or a bad item, or runs
past its timeout, EVERY item of the batch scores 0 with the reason, and a warning is logged: training goes on.
The timeout is enforced from a daemon thread (async functions via ``asyncio.wait_for``); a hung sync function
keeps its thread, which cannot be killed, but no longer blocks training.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from rlvr.rewards.base import finite
from rlvr.types import RewardResult

log = logging.getLogger("rlvr.rewards")


def is_user_spec(name: str) -> bool:
    """True for ``"file.py:function"`` component names."""
    path, sep, fn = name.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(fn)


def load_module_from_file(path: str | Path) -> Any:
    """Import a .py file by path (once per process; it lands in ``sys.modules`` under a stable unique name)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise FileNotFoundError(f"reward file not found: {path}")
    mod_name = f"rlvr_user_{p.stem}_{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, p)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def load_user_function(spec: str) -> Callable:
    """``"path/to/file.py:function"`` -> the function (clear errors for a missing file or name)."""
    if not is_user_spec(spec):
        raise ValueError(f"a user reward is 'path/to/file.py:function', got {spec!r}")
    path, _, name = spec.rpartition(":")
    module = load_module_from_file(path)
    fn = getattr(module, name, None)
    if not callable(fn):
        choices = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise AttributeError(f"{path} has no function {name!r}; it defines: {', '.join(choices) or 'nothing'}")
    return fn


def _convert(item: Any) -> RewardResult:
    """One returned item -> RewardResult; raises ValueError for a non-finite or malformed item."""
    if item is None:
        return RewardResult(0.0, reason="returned None")
    if isinstance(item, dict):
        if "score" not in item:
            raise ValueError(f"dict item without 'score': {item!r}"[:200])
        score = finite(item["score"])
        if score is None:
            raise ValueError(f"non-finite or non-numeric score {item['score']!r}")
        extracted = item.get("extracted")
        return RewardResult(score, reason=str(item.get("reason", "")), extracted=None if extracted is None else str(extracted))
    score = finite(item)
    if score is None:
        raise ValueError(f"non-finite or non-numeric score {item!r}"[:200])
    return RewardResult(score, reason="")


def _failed(n: int, reason: str, spec: str) -> list[RewardResult]:
    log.warning("user reward %s: %s; every item of the batch scores 0", spec, reason)
    return [RewardResult(0.0, reason=reason) for _ in range(n)]


def call_user_function(fn: Callable, prompts: list[str], completions: list[str], answers: list,
                       metadata: list[dict], timeout_s: float, spec: str = "user reward") -> list[RewardResult]:
    """Call ``fn`` on the batch with a timeout; never raises (failures -> every item 0 with the reason)."""
    n = len(completions)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            if inspect.iscoroutinefunction(fn):
                box["out"] = asyncio.run(asyncio.wait_for(fn(prompts, completions, answers, metadata), timeout_s))
            else:
                out = fn(prompts, completions, answers, metadata)
                if inspect.isawaitable(out):  # a sync wrapper around a coroutine
                    async def wait(aw: Any = out) -> Any:
                        return await asyncio.wait_for(aw, timeout_s)
                    out = asyncio.run(wait())
                box["out"] = out
        except asyncio.TimeoutError:
            box["timeout"] = True
        except BaseException as err:  # noqa: BLE001 - a user bug must not stop training
            box["error"] = err

    thread = threading.Thread(target=target, name=f"rlvr-user-reward-{spec}", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.05)
    if thread.is_alive() or box.get("timeout"):
        return _failed(n, f"timeout after {timeout_s:g}s", spec)
    if "error" in box:
        err = box["error"]
        if isinstance(err, MemoryError):  # usually the worker's address-space limit: say which knob that is
            return _failed(n, "error: MemoryError (out of memory; in a worker the limit is reward.memory_limit_mb)",
                           spec)
        return _failed(n, f"error: {type(err).__name__}: {err}"[:300], spec)
    out = box.get("out")
    if not isinstance(out, (list, tuple)):
        return _failed(n, f"error: returned {type(out).__name__}, expected a list of {n} items", spec)
    if len(out) != n:
        return _failed(n, f"error: returned {len(out)} items for {n} completions", spec)
    try:
        return [_convert(item) for item in out]
    except ValueError as err:
        return _failed(n, f"error: {err}", spec)
