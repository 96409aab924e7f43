"""The sandbox for untrusted programs, shared by its callers: the code and Verilog rewards (rlvr.rewards.code,
rlvr.rewards.verilog) and the multi-turn ``python`` tool (rlvr.rollout.tools.python).

    from rlvr.sandbox import run_program
    r = run_program("print(input()[::-1])", "abc\\n", timeout_s=5)
    r.returncode, r.stdout          # (0, "cba\\n")

The implementation and its guarantees: rlvr/sandbox/process.py (docs/rewards_code.md, "What the sandbox
guarantees"). ``rlvr.rewards.sandbox`` is kept as an alias of rlvr.sandbox.process for older imports.
"""

from rlvr.sandbox.process import Capabilities, SandboxResult, capabilities, run_command, run_program, sandbox_python

__all__ = ["Capabilities", "SandboxResult", "capabilities", "run_command", "run_program", "sandbox_python"]
