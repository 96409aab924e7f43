"""Absolute Zero's rewards: the solver's check, the proposer's learnability reward, the format composite.

(Zhao et al. 2025, arXiv:2505.03335, §3.3.4-3.3.5 and eq. 4-6; the authors' code: absolute_zero_reasoner/rewards.)

    solver      r_solve = 1[answer correct]:  deduction  eval(answer) == o           (values, not strings)
                                              abduction  f(answer) == o               (any preimage counts)
                                              induction  answer(i) == o for every hidden pair (all must pass)
    proposer    r_propose = 1 - s  when 0 < s < 1, else 0;  s = mean r_solve over n_solve solver rollouts of the
                proposed task (a task nobody or everybody solves teaches nothing)
    composite   R = -1    when the completion's format is broken or the proposal is invalid
                R = r     when the format is fine and r > 0
                R = -0.5  when the format is fine and r = 0
"""

from __future__ import annotations

from typing import Any

from rlvr.rewards.base import VERIFIERS
from rlvr.selfplay.executor import Executor, parse_args, same_value, static_check
from rlvr.selfplay.tasks import Task, answer_of, strip_fence
from rlvr.types import RewardResult


def proposer_reward(solve_rate: float) -> float:
    """r_propose = 1 - s for 0 < s < 1, else 0 (eq. 4)."""
    return 1.0 - solve_rate if 0.0 < solve_rate < 1.0 else 0.0


def composite_reward(format_ok: bool, valid: bool, r: float) -> float:
    """-1 (broken format or invalid proposal), r (r > 0) or -0.5 (r = 0): eq. 6."""
    if not format_ok or not valid:
        return -1.0
    return r if r > 0 else -0.5


def check_solutions(task_types: list[str], tasks: list[Task], completions: list[str], executor: Executor, *,
                    require_think: bool = True) -> list[tuple[bool | None, str]]:
    """Per completion (correct, reason): correct is None when the format is broken (no answer span). Abduction
    and induction answers run in the sandbox, all of them in one process; an induction answer that fails the
    static check (forbidden imports ...) is wrong with that reason."""
    out: list[tuple[bool | None, str]] = [(None, "")] * len(completions)
    jobs: list[tuple[str, list[str]]] = []
    owners: list[int] = []
    for k, (kind, task, text) in enumerate(zip(task_types, tasks, completions)):
        answer = answer_of(text, require_think)
        if answer is None:
            out[k] = (None, "format: no <think>...</think><answer>...</answer>")
        elif kind == "deduction":
            ok = same_value(answer, task.outputs[0])
            out[k] = (ok, "correct" if ok else "wrong output")
        elif kind == "abduction":
            try:
                parse_args(answer)
            except ValueError as err:
                out[k] = (False, f"wrong: {err}")
                continue
            jobs.append((task.program, [answer]))
            owners.append(k)
        elif kind == "induction":
            program = strip_fence(answer)
            reason, detail = static_check(program, forbidden_modules=executor.forbidden_modules,
                                          forbidden_names=executor.forbidden_names,
                                          max_program_chars=executor.max_program_chars)
            if reason:
                out[k] = (False, f"wrong: {reason}: {detail}")
                continue
            jobs.append((program, [i for i, _ in task.hidden()]))
            owners.append(k)
        else:
            raise ValueError(f"unknown task type {kind!r}")
    for k, results in zip(owners, executor.run(jobs)):
        task, kind = tasks[k], task_types[k]
        expected = [task.outputs[0]] if kind == "abduction" else [o for _, o in task.hidden()]
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            out[k] = (False, f"wrong: {bad.status}: {bad.error}"[:200])
        else:
            ok = all(same_value(r.value, o) for r, o in zip(results, expected))
            out[k] = (ok, "correct" if ok else "wrong output")
    return out


def solver_result(correct: bool | None, reason: str, composite: bool = True) -> RewardResult:
    """The solver's RewardResult: composite (1 / -0.5 / -1) or plain 1/0; components["correct"] is 1/0."""
    r = 1.0 if correct else 0.0
    score = composite_reward(correct is not None, True, r) if composite else r
    return RewardResult(score, reason=reason, components={"correct": r})


@VERIFIERS.register("selfplay")
def selfplay_verifier(completion: str, reference: Any, metadata: dict, require_think: bool = True,
                      call_timeout_s: float = 2.0, **_: Any) -> RewardResult:
    """1.0 when the completion solves the self-play task in ``metadata`` (keys ``task_type`` and ``task``: a
    Task.to_dict()), else 0.0: the solver check above, for held-out sets and `rlvr eval` (rows written by
    rlvr.demo.selfplay or by hand)."""
    kind, task = metadata.get("task_type"), metadata.get("task")
    if kind not in ("deduction", "abduction", "induction") or not isinstance(task, dict):
        return RewardResult(0.0, reason="error: the row has no selfplay task_type / task metadata")
    ok, reason = check_solutions([kind], [Task.from_dict(task)], [completion],
                                 Executor(call_timeout_s=call_timeout_s), require_think=require_think)[0]
    return RewardResult(1.0 if ok else 0.0, reason=reason or "wrong", extracted=answer_of(completion, require_think))
