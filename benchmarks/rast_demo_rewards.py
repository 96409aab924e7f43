"""A reference-free, deliberately shallow verifier for the demo task: the reward of best_of_n / weighted_majority in
benchmarks/rast_demo.py (component name ``benchmarks/rast_demo_rewards.py:last_step_check``).

It checks only the last step of the worked solution: "<think>... 50+9=59</think><answer>59</answer>" scores 1 when
that step applies the question's last operation (+9), its arithmetic is right (50+9 = 59) and the answer copies
its result. It never sees the reference answer, and a carry dropped in an earlier step goes unnoticed: an
imperfect judge, between the oracle (best_of_n by exact_match, which equals pass@n) and no verifier at all.
"""

from __future__ import annotations

import re

_STEP = re.compile(r"(\d+)([+-])(\d+)=(\d+)")
_OPS = re.compile(r"([+-])(\d+)")
_ANSWER = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def last_step_check(prompts: list[str], completions: list[str], answers: list, metadata: list[dict]) -> list[dict]:
    out = []
    for prompt, completion in zip(prompts, completions):
        question = prompt.strip().splitlines()[0] if prompt.strip() else ""
        ops = _OPS.findall(question[2:])  # after the 2-digit first operand
        think = completion.split("</think>")[0]
        steps = _STEP.findall(think)
        answer = _ANSWER.search(completion)
        if not (ops and steps and answer):
            out.append({"score": 0.0, "reason": "no step or no answer"})
            continue
        a, op, b, c = steps[-1]
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        ok = (op, b) == ops[-1] and value == int(c) and int(answer.group(1)) == int(c)
        out.append({"score": float(ok), "reason": "last step consistent" if ok else "last step wrong",
                    "extracted": answer.group(1)})
    return out
