"""`verilog`: simulate the completion's module and a golden module on the same random stimulus; 1 if identical.

    VERIFIERS.get("verilog")(completion, golden_source, {"top": "top_module"}, vectors=200, seed=0)

Method (in the spirit of VerilogEval / RTLLM equivalence-by-simulation):

1. Extract the candidate: the last fenced ```verilog / ```systemverilog / ```sv / ```v block, else an untagged
   block, else the ``<answer>`` body. The golden source is ``reference`` or ``metadata["golden"]``.
2. Parse the top module's ports (ANSI ``module m(input [3:0] a, output reg y);`` and non-ANSI declarations;
   widths may use parameters / simple arithmetic / $clog2). The top is ``metadata["top"]``, else a module
   called ``top_module``, else the last module of the golden source. The candidate must declare the same
   ports (name, direction, width); its module may have another name if it defines only one.
3. Generate one testbench per design from the same seeded vectors. Combinational designs: set the inputs, wait
   5 time units, ``$display`` every output in binary. Clocked designs (an input named clk/clock/clk_i/i_clk):
   the clock toggles every 5 units, a reset input (rst/reset/rst_n/resetn/... ; active low when named *n) is
   asserted for the first ``reset_cycles`` cycles, inputs change while the clock is low, outputs are
   sampled just before the next cycle.
4. Compile and run each design separately with Icarus Verilog (``iverilog -g2012``, ``vvp``) inside the
   sandbox (a Verilog ``$fopen`` can write files; an ``always`` without delay never ends). Separate runs mean
   the two designs may reuse module names freely.
5. Compare the printed outputs line by line in Python: a bit where the golden design shows x/z is a don't-care;
   everywhere else the candidate must match exactly (an x where the golden has 0/1 is a mismatch).
   Score 1 when every cycle matches, else 0 (``partial=True``: the fraction of matching cycles).

Icarus is an apt package (``apt-get install iverilog``); ``check_available()`` raises a clear error without it.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import random
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool
from rlvr.rewards.code import extract_code
from rlvr.sandbox import run_command
from rlvr.types import RewardResult

VERILOG_TAGS = ("verilog", "systemverilog", "sv", "v")
CLOCK_NAMES = ("clk", "clock", "clk_i", "i_clk", "clk_in")
RESET_NAMES = ("rst", "reset", "rst_n", "rstn", "reset_n", "resetn", "areset", "arst", "arst_n", "aresetn",
               "rst_i", "i_rst", "nrst", "nreset")
_COMPILE_FAILED = "RLVR_COMPILE_FAILED"
_TB = "rlvr_tb"  # the testbench module (a name a design will not use)
_TAG = "@rlvr"  # prefix of the testbench's trace lines


def check_available() -> None:
    """Raise RuntimeError naming the fix when Icarus Verilog (iverilog + vvp) is not installed."""
    missing = [b for b in ("iverilog", "vvp") if shutil.which(b, path="/usr/local/bin:/usr/bin:/bin") is None]
    if missing:
        raise RuntimeError(f"the 'verilog' verifier needs Icarus Verilog ({', '.join(missing)} not found): "
                           "install it with `apt-get install iverilog` (or `brew install icarus-verilog`)")


# ----------------------------------------------------------------------------------------------------------
# parsing


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # input | output | inout
    width: int


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", src)


_MODULE = re.compile(r"\bmodule\s+([A-Za-z_]\w*)")
_DECL = re.compile(r"\b(input|output|inout)\b([^;]*);")
_RANGE = re.compile(r"\[([^:\]]+):([^\]]+)\]")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
           ast.Div: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift}


_BASES = {"d": 10, "h": 16, "b": 2, "o": 8}


def _clog2(x: int) -> int:
    return max(0, (int(x) - 1).bit_length())


def _const(expr: str, params: dict[str, int]) -> int:
    """Evaluate a Verilog constant expression (numbers, parameters, + - * / % ** << >>, $clog2)."""
    text = expr.strip().replace("$clog2", "clog2")
    text = re.sub(r"(\d*)'[sS]?([dDhHbBoO])([0-9a-fA-F_xXzZ]+)",
                  lambda m: str(int(m.group(3).replace("_", ""), _BASES[m.group(2).lower()])),
                  text)

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in params:
            return params[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "clog2":
            return _clog2(ev(node.args[0]))
        raise ValueError(f"cannot evaluate constant expression {expr!r}")

    return ev(ast.parse(text, mode="eval"))


def _parameters(text: str) -> list[tuple[str, str]]:
    """(name, value text) of every ``parameter`` / ``localparam`` assignment, in order; handles
    ``parameter A = 1, B = $clog2(A)`` lists in headers and bodies."""
    found = []
    for m in re.finditer(r"\b(?:parameter|localparam)\b", text):
        i, depth, item = m.end(), 0, []
        while i < len(text):
            ch = text[i]
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    break
                depth -= 1
            if depth == 0 and ch in ",;":
                found.append("".join(item))
                item = []
                if ch == ";" or re.match(r"\s*(?:parameter|localparam)\b", text[i + 1:]):
                    break
            else:
                item.append(ch)
            i += 1
        found.append("".join(item))
    out = []
    for item in found:
        a = re.match(r"\s*(?:(?:integer|int|signed|unsigned|logic|reg)\s+|\[[^\]]*\]\s*)*([A-Za-z_]\w*)\s*=\s*(.+)",
                     item, re.DOTALL)
        if a:
            out.append((a.group(1), a.group(2).strip()))
    return out


def _balanced(src: str, start: int) -> int:
    """Index just past the ')' matching the '(' at ``start``."""
    depth = 0
    for i in range(start, len(src)):
        if src[i] == "(":
            depth += 1
        elif src[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced parentheses in module header")


def module_names(src: str) -> list[str]:
    return _MODULE.findall(strip_comments(src))


def parse_ports(src: str, top: str) -> list[Port]:
    """The ports of module ``top`` in declaration order. Raises ValueError when they cannot be parsed."""
    src = strip_comments(src)
    m = re.search(rf"\bmodule\s+{re.escape(top)}\b", src)
    if not m:
        raise ValueError(f"module {top!r} not found")
    end = src.find("endmodule", m.end())
    body_all = src[m.end(): end if end >= 0 else len(src)]
    pos = 0
    params: dict[str, int] = {}
    header_params = ""
    stripped = body_all.lstrip()
    pos = len(body_all) - len(stripped)
    if stripped.startswith("#"):
        open_at = body_all.index("(", pos)
        close = _balanced(body_all, open_at)
        header_params = body_all[open_at + 1: close - 1]
        pos = close
    open_at = body_all.find("(", pos)
    semi = body_all.find(";", pos)
    if 0 <= open_at < (semi if semi >= 0 else len(body_all)):
        close = _balanced(body_all, open_at)
        port_list, body = body_all[open_at + 1: close - 1], body_all[close:]
    else:
        port_list, body = "", body_all
    for name, value in _parameters(header_params + ";" + body):
        try:
            params[name] = _const(value, params)
        except (ValueError, SyntaxError, ZeroDivisionError):
            pass

    def width_of(spec: str) -> int:
        r = _RANGE.search(spec)
        return abs(_const(r.group(1), params) - _const(r.group(2), params)) + 1 if r else 1

    def names_of(spec: str) -> list[str]:
        spec = _RANGE.sub(" ", spec)
        spec = re.sub(r"=[^,]*", "", spec)  # output reg q = 0
        words = [w for w in re.split(r"[\s,]+", spec) if w]
        kw = {"wire", "reg", "logic", "signed", "unsigned", "var", "tri", "integer", "bit"}
        return [w for w in words if w not in kw and re.fullmatch(r"[A-Za-z_]\w*", w)]

    ports: list[Port] = []
    if re.search(r"\b(input|output|inout)\b", port_list):  # ANSI header
        direction, width = "", 1
        for item in _split_top_level(port_list):
            d = re.match(r"\s*(input|output|inout)\b(.*)", item, re.DOTALL)
            if d:
                direction, rest = d.group(1), d.group(2)
                width = width_of(rest)
            else:
                rest = item
                if _RANGE.search(rest):
                    width = width_of(rest)
            for n in names_of(rest):
                ports.append(Port(n, direction, width))
    else:  # non-ANSI: names in the header, directions in the body
        order = names_of(port_list)
        found: dict[str, Port] = {}
        for direction, rest in _DECL.findall(body):
            w = width_of(rest)
            for n in names_of(rest):
                found[n] = Port(n, direction, w)
        missing = [n for n in order if n not in found]
        if missing:
            raise ValueError(f"no direction declared for port(s) {missing}")
        ports = [found[n] for n in order]
    if not ports:
        raise ValueError(f"module {top!r} has no ports")
    return ports


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


# ----------------------------------------------------------------------------------------------------------
# testbench


def make_testbench(top: str, ports: list[Port], vectors: int, seed: int, reset_cycles: int = 2) -> str:
    """A self-contained ``module tb`` driving ``top`` with seeded random inputs, printing outputs each step."""
    inputs = [p for p in ports if p.direction == "input"]
    outputs = [p for p in ports if p.direction == "output"]
    clock = next((p for p in inputs if p.name.lower() in CLOCK_NAMES and p.width == 1), None)
    reset = next((p for p in inputs if p.name.lower() in RESET_NAMES and p.width == 1), None)
    active_low = reset is not None and reset.name.lower().endswith("n")
    driven = [p for p in inputs if p is not clock and p is not reset]
    rng = random.Random(seed)

    def decl(p: Port, kind: str) -> str:
        rng_txt = f"[{p.width - 1}:0] " if p.width > 1 else ""
        return f"  {kind} {rng_txt}{p.name};"

    lines = ["`timescale 1ns/1ps", f"module {_TB};"]
    lines += [decl(p, "reg") for p in inputs] + [decl(p, "wire") for p in outputs]
    lines.append(f"  {top} dut(" + ", ".join(f".{p.name}({p.name})" for p in ports) + ");")
    fmt = " ".join("%b" for _ in outputs)
    display = f'$display("{_TAG} %0d {fmt}", step, {", ".join(p.name for p in outputs)});' if outputs else \
        f'$display("{_TAG} %0d", step);'
    lines.append("  integer step;")
    if clock is not None:
        lines.append(f"  always #5 {clock.name} = ~{clock.name};")
    lines.append("  initial begin")
    if clock is not None:
        lines.append(f"    {clock.name} = 0;")
    lines.append("    #1;")
    total = vectors + (reset_cycles if clock is not None and reset is not None else 0)
    for step in range(total):
        stmts = [f"step = {step};"]
        if reset is not None:
            asserted = step < reset_cycles if clock is not None else step < 1
            level = (0 if asserted else 1) if active_low else (1 if asserted else 0)
            stmts.append(f"{reset.name} = 1'b{level};")
        for p in driven:
            stmts.append(f"{p.name} = {p.width}'h{rng.getrandbits(p.width):x};")
        if clock is not None:
            stmts += ["#8;", display, "#2;"]
        else:
            stmts += ["#5;", display]
        lines.append("    " + " ".join(stmts))
    lines += ["    $finish;", "  end", "endmodule", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# simulation + comparison


_golden_cache: OrderedDict[str, tuple[bool, str]] = OrderedDict()
_cache_lock = threading.Lock()


def simulate(design: str, testbench: str, *, timeout_s: float, memory_mb: int) -> tuple[bool, str]:
    """(ok, stdout or error text) of compiling + running ``design`` with ``testbench`` in the sandbox."""
    script = (f"iverilog -g2012 -o sim.vvp -s {_TB} tb.v design.v || {{ echo {_COMPILE_FAILED} >&2; exit 3; }}; "
              "exec vvp -n sim.vvp")
    r = run_command(["/bin/sh", "-c", script], timeout_s=timeout_s, memory_mb=memory_mb, max_procs=16,
                    max_output_bytes=4 << 20, files={"design.v": design, "tb.v": testbench})
    if _COMPILE_FAILED in r.stderr:
        errs = [ln for ln in r.stderr.splitlines() if ln.strip() and _COMPILE_FAILED not in ln]
        return False, "compile error: " + (errs[0].strip()[:200] if errs else "iverilog failed")
    if r.timed_out:
        return False, f"simulation timeout after {timeout_s:g}s"
    if r.killed_reason:
        return False, f"simulation stopped: {r.killed_reason}"
    if r.returncode != 0:
        return False, f"simulation failed (exit {r.returncode}): {r.last_stderr_line()}"
    return True, r.stdout


def _golden_run(design: str, testbench: str, *, timeout_s: float, memory_mb: int) -> tuple[bool, str]:
    key = hashlib.sha256((design + "\0" + testbench).encode()).hexdigest()
    with _cache_lock:
        if key in _golden_cache:
            _golden_cache.move_to_end(key)
            return _golden_cache[key]
    out = simulate(design, testbench, timeout_s=timeout_s, memory_mb=memory_mb)
    if out[0]:
        with _cache_lock:
            _golden_cache[key] = out
            while len(_golden_cache) > 128:
                _golden_cache.popitem(last=False)
    return out


def _trace(stdout: str) -> dict[int, list[str] | None]:
    """{step: output values} from the testbench's tagged lines; None for a step printed twice differently
    (a design that $displays look-alike lines cannot overwrite the real ones)."""
    rows: dict[int, list[str] | None] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == _TAG and parts[1].isdigit():
            step = int(parts[1])
            rows[step] = parts[2:] if step not in rows or rows[step] == parts[2:] else None
    return rows


def bits_match(golden: str, candidate: str) -> bool:
    """Bitwise: x/z in the golden value is a don't-care; elsewhere the bits must be equal."""
    if len(golden) != len(candidate):
        return False
    return all(g in "xXzZ" or g == c for g, c in zip(golden, candidate))


