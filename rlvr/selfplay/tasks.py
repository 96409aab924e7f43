"""Absolute Zero's three task types on triplets (program p, input i, output o = p(i)): prompts and parsing.

    deduction  the solver sees p and i and predicts o;        proposer: a new (p, i) from K reference triplets
    abduction  the solver sees p and o and predicts an input;  proposer: the same, for a program worth inverting
    induction  the solver sees half of the (i, o) pairs and a message and writes p, checked on the hidden half;
               proposer: sees a program from the buffer and proposes N new inputs and the message

(Zhao et al. 2025, "Absolute Zero: Reinforced Self-play Reasoning with Zero Data", arXiv:2505.03335, §3.2.)
Every prompt puts the task's parts in tags (``<program>``, ``<input>``, ``<output>``, ``<message>``) and every
completion is ``<think>...</think><answer>...</answer>``; the proposer's answer holds tags again. ``style``:
"full" words the instructions for an instruct or base LLM (the paper's prompts, shortened); "compact" is the
same tags under a one-line header, for the tiny character-level model of the CPU demo (rlvr/demo/selfplay.py),
which cannot afford long prompts. Parsers accept both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TASK_TYPES = ("deduction", "abduction", "induction")
ROLES = ("propose", "solve")
STYLES = ("full", "compact")


@dataclass
class Task:
    """A verified task in a buffer.

    deduction / abduction: ``inputs`` = [i], ``outputs`` = [o] (the repr of p(i), from execution).
    induction: ``inputs`` / ``outputs`` the N pairs (the first ``len // 2`` shown, the rest hidden) and ``message``.
    ``step``: the training step that proposed it (0 = the seed or the pre-training buffer fill).
    """

    program: str
    inputs: list[str]
    outputs: list[str]
    message: str = ""
    step: int = 0

    def shown(self) -> list[tuple[str, str]]:
        half = max(1, len(self.inputs) // 2)
        return list(zip(self.inputs[:half], self.outputs[:half]))

    def hidden(self) -> list[tuple[str, str]]:
        half = max(1, len(self.inputs) // 2)
        return list(zip(self.inputs[half:], self.outputs[half:])) or self.shown()

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "inputs": list(self.inputs), "outputs": list(self.outputs),
                "message": self.message, "step": self.step}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        return cls(str(d["program"]), [str(x) for x in d["inputs"]], [str(x) for x in d["outputs"]],
                   str(d.get("message", "")), int(d.get("step", 0)))


IDENTITY = Task("def f(a):\n    return a", ["'Hello World'"], ["'Hello World'"])  # the paper's seed triplet

_FULL_SOLVE = {
    "deduction": "Given the Python function f and an input, predict the output of f(input). Reason step by step in "
                 "<think> </think>, then give the output as a Python literal in <answer> </answer>.",
    "abduction": "Given the Python function f and an output, find an input such that f(input) equals the output (any "
                 "such input counts). Reason in <think> </think>, then give the arguments of the call in call syntax "
                 "(e.g. 3, 'abc') in <answer> </answer>.",
    "induction": "Given example inputs and outputs of a hidden Python function and a message about it, write the "
                 "function. It must be named f and give the right output on further inputs. Reason in "
                 "<think> </think>, then give only the code in <answer> </answer>.",
}
_FULL_PROPOSE = {
    "deduction": "Design a new Python function f and one input for it, different from the references below, so that "
                 "predicting its output takes reasoning. f must be deterministic, use only the standard library "
                 "without importing random, time, os or sys, and return plain data. Reason in <think> </think>, then "
                 "answer <answer><program>the code</program><input>the arguments</input></answer>.",
    "abduction": "Design a new Python function f and one input for it, different from the references below, so that "
                 "finding an input from the output takes reasoning. f must be deterministic, use only the standard "
                 "library without importing random, time, os or sys, and return plain data. Reason in "
                 "<think> </think>, then answer <answer><program>the code</program><input>the arguments</input>"
                 "</answer>.",
    "induction": "Here is a Python function f. Propose {n} different inputs for it that together reveal what it "
                 "does, and a short message that hints at it without giving the code. Reason in <think> </think>, "
                 "then answer <answer><input>...</input> (one per input) <message>...</message></answer>.",
}


def _block(tag: str, text: str) -> str:
    return f"<{tag}>{text}</{tag}>"


def reference_block(refs: list[Task]) -> str:
    return "\n".join(_block("program", t.program) + _block("input", t.inputs[0]) + _block("output", t.outputs[0])
                     for t in refs)


def solve_prompt(task_type: str, task: Task, style: str = "full") -> str:
    """The solver's prompt for ``task`` (the raw text; the run's prompt.template / chat template wraps it)."""
    if task_type == "deduction":
        body = _block("program", task.program) + "\n" + _block("input", task.inputs[0])
    elif task_type == "abduction":
        body = _block("program", task.program) + "\n" + _block("output", task.outputs[0])
    elif task_type == "induction":
        pairs = "\n".join(_block("input", i) + _block("output", o) for i, o in task.shown())
        body = pairs + "\n" + _block("message", task.message)
    else:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {TASK_TYPES}")
    head = f"solve {task_type}:" if style == "compact" else _FULL_SOLVE[task_type]
    return f"{head}\n{body}"


def propose_prompt(task_type: str, refs: list[Task], style: str = "full", n_inputs: int = 10) -> str:
    """The proposer's prompt: K reference triplets (deduction, abduction) or one program (induction, refs[0])."""
    if task_type == "induction":
        body = _block("program", refs[0].program)
        head = f"propose induction {n_inputs}:" if style == "compact" else _FULL_PROPOSE["induction"].format(n=n_inputs)
    elif task_type in ("deduction", "abduction"):
        body = reference_block(refs)
        head = f"propose {task_type}:" if style == "compact" else _FULL_PROPOSE[task_type]
    else:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {TASK_TYPES}")
    return f"{head}\n{body}"


