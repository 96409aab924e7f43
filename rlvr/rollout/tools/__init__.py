"""Tools a multi-turn rollout (rlvr.rollout.multi_turn) can call, by registered name.

    box = ToolBox([{"name": "calculator"}, {"name": "python", "params": {"persistent": True}}], timeout_s=10)
    box.run([(state, "calculator", {"expression": "47+8"})])     # -> [ToolOutcome("55", "ok", ...)]

A tool is a class registered in ``TOOLS``, built with its config ``params`` as keyword arguments, with
``name``, ``description``, ``parameters`` (a JSON schema of its arguments: what the chat template's ``tools=``
shows the model) and ``__call__(arguments: dict, state: dict) -> str``. ``state`` is the trajectory's own dict
for that tool (a persistent python session keeps its cells there); a tool raises `ToolError` (or anything) to
report a bad call. `ToolBox.run` never raises: an unknown tool, bad arguments, an exception, a call running
past ``timeout_s`` (from its start) each become an outcome with status "unknown_tool" / "error" / "timeout"
and a short reason as the text the model reads. Calls of one turn run in parallel threads (the python tool waits on sandboxed
processes). A timed-out call's thread cannot be killed: it is abandoned (the python tool's own sandbox timeout,
below the tool timeout, is what actually stops a hung program).
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from typing import Any

from rlvr.registry import Registry

TOOLS = Registry("tool")
STATUSES = ("ok", "error", "timeout", "unknown_tool")


class ToolError(Exception):
    """A bad call (bad arguments, an expression that cannot be evaluated): its message is the observation."""


@dataclass
class ToolOutcome:
    """text: what the model reads (a result or an error message); status: one of STATUSES; seconds: wall time."""

    text: str
    status: str = "ok"
    seconds: float = 0.0


def tool_spec(entry: Any) -> tuple[str, dict]:
    """A ``rollout.multi_turn.tools`` entry -> (name, params): ``"calculator"`` or ``{name, params}``."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and set(entry) <= {"name", "params"}:
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError(f"tool {entry['name']!r}: params must be a mapping, got {params!r}")
        return entry["name"], dict(params)
    raise ValueError(f"a tool is a name or {{name: ..., params: {{...}}}}, got {entry!r}")


def make_tool(entry: Any):
    """The tool instance for one config entry (unknown names list the registered ones)."""
    _register_builtins()
    name, params = tool_spec(entry)
    try:
        return TOOLS.get(name)(**params)
    except TypeError as err:
        raise ValueError(f"tool {name!r}: bad params {params}: {err}") from None


def schema(tool) -> dict:
    """The OpenAI-style function schema the chat templates' ``tools=`` take."""
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}


class ToolBox:
    """The configured tools, run with a per-call timeout in a small thread pool."""

    def __init__(self, entries: list, timeout_s: float = 10.0, max_workers: int = 8):
        self.tools = {}
        for entry in entries:
            tool = make_tool(entry)
            self.tools[tool.name] = tool
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rlvr-tool")

    def schemas(self) -> list[dict]:
        return [schema(t) for t in self.tools.values()]

    def run(self, calls: list[tuple[dict, str, Any]]) -> list[ToolOutcome]:
        """calls: [(the trajectory's tool-state dict, tool name, arguments)] -> one outcome per call, in order."""
        futures: list[Any] = []
        for state, name, arguments in calls:
            tool = self.tools.get(name)
            if tool is None:
                futures.append(ToolOutcome(f"error: unknown tool {name!r}; tools: {', '.join(self.tools)}",
                                           "unknown_tool"))
            elif not isinstance(arguments, dict):
                futures.append(ToolOutcome(f"error: arguments must be a JSON object, got {arguments!r}"[:300],
                                           "error"))
            else:
                started: dict = {}
                futures.append((self._pool.submit(_timed, tool, arguments, state.setdefault(name, {}), started),
                                started))
        return [f if isinstance(f, ToolOutcome) else self._wait(*f) for f in futures]

    def _wait(self, future, started: dict) -> ToolOutcome:
        """The call's outcome, or a timeout ``timeout_s`` after it STARTED (time queued behind other calls of
        the turn is not charged to it)."""
        while True:
            start = started.get("t")
            wait_s = 0.05 if start is None else start + self.timeout_s - time.monotonic()
            try:
                return future.result(timeout=max(0.0, wait_s))
            except concurrent.futures.TimeoutError:
                if start is not None:
                    return ToolOutcome(f"error: the tool call timed out after {self.timeout_s:g}s", "timeout",
                                       self.timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(tool, arguments: dict, state: dict, started: dict) -> ToolOutcome:
    started["t"] = time.monotonic()
    start = time.perf_counter()
    try:
        text = tool(arguments, state)
        status = "ok"
        if not isinstance(text, str):
            text = str(text)
    except ToolError as err:
        text, status = f"error: {err}", "error"
    except Exception as err:  # noqa: BLE001 - a tool's bug is an observation, never a crash
        text, status = f"error: {type(err).__name__}: {err}", "error"
    return ToolOutcome(text, status, time.perf_counter() - start)


def _register_builtins() -> None:
    """Import the built-in tools (registered on import; search pulls bm25s only when built)."""
    from rlvr.rollout.tools import calculator, python, search  # noqa: F401