@VERIFIERS.register("verilog")
def verilog(completion: str, reference: Any, metadata: dict, *, vectors: int = 200, seed: int = 0,
            reset_cycles: int = 2, timeout_s: float = 20.0, memory_mb: int = 2048, partial: bool = False,
            **_: Any) -> RewardResult:
    """Candidate Verilog vs. a golden module under seeded random stimulus (Icarus); 1 if outputs always match."""
    check_available()
    metadata = metadata or {}
    golden = reference if isinstance(reference, str) and "module" in reference else metadata.get("golden")
    if not isinstance(golden, str) or "module" not in golden:
        return RewardResult(0.0, reason="no golden Verilog module in reference or metadata['golden']")
    cand = extract_code(completion, VERILOG_TAGS)
    if not cand or "module" not in cand:
        return RewardResult(0.0, reason="no ```verilog block or <answer> with a module found", extracted=cand)
    golden_modules = module_names(golden)
    top = metadata.get("top") or ("top_module" if "top_module" in golden_modules else golden_modules[-1])
    cand_modules = module_names(cand)
    cand_top = top if top in cand_modules else (cand_modules[0] if len(cand_modules) == 1 else None)
    if cand_top is None:
        return RewardResult(0.0, reason=f"candidate defines no module {top!r}", extracted=cand)
    try:
        gold_ports = parse_ports(golden, top)
    except (ValueError, SyntaxError, ZeroDivisionError) as err:
        return RewardResult(0.0, reason=f"cannot parse golden ports: {err}"[:300], extracted=cand)
    try:
        cand_ports = parse_ports(cand, cand_top)
    except (ValueError, SyntaxError, ZeroDivisionError) as err:
        return RewardResult(0.0, reason=f"cannot parse candidate ports: {err}"[:300], extracted=cand)
    if sorted(gold_ports, key=lambda p: p.name) != sorted(cand_ports, key=lambda p: p.name):
        want = ", ".join(f"{p.direction} [{p.width}] {p.name}" for p in gold_ports)
        got = ", ".join(f"{p.direction} [{p.width}] {p.name}" for p in cand_ports)
        return RewardResult(0.0, reason=f"port mismatch: expected ({want}), got ({got})"[:300], extracted=cand)
    if any(p.direction == "inout" for p in gold_ports):
        return RewardResult(0.0, reason="inout ports are not supported", extracted=cand)

    n, sd = int(vectors), int(seed)
    ok, gold_out = _golden_run(golden, make_testbench(top, gold_ports, n, sd, int(reset_cycles)),
                               timeout_s=float(timeout_s), memory_mb=int(memory_mb))
    if not ok:
        return RewardResult(0.0, reason=f"golden design failed: {gold_out}"[:300], extracted=cand)
    ok, cand_out = simulate(cand, make_testbench(cand_top, gold_ports, n, sd, int(reset_cycles)),
                            timeout_s=float(timeout_s), memory_mb=int(memory_mb))
    if not ok:
        return RewardResult(0.0, reason=cand_out[:300], extracted=cand)
    gold_rows, cand_rows = _trace(gold_out), _trace(cand_out)
    names = [p.name for p in gold_ports if p.direction == "output"]
    mismatches = []
    for step, gvals in gold_rows.items():
        if gvals is None:  # cannot happen with a sane golden design; never blame the candidate for it
            continue
        cvals = cand_rows.get(step)
        if cvals is None or len(cvals) != len(gvals) or not all(map(bits_match, gvals, cvals)):
            mismatches.append(step)
    total = len(gold_rows)
    if total == 0:
        return RewardResult(0.0, reason="golden simulation printed nothing", extracted=cand)
    score = (total - len(mismatches)) / total if as_bool(partial) else float(not mismatches)
    details = {"steps": total, "mismatches": len(mismatches), "top": top}
    if not mismatches:
        return RewardResult(score, reason=f"outputs match on all {total} steps", extracted=cand, details=details)
    first = mismatches[0]
    got = cand_rows.get(first)
    diff = ", ".join(f"{nm}: expected {g} got {c}" for nm, g, c in zip(names, gold_rows[first] or [], got)
                     if not bits_match(g, c)) if got else "no output (or conflicting lines)"
    reason = f"mismatch on {len(mismatches)}/{total} steps; first at step {first}: {diff}"
    return RewardResult(score, reason=reason[:300], extracted=cand, details=details)
