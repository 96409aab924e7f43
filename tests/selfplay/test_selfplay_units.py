"""Absolute Zero pieces against hand-computed values: parsing, validation (hostile programs), checks, rewards,
buffers and TRR++ advantages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvr.algorithms.advantages import grpo
from rlvr.selfplay.buffer import TaskBuffers
from rlvr.selfplay.executor import Executor, parse_args, same_value, static_check
from rlvr.selfplay.rewards import check_solutions, composite_reward, proposer_reward, selfplay_verifier
from rlvr.selfplay.tasks import IDENTITY, Task, answer_of, parse_proposal, propose_prompt, solve_prompt
from rlvr.trainer.batch import group_ids_for
from rlvr.types import Example


@pytest.fixture(scope="module")
def executor():
    return Executor(call_timeout_s=1.0, memory_mb=512)


# ---------------------------------------------------------------------------------------------- parsing


def test_answer_of_needs_think_then_answer_and_takes_the_last():
    assert answer_of("<think>x</think><answer> 5 </answer>") == "5"
    assert answer_of("<think>a</think><answer>1</answer> <think>b</think>\n<answer>2</answer>") == "2"
    assert answer_of("<answer>5</answer>") is None
    assert answer_of("<answer>5</answer>", require_think=False) == "5"
    assert answer_of("<think>no answer</think>") is None


def test_parse_proposal_each_type():
    p = parse_proposal("deduction", "<program>```python\ndef f(a):\n    return a*2\n```</program><input>3</input>")
    assert (p.program, p.inputs, p.error) == ("def f(a):\n    return a*2", ["3"], "")
    assert parse_proposal("abduction", "<program>def f(a): return a</program>").error
    assert parse_proposal("deduction", None).error
    ind = parse_proposal("induction", "<input>1</input><input>1</input><input>'a'</input><message>m</message>",
                         program="def f(a): return a")
    assert (ind.inputs, ind.message, ind.program, ind.error) == (["1", "'a'"], "m", "def f(a): return a", "")
    assert "2 distinct" in parse_proposal("induction", "<input>1</input><message>m</message>").error
    assert "message" in parse_proposal("induction", "<input>1</input><input>2</input>").error


def test_prompts_hold_the_task_parts_and_hide_what_the_solver_must_find():
    task = Task("def f(a): return a+1", ["1", "2", "3", "4"], ["2", "3", "4", "5"], "adds one")
    ded, abd, ind = (solve_prompt(t, task, "compact") for t in ("deduction", "abduction", "induction"))
    assert "<input>1</input>" in ded and "<output>" not in ded
    assert "<output>2</output>" in abd and "<input>" not in abd
    assert "<program>" not in ind and "<input>3</input>" not in ind and "<message>adds one</message>" in ind
    assert ind.count("<input>") == 2  # half shown
    full = propose_prompt("deduction", [IDENTITY, task], "full")
    assert full.count("<program>") == 2 + 1  # two references and the instruction's format example
    assert propose_prompt("induction", [task], "compact", n_inputs=6).startswith("propose induction 6:")


def test_values_compare_as_values():
    assert same_value("[1,2]", "[1, 2]") and same_value("1", "1.0") and same_value("'a'", '"a"')
    assert not same_value("'1'", "1") and not same_value("x", "1") and not same_value(None, "1")
    assert parse_args("3, [1, 2]") == (3, [1, 2]) and parse_args("") == () and parse_args("'a'") == ("a",)


# ---------------------------------------------------------------------------------------------- validation


def test_static_check_reasons():
    assert static_check("def f(a): return a") == ("", "")
    assert static_check("def f(a) return")[0] == "syntax"
    assert static_check("def g(a): return a") == ("syntax", "no top-level function f")
    assert static_check("import random\ndef f(a): return random.random()") == ("forbidden", "imports random")
    assert static_check("from os.path import join\ndef f(a): return a")[0] == "forbidden"
    assert static_check("def f(a): return __import__('os').getpid()") == ("forbidden", "uses __import__")
    assert static_check("def f(a): return open('x').read()") == ("forbidden", "uses open")
    assert static_check("def f(a): return ().__class__")[0] == "forbidden"
    assert static_check("def f(a): return a", max_program_chars=5)[0] == "too_long"
    assert static_check("import json\ndef f(a): return a", forbidden_modules=("json",))[0] == "forbidden"


HOSTILE = {
    "loops": ("def f(a):\n    while True:\n        pass", "timeout"),
    "nondeterministic_hash": ("def f(a):\n    return hash(a)", "nondeterministic"),
    "nondeterministic_id": ("def f(a):\n    return id(object()) % 1000003", "nondeterministic"),
    "set_order": ("def f(a):\n    return list({'x', 'y', 'z', 'w', 'v'})", "nondeterministic"),
    "prints_megabytes": ("def f(a):\n    print('x' * 10**7)\n    return 1", "prints"),
    "huge_output": ("def f(a):\n    return 'x' * 10**6", "prints"),
    "memory": ("def f(a):\n    return len([0] * 10**10)", "error"),
    "raises": ("def f(a):\n    return a / 0", "error"),
    "not_plain": ("def f(a):\n    return lambda: a", "not_plain"),
    "nan": ("def f(a):\n    return float('nan')", "not_plain"),
    "forks": ("import os\ndef f(a):\n    return os.fork()", "forbidden"),
    "reads_files": ("def f(a):\n    return open('/etc/passwd').read()", "forbidden"),
    "exits": ("def f(a):\n    raise SystemExit(0)", "error"),
    "recursion": ("def f(a):\n    return f(a)", "error"),
}


def test_hostile_proposals_are_rejected_with_their_reason(executor):
    names = list(HOSTILE)
    verdicts = executor.validate([HOSTILE[k][0] for k in names], [["'Hello World'"]] * len(names))
    got = {k: v.reason for k, v in zip(names, verdicts)}
    assert got == {k: HOSTILE[k][1] for k in names}
    assert not any(v.ok for v in verdicts)


def test_valid_programs_get_their_outputs_from_execution(executor):
    programs = ["def f(a, b):\n    return sorted(set(a)) + [b]", "def f(a):\n    return {'n': len(a), 'r': a[::-1]}",
                IDENTITY.program]
    verdicts = executor.validate(programs, [["'hello', 3"], ["'abc'", "''"], IDENTITY.inputs])
    assert [v.ok for v in verdicts] == [True, True, True]
    assert verdicts[0].outputs == ["['e', 'h', 'l', 'o', 3]"]
    assert verdicts[1].outputs == ["{'n': 3, 'r': 'cba'}", "{'n': 0, 'r': ''}"]
    assert verdicts[2].outputs == ["'Hello World'"]
    bad = executor.validate(["def f(a): return a"], [["not a literal"]])[0]
    assert (bad.ok, bad.reason) == (False, "bad_input")


def test_a_job_that_kills_its_process_costs_only_its_own_result(executor):
    # not statically checked here (run() trusts its caller): a fork bomb and a hard crash share the process
    jobs = [("def f(a):\n    return a + 1", ["1"]),
            ("import ctypes\ndef f(a):\n    return ctypes.string_at(0)", ["1"]),  # a segfault
            ("import os\ndef f(a):\n    os.fork()\n    return 7", ["1"])]
    out = executor.run(jobs)
    assert out[0][0].value == "2"
    assert out[1][0].status == "error" and "killed" in out[1][0].error
    assert out[2][0].value == "7"  # the forked child exits at once; the parent's result stands


# ---------------------------------------------------------------------------------------------- checks and rewards


def test_check_solutions_each_type(executor):
    ded = Task("def f(a): return a+8-5+9", ["47"], ["59"])
    abd = Task("def f(a): return a % 10", ["47"], ["7"])
    ind = Task("def f(a): return a*2", ["1", "2", "3", "4"], ["2", "4", "6", "8"], "doubles")
    cases = [
        ("deduction", ded, "<think>47+8=55 55-5=50 50+9=59</think><answer>59</answer>", True),
        ("deduction", ded, "<think>.</think><answer>59.0</answer>", True),  # a value, not a string
        ("deduction", ded, "<think>.</think><answer>49</answer>", False),
        ("deduction", ded, "<answer>59</answer>", None),  # format
        ("abduction", abd, "<think>.</think><answer>17</answer>", True),  # any preimage counts
        ("abduction", abd, "<think>.</think><answer>18</answer>", False),
        ("abduction", abd, "<think>.</think><answer>'x'</answer>", False),  # f raises: wrong, not a crash
        ("induction", ind, "<think>.</think><answer>def f(a):\n    return a + a</answer>", True),
        ("induction", ind, "<think>.</think><answer>def f(a):\n    return 2 if a == 1 else 4</answer>", False),
        ("induction", ind, "<think>.</think><answer>import os\ndef f(a): return a*2</answer>", False),
        ("induction", ind, "<think>.</think><answer>def f(a):\n    while 1: pass</answer>", False),
    ]
    got = check_solutions([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases], executor)
    assert [ok for ok, _ in got] == [c[3] for c in cases]
    assert "forbidden" in got[9][1] and "timeout" in got[10][1]


def test_proposer_and_composite_rewards_by_hand():
    assert [proposer_reward(s) for s in (0.0, 0.25, 0.5, 1.0)] == [0.0, 0.75, 0.5, 0.0]
    assert composite_reward(False, True, 1.0) == -1.0  # broken format
    assert composite_reward(True, False, 1.0) == -1.0  # invalid proposal
    assert composite_reward(True, True, 0.75) == 0.75
    assert composite_reward(True, True, 0.0) == -0.5


def test_selfplay_verifier_reads_the_task_from_metadata():
    meta = {"task_type": "deduction", "task": Task("def f(a): return a-1", ["5"], ["4"]).to_dict()}
    assert selfplay_verifier("<think></think><answer>4</answer>", "4", meta).score == 1.0
    assert selfplay_verifier("<think></think><answer>5</answer>", "4", meta).score == 0.0
    assert selfplay_verifier("<think></think><answer>4</answer>", "4", {}).reason.startswith("error")


# ---------------------------------------------------------------------------------------------- buffers, TRR++


def test_buffers_seed_dedupe_capacity_and_state():
    b = TaskBuffers(capacity=3)
    assert [t.program for t in b.tasks["deduction"]] == [IDENTITY.program] and b.tasks["induction"] == []
    assert b.add("deduction", Task("def f(a): return a+1", ["1"], ["2"]))
    assert not b.add("deduction", Task("def f(a): return a+1", ["1"], ["2"]))  # duplicate
    for k in range(2, 5):
        b.add("deduction", Task(f"def f(a): return a+{k}", ["1"], [str(1 + k)]))
    assert [t.program for t in b.tasks["deduction"]] == [IDENTITY.program, "def f(a): return a+3",
                                                        "def f(a): return a+4"]  # the newest, the seed kept
    again = TaskBuffers()
    again.load_state_dict(b.state_dict())
    assert [t.to_dict() for t in again.tasks["deduction"]] == [t.to_dict() for t in b.tasks["deduction"]]
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    assert [t.program for t in b.sample("deduction", 2, rng1)] == [t.program for t in again.sample("deduction", 2, rng2)]
    assert b.metrics()["selfplay/deduction/buffer_size"] == 3.0


def test_trr_pp_one_baseline_per_task_type_and_role():
    # six (type, role) keys over eight prompts of one completion each: the key, not the prompt, is the group
    keys = ["deduction/propose", "deduction/propose", "deduction/solve", "deduction/solve",
            "abduction/propose", "abduction/solve", "induction/propose", "induction/solve"]
    examples = [Example("q", None, metadata={"task_role": k}) for k in keys]
    ids = group_ids_for(examples, 2, "task_role")  # G = 2 completions per prompt
    assert ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    rewards = torch.tensor([1.0, -0.5, 0.5, -1.0, 1, 1, 0, 0, -0.5, 1.0, 1, 0, 0.25, 0.25, 0.0, 1.0])
    adv, _ = grpo(rewards, torch.ones(16, 1, dtype=torch.bool), ids)
    # deduction/propose: mean 0, unbiased std sqrt(((1)^2 + 0.25 + 0.25 + 1) / 3) = sqrt(2.5 / 3)
    std = (2.5 / 3) ** 0.5
    assert torch.allclose(adv[:4, 0], torch.tensor([1.0, -0.5, 0.5, -1.0]) / (std + 1e-6), atol=1e-5)
    # abduction/propose [-0.5, 1.0]: mean 0.25, std 1.06066 -> -0.70711, 0.70711
    assert torch.allclose(adv[8:10, 0], torch.tensor([-0.70711, 0.70711]), atol=1e-4)
    assert torch.equal(adv[12:14, 0], torch.zeros(2))  # an all-equal key gets exactly 0
