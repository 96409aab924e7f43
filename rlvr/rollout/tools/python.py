"""The ``python`` tool: run model-written code in the sandbox (rlvr.sandbox) and return its output.

    PythonTool()({"code": "print(6*7)"}, state)              # -> "42\\n"
    PythonTool(persistent=True): later calls of a trajectory see the names earlier calls defined

Every call is one fresh sandboxed process with the sandbox's limits (``timeout_s`` wall clock, ``memory_mb``,
an output cap of ``max_output_bytes``; the standard library only unless ``site_packages``). The observation is
stdout, then stderr (a traceback) when non-empty, then "[exit code N]" / "[killed: timeout after Xs]" when the
program did not end normally; an empty output reads "[no output]". ``persistent`` (per trajectory, in ``state``): the trajectory's earlier cells that ran without
error are re-run first, their output discarded (a marker line separates it), so names, imports and functions
carry over. Deviation from a live interpreter: the earlier cells run again, so their side effects and their
time repeat, and randomness is drawn afresh.
"""

from __future__ import annotations

from rlvr.rollout.tools import TOOLS, ToolError

_MARK = "\n__rlvr_cell_output_starts__\n"


@TOOLS.register("python", doc="run Python code in the sandbox (fresh per call, or persistent per trajectory)")
class PythonTool:
    name = "python"
    description = "Run Python code and read what it prints (stdout, then stderr)."
    parameters = {"type": "object", "properties": {"code": {"type": "string", "description": "Python source"}},
                  "required": ["code"]}

    def __init__(self, persistent: bool = False, timeout_s: float = 5.0, memory_mb: int = 1024,
                 max_output_bytes: int = 65536, site_packages: bool = False):
        self.persistent, self.timeout_s = bool(persistent), float(timeout_s)
        # the sandbox's default is the standard library only (-S); site_packages lets code import numpy, sympy ...
        self.python_args = ("-I",) if site_packages else ("-I", "-S")
        self.memory_mb, self.max_output_bytes = int(memory_mb), int(max_output_bytes)

    def __call__(self, arguments: dict, state: dict) -> str:
        from rlvr.sandbox import run_program

        code = arguments.get("code")
        if not isinstance(code, str):
            raise ToolError('python takes {"code": "<python source>"}')
        cells = state.setdefault("cells", []) if self.persistent else []
        program = code
        if cells:  # earlier cells first, their output cut off at the marker
            program = "\n".join(cells) + f"\nprint({_MARK!r}, end='')\n" + code
        r = run_program(program, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                        max_output_bytes=self.max_output_bytes, python_args=self.python_args)
        stdout = r.stdout.split(_MARK, 1)[1] if cells and _MARK in r.stdout else r.stdout
        parts = [stdout] if stdout else []
        if r.stderr:
            parts.append(r.stderr)
        if r.timed_out or r.killed_reason:
            parts.append(f"[killed: {r.killed_reason or 'timeout'} after {self.timeout_s:g}s]"
                         if r.timed_out else f"[killed: {r.killed_reason}]")
        elif r.returncode != 0:
            parts.append(f"[exit code {r.returncode}]")
        elif self.persistent:
            cells.append(code)
        return "".join(p if p.endswith("\n") else p + "\n" for p in parts) if parts else "[no output]"
