"""`code`: run the completion's Python program against test cases in the sandbox.

    completion = "```python\\nprint(sum(map(int, input().split())))\\n```"
    VERIFIERS.get("code")(completion, [{"input": "1 2", "output": "3"}], {})
    # -> RewardResult(score=1.0, reason="passed 1/1 tests", ...)

Code extraction: the last fenced ```python / ```py block, else the last bare ``` block, else the ``<answer>`` body.

Test formats (``reference``, else ``metadata["tests"|"test_cases"|"test_list"|"test"|"input_output"]``; a JSON
string is decoded first):

- stdin/stdout cases: ``[{"input": "1 2\\n", "output": "3\\n"}, ...]`` or ``{"inputs": [...], "outputs": [...]}``
  (APPS/TACO). All cases run in one sandbox, each in a freshly forked child with its own input / output files
  and its own ``timeout_s`` (see ``_STDIO_HARNESS``); outputs are compared in the parent after whitespace
  normalisation: per line, runs of whitespace collapse to one space, leading/trailing blank lines are ignored.
- call-based cases: ``{"fn_name": "f", "inputs": [[1, 2], ...], "outputs": [3, ...]}``: ``f(*inputs[i])``
  (or ``Solution().f``) must equal ``outputs[i]`` (or ``outputs[i][0]`` when wrapped in a one-item list).
- assert tests: a string of ``assert f(1) == 2`` lines (MBPP), a list of such strings, or a HumanEval-style
  ``def check(candidate): assert ...`` with ``metadata["entry_point"]``; other statements (imports,
  ``METADATA = ...``, helper functions) are run as setup before the cases.

Why the comparison runs in the parent (reward hacking): the candidate and the tests share one process, so any
check made there can be subverted (an object whose ``__eq__`` always returns True, a patched ``builtins`` or
``math.isclose``, ``sys.exit(0)`` before the asserts, printing "OK"). Here the sandboxed harness only *computes*
the non-literal operands of each assert (``f(1)`` in ``assert f(1) == 2``), converts each value to plain data
with exact-type checks (``type(v) is int`` ..., so a subclass or custom object is an error, never "equal"), and
prints its ``repr`` tagged with the case index. The parent parses it with ``ast.literal_eval`` and applies the
comparison (``==``, ``<``, ``in``, ``is`` ..., or plain truthiness for ``assert x`` / ``assert not x``) itself.
The expected values never enter the sandbox, so a program that reads its own harness learns nothing to forge.
A program that exits early simply leaves cases without a result (they fail). Builtins shadowed by the
candidate are restored for the test expressions, and modules imported by the test setup are restored to
their state before the candidate ran.

Params: ``partial`` (False: 1.0 only if every case passes; True: the fraction passed), ``timeout_s`` (per
sandbox run, default 5), ``memory_mb`` (1024), ``max_cases`` (0 = all), ``stop_at_first_failure`` (default:
not partial; stdin/stdout only).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import operator
import re
import secrets
import signal
from dataclasses import dataclass
from typing import Any, Callable

from rlvr.rewards.base import VERIFIERS, as_bool
from rlvr.sandbox import SandboxResult, run_program
from rlvr.types import RewardResult

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n]*\n(.*?)```", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
PYTHON_TAGS = ("python", "py", "python3")


def extract_code(text: str, languages: tuple[str, ...] = PYTHON_TAGS) -> str | None:
    """The last fenced block tagged with one of ``languages``, else the last untagged block, else the
    ``<answer>`` body (itself stripped of a fence). None when nothing is found."""
    blocks = _FENCE.findall(text)
    tagged = [body for lang, body in blocks if lang.lower() in languages]
    if tagged:
        return tagged[-1]
    bare = [body for lang, body in blocks if not lang]
    if bare:
        return bare[-1]
    answers = _ANSWER.findall(text)
    if answers:
        body = answers[-1]
        inner = _FENCE.findall(body)
        return (inner[-1][1] if inner else body).strip("\n") or None
    return None


# ----------------------------------------------------------------------------------------------------------
# test cases


@dataclass
class _Case:
    """One function-style test: ``exprs`` are evaluated in the sandbox, ``check(values)`` runs in the parent."""

    label: str
    exprs: list[str]
    check: Callable[[list[Any]], bool]


_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


def _literal(node: ast.AST) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _case_from_assert(node: ast.Assert) -> _Case:
    """Split ``assert <test>`` into sandbox-computed operands and a parent-side check."""
    test, label = node.test, ast.unparse(node.test)[:200]
    if isinstance(test, ast.Compare) and all(type(op) in _OPS for op in test.ops):
        operands = [test.left, *test.comparators]
        slots: list[tuple[bool, Any]] = []  # (is_literal, value or index into exprs)
        exprs: list[str] = []
        for operand in operands:
            is_lit, value = _literal(operand)
            if is_lit:
                slots.append((True, value))
            else:
                slots.append((False, len(exprs)))
                exprs.append(ast.unparse(operand))
        ops = [_OPS[type(op)] for op in test.ops]

        def check(values: list[Any], slots=slots, ops=ops) -> bool:
            vals = [v if lit else values[v] for lit, v in slots]
            return all(op(a, b) for op, a, b in zip(ops, vals, vals[1:]))

        if exprs:
            return _Case(label, exprs, check)
        return _Case(label, ["True"], lambda values, c=check: c([]))  # constant assert (odd, but valid)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _Case(label, [ast.unparse(test.operand)], lambda values: not values[0])
    return _Case(label, [ast.unparse(test)], lambda values: bool(values[0]))


def _parse_assert_tests(source: str, entry_point: str | None) -> tuple[str, list[_Case], list[str]]:
    """(setup source, cases, modules imported by the setup) from MBPP / HumanEval style test code."""
    tree = ast.parse(source)
    setup: list[ast.stmt] = []
    cases: list[_Case] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assert):
            cases.append(_case_from_assert(stmt))
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "check" and stmt.args.args:
            param = stmt.args.args[0].arg
            if not entry_point:
                raise ValueError("HumanEval-style check(candidate) tests need metadata['entry_point']")
            setup.append(ast.parse(f"{param} = {entry_point}").body[0])
            for inner in stmt.body:
                (cases.append(_case_from_assert(inner)) if isinstance(inner, ast.Assert) else setup.append(inner))
        elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
              and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check"):
            continue  # the `check(entry_point)` call: we run the cases ourselves
        else:
            setup.append(stmt)
    modules = sorted({alias.name.split(".")[0] for s in ast.walk(ast.Module(setup, [])) if isinstance(s, ast.Import)
                      for alias in s.names} | {s.module.split(".")[0] for s in ast.walk(ast.Module(setup, []))
                                               if isinstance(s, ast.ImportFrom) and s.module and not s.level})
    return ast.unparse(ast.Module(setup, [])), cases, modules


def _call_cases(fn_name: str, inputs: list, outputs: list) -> list[_Case]:
    cases = []
    for i, (args, expected) in enumerate(zip(inputs, outputs)):
        args = args if isinstance(args, list) else [args]
        expr = f"({fn_name} if {fn_name!r} in globals() else Solution().{fn_name})(*{args!r})"

        def check(values: list[Any], expected=expected) -> bool:
            got = values[0]
            if isinstance(got, tuple):
                got = list(got)
            return got == expected or (isinstance(expected, list) and len(expected) == 1 and got == expected[0])

        cases.append(_Case(f"{fn_name}(*inputs[{i}])", [expr], check))
    return cases


def _load_tests(reference: Any, metadata: dict) -> Any:
    tests = reference
    if tests in (None, "", [], {}):
        for key in ("tests", "test_cases", "test_list", "test", "input_output"):
            if metadata.get(key):
                tests = metadata[key]
                break
    if isinstance(tests, dict) and not ("inputs" in tests and "outputs" in tests):
        keys = ("tests", "test_cases", "test_list", "test", "input_output")
        inner = next((tests[k] for k in keys if tests.get(k)), None)
        tests = inner if inner is not None else tests
    if isinstance(tests, str):
        stripped = tests.strip()
        if stripped[:1] in "[{":
            try:
                tests = json.loads(stripped)
            except json.JSONDecodeError:
                pass
    return tests


# ----------------------------------------------------------------------------------------------------------
# the sandboxed harness for function-style tests

# Runs inside the sandbox. Binds every builtin it needs BEFORE the candidate runs, so a candidate that patches
# builtins / modules cannot change how values are converted or reported. Writes one line per case:
#   <nonce> <index> ok <repr of [plain values]>     or    <nonce> <index> err <repr of message>
_HARNESS = r'''
import builtins as _b, os as _os, sys as _sys
def _rlvr_main(_cases, _setup, _nonce, _restore, _premods):
    _type, _repr, _len, _exec, _eval, _compile, _dict = type, repr, len, exec, eval, compile, dict
    _plain_types = (int, bool, str, type(None), bytes, complex)
    _list, _tuple, _set, _frozenset, _float, _BaseException = list, tuple, set, frozenset, float, BaseException
    _str, _enumerate, _int, _ValueError, _TypeError = str, enumerate, int, ValueError, TypeError
    _builtins = _dict(_b.__dict__)
    _write, _exit, _out = _os.write, _os._exit, _os.dup(1)
    _modules = _sys.modules

    def _emit(i, kind, obj):
        try:
            text = _repr(obj)
        except _BaseException:
            text = _repr("<unprintable>")
        _write(_out, ("\n" + _nonce + " " + _repr(i) + " " + kind + " " + text + "\n").encode("utf-8", "replace"))

    def _describe(e):
        try:
            return _type(e).__name__ + ": " + _str(e)[:300]
        except _BaseException:
            return "exception"

    def _plain(v, depth=0):
        if depth > 60:
            raise _ValueError("value nested too deeply")
        t = _type(v)
        if t in _plain_types:
            return v
        if t is _float:
            return v if v == v and v - v == 0.0 else ("__nonfinite__", _repr(v))
        if t is _list:
            return [_plain(x, depth + 1) for x in v]
        if t is _tuple:
            return _tuple(_plain(x, depth + 1) for x in v)
        if t is _set or t is _frozenset:
            return t(_plain(x, depth + 1) for x in v)
        if t is _dict:
            return {_plain(k, depth + 1): _plain(x, depth + 1) for k, x in _dict.items(v)}
        raise _TypeError("the result is not plain data (int/float/str/bool/None/bytes/list/tuple/set/dict)")

    _snap = []
    for _m in _premods:
        try:
            __import__(_m)
            _snap.append((_m, _modules[_m], _dict(_modules[_m].__dict__)))
        except _BaseException:
            pass
    with open("solution.py", encoding="utf-8") as f:
        _src = f.read()
    _ns = {"__name__": "solution", "__builtins__": _b}
    try:
        _exec(_compile(_src, "solution.py", "exec"), _ns)
    except _BaseException as e:
        _emit(-1, "err", "solution failed to load: " + _describe(e))
        _exit(0)
    for _m, _mod, _d in _snap:  # undo monkey patches of modules the tests use
        _modules[_m] = _mod
        _mod.__dict__.update(_d)
    _g = _dict(_ns)
    _g["__builtins__"] = _builtins
    for _n in _restore:
        _g[_n] = _builtins[_n]
    try:
        _exec(_compile(_setup, "tests_setup.py", "exec"), _g)
    except _BaseException as e:
        _emit(-1, "err", "test setup failed: " + _describe(e))
        _exit(0)
    for _i, _exprs in _enumerate(_cases):
        try:
            _vals = [_plain(_eval(_compile(_x, "test_" + _repr(_i), "eval"), _g)) for _x in _exprs]
        except _BaseException as e:
            _emit(_i, "err", _describe(e))
            continue
        _emit(_i, "ok", _vals)
    _exit(0)
'''


def _decode(value: Any) -> Any:
    """Undo the harness's ("__nonfinite__", "nan") encoding of non-finite floats."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "__nonfinite__" and value[1] in ("nan", "inf", "-inf"):
            return float(value[1])
        return tuple(_decode(v) for v in value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return type(value)(_decode(v) for v in value)
    return value


def _builtin_names(source: str) -> list[str]:
    import builtins

    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    return sorted(n for n in names if hasattr(builtins, n))


def _run_function_tests(code: str, setup: str, cases: list[_Case], modules: list[str],
                        p: dict) -> list[tuple[bool, str]]:
    nonce = secrets.token_hex(8)
    exprs = [c.exprs for c in cases]
    restore = _builtin_names("\n".join(x for c in cases for x in c.exprs) + "\n" + setup)
    program = _HARNESS + f"\n_rlvr_main({exprs!r}, {setup!r}, {nonce!r}, {restore!r}, {modules!r})\n"
    r = run_program(program, timeout_s=p["timeout_s"], memory_mb=p["memory_mb"],
                    max_output_bytes=p["max_output_bytes"], files={"solution.py": code})
    results: dict[int, tuple[str, str]] = {}
    conflicts: set[int] = set()
    for line in r.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] == nonce and parts[2] in ("ok", "err"):
            try:
                idx = int(parts[1])
            except ValueError:
                continue
            if idx in results and results[idx] != (parts[2], parts[3]):
                conflicts.add(idx)
            results.setdefault(idx, (parts[2], parts[3]))
    if -1 in results:
        msg = _safe_literal(results[-1][1])
        return [(False, str(msg))] * len(cases)
    outcomes = []
    for i, case in enumerate(cases):
        if i in conflicts:
            outcomes.append((False, "conflicting results printed"))
        elif i not in results:
            outcomes.append((False, _no_result_reason(r, p)))
        elif results[i][0] == "err":
            outcomes.append((False, f"runtime error: {_safe_literal(results[i][1])}"))
        else:
            values = _safe_literal(results[i][1])
            if not isinstance(values, list) or len(values) != len(case.exprs):
                outcomes.append((False, "unreadable result"))
                continue
            try:
                ok = bool(case.check([_decode(v) for v in values]))
            except Exception as err:  # noqa: BLE001 - e.g. '<' between str and int
                ok, msg = False, f"comparison failed: {type(err).__name__}"
            else:
                msg = "passed" if ok else f"wrong answer: got {results[i][1][:120]}"
            outcomes.append((ok, msg))
    return outcomes


