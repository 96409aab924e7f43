"""Absolute Zero's code executor: run proposed programs on inputs in the sandbox, and validate proposals.

    from rlvr.selfplay.executor import Executor
    ex = Executor()
    ex.run([("def f(a):\\n    return a + 1", ["1", "41"])])     # [[CallResult(ok=True, value='2'), ... '42']]
    ex.validate(["def f(a):\\n    return a[::-1]"], [["'Hello'"]]) # [Validation(ok=True, outputs=["'olleH'"])]

A *program* is Python source that defines a function ``f`` at top level; an *input* is the text of the arguments
of one call in call syntax (``"3, [1, 2]"`` is ``f(3, [1, 2])``), every argument a Python literal. Outputs are
``repr`` strings of plain data (None, bool, int, finite float, str, and lists / tuples / dicts / sets of those),
so that two values are compared as values (``ast.literal_eval``), never as free text.

Many calls run in one sandboxed process (rlvr.sandbox: no network, no visible files, limits on memory, processes
and output) under a small harness: each call has its own time limit (``call_timeout_s``, SIGALRM), its prints go to
a capped buffer, an exception is that call's error, and a child left by ``os.fork`` exits at once. When the
process as a whole dies (memory, a killed fork bomb, a limit), each program is rerun in a process of its own, so
one hostile program costs only its own result.

Validation (Absolute Zero, Zhao et al. 2025, arXiv:2505.03335, §3.3.3; ``validate``) of a program and its inputs,
in this order, each failure a counted reason:
  ``syntax`` it does not parse / defines no top-level ``f``;  ``too_long`` over ``max_program_chars``;
  ``forbidden`` it imports a module on ``forbidden_modules`` or names a builtin on ``forbidden_names``;
  ``bad_input`` an input is not call-syntax literals;  ``error`` / ``timeout`` / ``prints`` (output over the cap)
  / ``not_plain`` (a result that is not plain data) on the first run;  ``nondeterministic`` a second run, in a
  fresh process (so ``hash()`` of a str, ``id()`` and set order of strings differ), gives another output.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field

from rlvr.sandbox import run_program

# The paper's list (the authors' code, absolute_zero_reasoner/utils/code_utils) plus what would let a program
# reach outside its call: the process, the interpreter, the clock, randomness, files, signals, the builtins.
FORBIDDEN_MODULES = (
    "random", "time", "datetime", "os", "sys", "subprocess", "threading", "multiprocessing", "hashlib", "hmac",
    "logging", "calendar", "signal", "socket", "shutil", "pathlib", "io", "builtins", "importlib", "ctypes",
    "gc", "inspect", "pickle", "tempfile", "asyncio", "concurrent", "secrets", "uuid", "resource", "platform",
)
FORBIDDEN_NAMES = ("__import__", "eval", "exec", "compile", "open", "input", "breakpoint", "globals", "locals",
                   "vars", "exit", "quit", "help", "memoryview")

REJECTIONS = ("format", "syntax", "too_long", "forbidden", "bad_input", "error", "timeout", "prints",
              "not_plain", "nondeterministic", "duplicate")

# Runs inside the sandbox: stdin is JSON {"jobs": [[program, [input, ...]], ...], "timeout": s, "max_print": n,
# "max_value": n}; stdout is one JSON line: per job, per input, [status, value-or-error].
_HARNESS = r'''
import ast, builtins, json, math, os, signal, sys
spec = json.loads(sys.stdin.read())
PID = os.getpid()
real_stdout = sys.stdout

class Timeout(BaseException):
    pass

class Prints(BaseException):
    pass

class Capped:
    def __init__(self, cap):
        self.left = cap
    def write(self, s):
        self.left -= len(s)
        if self.left < 0:
            raise Prints()
        return len(s)
    def flush(self):
        pass

def on_alarm(signum, frame):
    raise Timeout()

signal.signal(signal.SIGALRM, on_alarm)

def plain(v, depth=0):
    if depth > 50:
        return False
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        return all(plain(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(plain(k, depth + 1) and plain(x, depth + 1) for k, x in v.items())
    return False

def call(program, args_text):
    try:
        args = ast.literal_eval("(" + args_text + ",)") if args_text.strip() else ()
    except Exception as e:
        return ["bad_input", type(e).__name__]
    env = {"__builtins__": dict(builtins.__dict__), "__name__": "__selfplay__"}
    sys.stdout = Capped(spec["max_print"])
    signal.setitimer(signal.ITIMER_REAL, spec["timeout"])
    try:
        exec(program, env)
        value = env["f"](*args)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if not plain(value):
            return ["not_plain", type(value).__name__]
        text = repr(value)
        if len(text) > spec["max_value"]:
            return ["prints", "output of %d characters" % len(text)]
        if ast.literal_eval(text) != value:
            return ["not_plain", "repr does not read back"]
        return ["ok", text]
    except Timeout:
        return ["timeout", "over %.1f s" % spec["timeout"]]
    except Prints:
        return ["prints", "printed over %d characters" % spec["max_print"]]
    except RecursionError:
        return ["error", "RecursionError"]
    except BaseException as e:
        return ["error", (type(e).__name__ + ": " + str(e))[:200]]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout = real_stdout
        if os.getpid() != PID:
            os._exit(0)

out = [[call(p, a) for a in inputs] for p, inputs in spec["jobs"]]
real_stdout.write(json.dumps(out) + "\n")
'''


@dataclass
class CallResult:
    """One call f(input): ``status`` "ok" (``value`` is the result's repr) or a rejection reason (``error`` says
    what happened)."""

    status: str
    value: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Validation:
    """A proposal's verdict: ok, or the first failed check's ``reason`` (one of REJECTIONS) and ``detail``;
    ``outputs``: the repr of f(input) per input when ok."""

    ok: bool
    reason: str = ""
    detail: str = ""
    outputs: list[str] = field(default_factory=list)


def parse_value(text: str | None):
    """A Python literal from its text; raises ValueError when it is not one."""
    if text is None:
        raise ValueError("no value")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise ValueError(f"not a Python literal: {text[:80]!r}") from err


def parse_args(text: str) -> tuple:
    """The arguments of one call from their call-syntax text: ``"3, 'a'"`` -> (3, 'a')."""
    return parse_value("(" + text + ",)") if text.strip() else ()


def same_value(a: str | None, b: str | None) -> bool:
    """Whether two literal texts hold equal values (``"[1,2]"`` and ``"[1, 2]"``; ``"1"`` and ``"1.0"`` too,
    as Python's == says)."""
    try:
        return parse_value(a) == parse_value(b)
    except ValueError:
        return False


def static_check(program: str, *, forbidden_modules=FORBIDDEN_MODULES, forbidden_names=FORBIDDEN_NAMES,
                 max_program_chars: int = 2000) -> tuple[str, str]:
    """("", "") when the source may run; else (reason, detail): syntax, too_long or forbidden. Pure (no run)."""
    if len(program) > max_program_chars:
        return "too_long", f"{len(program)} characters > {max_program_chars}"
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        return "syntax", f"{type(err).__name__}: {err}"[:200]
    if not any(isinstance(node, ast.FunctionDef) and node.name == "f" for node in tree.body):
        return "syntax", "no top-level function f"
    banned_modules, banned_names = set(forbidden_modules), set(forbidden_names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        for module in modules:
            if module.split(".")[0] in banned_modules:
                return "forbidden", f"imports {module}"
        if isinstance(node, ast.Name) and node.id in banned_names:
            return "forbidden", f"uses {node.id}"
        if isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__"):
            return "forbidden", f"uses the dunder attribute {node.attr}"
    return "", ""


class Executor:
    """Runs programs on inputs in the sandbox, many calls per process (see the module docstring).

    call_timeout_s: per call; memory_mb: the process's address space; max_print / max_value: characters a call
    may print / its result's repr may have; forbidden_modules / forbidden_names: the static check's lists.
    """

    def __init__(self, *, call_timeout_s: float = 2.0, memory_mb: int = 1024, max_print: int = 10_000,
                 max_value: int = 10_000, max_program_chars: int = 2000, forbidden_modules=FORBIDDEN_MODULES,
                 forbidden_names=FORBIDDEN_NAMES):
        self.call_timeout_s, self.memory_mb = call_timeout_s, memory_mb
        self.max_print, self.max_value, self.max_program_chars = max_print, max_value, max_program_chars
        self.forbidden_modules, self.forbidden_names = tuple(forbidden_modules), tuple(forbidden_names)

    def _spawn(self, jobs: list[tuple[str, list[str]]]) -> list[list[CallResult]] | None:
        calls = sum(len(inputs) for _, inputs in jobs)
        spec = {"jobs": jobs, "timeout": self.call_timeout_s, "max_print": self.max_print,
                "max_value": self.max_value}
        res = run_program(_HARNESS, json.dumps(spec), timeout_s=min(5.0 + self.call_timeout_s * calls, 120.0),
                          memory_mb=self.memory_mb, max_output_bytes=max(1 << 20, 4 * self.max_value * calls))
        if not res.ok:
            return None
        try:
            raw = json.loads(res.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return None
        return [[CallResult(s, v if s == "ok" else None, "" if s == "ok" else str(v)) for s, v in job] for job in raw]

    def run(self, jobs: list[tuple[str, list[str]]]) -> list[list[CallResult]]:
        """[(program, [input, ...]), ...] -> per job, per input, a CallResult. Programs are run as given (call
        ``static_check`` first for untrusted ones). One process for all; a job whose process died is rerun
        alone, and a job that still kills its process gets ``error`` (or ``timeout``) on every input."""
        if not jobs:
            return []
        results = self._spawn(jobs)
        if results is not None:
            return results
        out = []
        for program, inputs in jobs:  # the batch died: find the culprit by running each job alone
            alone = self._spawn([(program, inputs)]) if len(jobs) > 1 else None
            out.append(alone[0] if alone is not None else [CallResult("error", None, "the program killed its process "
                                                                  "(memory, processes or output limit)")] * len(inputs))
        return out

    def validate(self, programs: list[str], inputs: list[list[str]]) -> list[Validation]:
        """Each program with its inputs through every check of the module docstring (two sandboxed runs)."""
        verdicts: list[Validation | None] = []
        runnable: list[int] = []
        for k, (program, args) in enumerate(zip(programs, inputs)):
            reason, detail = static_check(program, forbidden_modules=self.forbidden_modules,
                                          forbidden_names=self.forbidden_names,
                                          max_program_chars=self.max_program_chars)
            if not reason:
                for text in args:
                    try:
                        parse_args(text)
                    except ValueError as err:
                        reason, detail = "bad_input", str(err)
                        break
            if not reason and not args:
                reason, detail = "bad_input", "no input"
            verdicts.append(Validation(False, reason, detail) if reason else None)
            if not reason:
                runnable.append(k)
        jobs = [(programs[k], list(inputs[k])) for k in runnable]
        first, second = self.run(jobs), self.run(jobs)
        for k, a, b in zip(runnable, first, second):
            bad = next((r for r in a if not r.ok), None) or next((r for r in b if not r.ok), None)
            if bad is not None:
                verdicts[k] = Validation(False, bad.status, bad.error)
            elif [r.value for r in a] != [r.value for r in b]:
                verdicts[k] = Validation(False, "nondeterministic", "two runs gave different outputs")
            else:
                verdicts[k] = Validation(True, outputs=[r.value for r in a])
        return verdicts  # type: ignore[return-value]