# ----------------------------------------------------------------------------------------------------------
# parsing completions

_ANSWER = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.S)
_ANSWER_ONLY = re.compile(r"<answer>(.*?)</answer>", re.S)
_FENCE = re.compile(r"^\s*```(?:python|py)?\s*\n?(.*?)\n?```\s*$", re.S)


def answer_of(completion: str, require_think: bool = True) -> str | None:
    """The text of the completion's last <answer> span (after a <think> span when ``require_think``), or None
    when the format is broken (Absolute Zero's format check)."""
    spans = (_ANSWER if require_think else _ANSWER_ONLY).findall(completion)
    if not spans:
        return None
    last = spans[-1]
    return (last[1] if require_think else last).strip()


def _tags(text: str, tag: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)]


def strip_fence(code: str) -> str:
    m = _FENCE.match(code)
    return (m.group(1) if m else code).strip("\n")


@dataclass
class Proposal:
    """A parsed proposer answer: ``program`` and ``inputs`` (deduction / abduction: one), ``message`` (induction);
    ``error``: why it could not be parsed ("" when it could)."""

    program: str = ""
    inputs: list[str] = field(default_factory=list)
    message: str = ""
    error: str = ""


def parse_proposal(task_type: str, answer: str | None, *, program: str = "", n_inputs: int = 10) -> Proposal:
    """A proposer's <answer> text -> Proposal. Induction keeps the given ``program`` (the buffer's) and takes up
    to ``n_inputs`` distinct inputs, at least 2 so that one pair can be shown and one hidden."""
    if answer is None:
        return Proposal(error="no <think>...</think><answer>...</answer>")
    if task_type == "induction":
        inputs = list(dict.fromkeys(x for x in _tags(answer, "input") if x))[:n_inputs]
        messages = _tags(answer, "message")
        if len(inputs) < 2:
            return Proposal(program=program, inputs=inputs, error="fewer than 2 distinct <input> tags")
        if not messages or not messages[0]:
            return Proposal(program=program, inputs=inputs, error="no <message>")
        return Proposal(program=program, inputs=inputs, message=messages[0])
    programs, inputs = _tags(answer, "program"), _tags(answer, "input")
    if not programs or not inputs:
        return Proposal(error="no <program> and <input> in the answer")
    return Proposal(program=strip_fence(programs[0]), inputs=[inputs[0]])