def _safe_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _no_result_reason(r: SandboxResult, p: dict) -> str:
    if r.timed_out:
        return f"timeout after {p['timeout_s']:g}s"
    if r.killed_reason:
        return r.killed_reason.replace("_", " ")
    last = r.last_stderr_line()
    return f"no result (program exited with {r.returncode}{': ' + last if last else ''})"


# ----------------------------------------------------------------------------------------------------------
# stdin / stdout tests


def normalize_output(text: str) -> list[str]:
    """Whitespace-normalised lines: each line's whitespace runs -> one space, blank edge lines dropped."""
    lines = [" ".join(line.split()) for line in str(text).replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


# All stdin/stdout cases run in ONE sandbox: this harness forks a fresh child per case (about 1 ms instead of a
# ~10 ms interpreter start), with the case's input file as fd 0 and its own output files as fds 1 and 2, and
# kills the child's process group at the per-case timeout. The harness never runs candidate code itself; it
# prints, per case, the exit status and the SHA-256 of the whitespace-normalised output plus a short preview.
# Expected outputs (even their hashes: short answers could be brute-forced) never enter the sandbox; the
# comparison happens in the parent.
_STDIO_HARNESS = r'''
import builtins, os, select, signal, sys
try:
    from _sha256 import sha256  # the C module itself: much cheaper to import than hashlib (OpenSSL)
except ImportError:
    from hashlib import sha256
{normalize_src}
def _case(i, src_code, timeout):
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            os.setpgid(0, 0)
            for fd, name, flags in ((0, "in_%d.txt" % i, os.O_RDONLY), (1, "out_%d.txt" % i, os.O_WRONLY | os.O_CREAT),
                                    (2, "err_%d.txt" % i, os.O_WRONLY | os.O_CREAT)):
                os.dup2(os.open(name, flags, 0o600), fd)
            sys.stdin = open(0, "r", closefd=False)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            builtins.exit = builtins.quit = sys.exit
            try:
                exec(src_code, {{"__name__": "__main__", "__file__": "solution.py", "__builtins__": builtins}})
                rc = 0
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    rc = e.code or 0
                else:  # sys.exit("message"): printed to stderr, status 1
                    print(e.code, file=sys.stderr)
                    rc = 1
            except BaseException:
                import traceback
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc & 0xFF if isinstance(rc, int) else 1)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], timeout)
    timed_out = not ready
    if timed_out:
        os.killpg(pid, signal.SIGKILL)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the case left running
    except OSError:
        pass
    status = os.waitpid(pid, 0)[1]
    os.close(pidfd)
    rc = os.waitstatus_to_exitcode(status)
    with open("out_%d.txt" % i, "rb") as f:
        out = f.read().decode("utf-8", "replace")
    with open("err_%d.txt" % i, "rb") as f:
        err_lines = [ln for ln in f.read()[-2000:].decode("utf-8", "replace").splitlines() if ln.strip()]
    norm = normalize_output(out)
    digest = sha256("\n".join(norm).encode()).hexdigest()
    last_err = err_lines[-1].strip()[:200] if err_lines else ""
    line = [i, "timeout" if timed_out else rc, digest, "\\n".join(norm)[:80], last_err]
    os.write(1, ("{nonce} " + repr(line) + "\n").encode())
    return timed_out or rc != 0

def _main(n, timeout, stop):
    with open("solution.py", "rb") as f:
        try:
            src_code = compile(f.read(), "solution.py", "exec")
        except SyntaxError as e:
            os.write(1, ("{nonce} " + repr([-1, "syntax error: %s (line %s)" % (e.msg, e.lineno)]) + "\n").encode())
            return
    for i in range(n):
        if _case(i, src_code, timeout) and stop:
            break

_main({n}, {timeout}, {stop})
'''


@functools.lru_cache(maxsize=1)
def _normalize_source() -> str:
    return inspect.getsource(normalize_output)


def _run_stdio_tests(code: str, cases: list[tuple[Any, Any]], p: dict) -> list[tuple[bool, str]]:
    files = {"solution.py": code}
    expected = []
    for i, (stdin, want) in enumerate(cases):
        files[f"in_{i}.txt"] = "\n".join(map(str, stdin)) if isinstance(stdin, list) else str(stdin)
        want = "\n".join(map(str, want)) if isinstance(want, list) else str(want)
        expected.append(normalize_output(want))
    nonce = secrets.token_hex(8)
    harness = _STDIO_HARNESS.format(normalize_src=_normalize_source(), nonce=nonce, n=len(cases),
                                    timeout=float(p["timeout_s"]), stop=bool(p["stop"]))
    total_timeout = len(cases) * float(p["timeout_s"]) + 5.0
    r = run_program(harness, timeout_s=total_timeout, memory_mb=p["memory_mb"], files=files,
                    max_output_bytes=max(p["max_output_bytes"], 400 * len(cases) + 4096),
                    max_file_mb=max(1, p["max_output_bytes"] >> 20))
    reports: dict[int, list] = {}
    for line in r.stdout.splitlines():
        if line.startswith(nonce + " "):
            rep = _safe_literal(line[len(nonce) + 1:])
            if isinstance(rep, list) and rep and isinstance(rep[0], int):
                reports.setdefault(rep[0], rep)
    if -1 in reports:
        return [(False, str(reports[-1][1]))] * len(cases)
    outcomes: list[tuple[bool, str]] = []
    for i, want in enumerate(expected):
        rep = reports.get(i)
        if rep is None or len(rep) != 5:
            why = _no_result_reason(r, {"timeout_s": total_timeout}) if not p["stop"] or not outcomes else \
                "not run (an earlier case failed)"
            outcomes.append((False, why))
        elif rep[1] == "timeout":
            outcomes.append((False, f"timeout after {p['timeout_s']:g}s"))
        elif rep[1] == -signal.SIGXFSZ or "[Errno 27] File too large" in str(rep[4]):  # Python ignores SIGXFSZ
            outcomes.append((False, f"output larger than {max(1, p['max_output_bytes'] >> 20)} MB"))
        elif rep[1] != 0:
            outcomes.append((False, f"runtime error (exit {rep[1]}): {rep[4]}"))
        elif rep[2] != hashlib.sha256("\n".join(want).encode()).hexdigest():
            outcomes.append((False, f"wrong answer: expected {_preview(want)!r}, got {rep[3]!r}"))
        else:
            outcomes.append((True, "passed"))
    if p["stop"]:
        first = next((k for k, (ok, _) in enumerate(outcomes) if not ok), None)
        if first is not None:
            outcomes[first + 1:] = [(False, "not run (an earlier case failed)")] * (len(outcomes) - first - 1)
    return outcomes


def _preview(lines: list[str]) -> str:
    return "\\n".join(lines)[:80]


# ----------------------------------------------------------------------------------------------------------
# the verifier


@VERIFIERS.register("code")
def code(completion: str, reference: Any, metadata: dict, *, partial: bool = False, timeout_s: float = 5.0,
         memory_mb: int = 1024, max_output_bytes: int = 1 << 20, max_cases: int = 0,
         stop_at_first_failure: bool | None = None, **_: Any) -> RewardResult:
    """Python program vs. test cases (stdin/stdout or asserts) in the sandbox; 1 if all pass (or the fraction)."""
    partial = as_bool(partial)
    p = {"timeout_s": float(timeout_s), "memory_mb": int(memory_mb), "max_output_bytes": int(max_output_bytes),
         "stop": (not partial) if stop_at_first_failure is None else as_bool(stop_at_first_failure)}
    program = extract_code(completion)
    if program is None or not program.strip():
        return RewardResult(0.0, reason="no ```python block or <answer> found")
    tests = _load_tests(reference, metadata or {})
    kind, labels = "", []
    try:
        if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
            if tests.get("fn_name"):
                kind, cases = "call", _call_cases(str(tests["fn_name"]), list(tests["inputs"]), list(tests["outputs"]))
            else:
                kind, cases = "stdio", list(zip(tests["inputs"], tests["outputs"]))
        elif isinstance(tests, list) and tests and all(isinstance(t, dict) and "input" in t for t in tests):
            kind, cases = "stdio", [(t["input"], t.get("output", t.get("expected_output", ""))) for t in tests]
        elif isinstance(tests, (str, list)) and tests:
            source = tests if isinstance(tests, str) else "\n".join(map(str, tests))
            setup_extra = str((metadata or {}).get("test_setup_code", "") or "")
            entry = (metadata or {}).get("entry_point")
            setup, cases, modules = _parse_assert_tests(setup_extra + "\n" + source, entry)
            kind = "assert"
        else:
            return RewardResult(0.0, reason="no test cases in reference/metadata", extracted=program)
    except (ValueError, SyntaxError, TypeError) as err:
        return RewardResult(0.0, reason=f"bad test cases: {err}"[:300], extracted=program)
    if max_cases and int(max_cases) > 0:
        cases = cases[: int(max_cases)]
    if not cases:
        return RewardResult(0.0, reason="no test cases in reference/metadata", extracted=program)

    if kind == "stdio":
        outcomes = _run_stdio_tests(program, cases, p)
        labels = [f"input {str(c[0])[:40]!r}" for c in cases]
    else:
        if kind == "call":
            setup, modules = "", []
        outcomes = _run_function_tests(program, setup, cases, modules, p)
        labels = [c.label for c in cases]
    passed = sum(ok for ok, _ in outcomes)
    n = len(outcomes)
    score = passed / n if partial else float(passed == n)
    reason = f"passed {passed}/{n} tests"
    first_fail = next((i for i, (ok, _) in enumerate(outcomes) if not ok), None)
    if first_fail is not None:
        reason += f"; case {first_fail} ({labels[first_fail][:80]}): {outcomes[first_fail][1]}"
    details = {"kind": kind, "passed": passed, "total": n,
               "cases": [{"ok": ok, "why": why[:200]} for ok, why in outcomes[:50]]}
    return RewardResult(score, reason=reason[:500], extracted=program, details=details)
