"""The self-play demo's warm-up corpus and held-out set: every correct demonstration passes the game's own checks,
every proposer target is a valid proposal, the flawed ones fail, and the committed held-out file is reproducible
and disjoint from the corpus."""

from __future__ import annotations

import json

from rlvr.demo.selfplay import HELDOUT_FILE, corpus, heldout_rows, is_heldout
from rlvr.selfplay.executor import Executor
from rlvr.selfplay.rewards import check_solutions
from rlvr.selfplay.tasks import Task, answer_of, parse_proposal


def test_demonstrations_pass_the_checks_and_flaws_fail():
    ex = Executor()
    clean, flawed = corpus(20, 0, 0.0, 2, 4), corpus(20, 0, 1.0, 2, 4)
    assert [r["question"] for r in clean] == [r["question"] for r in flawed]  # the same problems
    solve = [r for r in clean if r.get("role") != "propose"]
    checks = check_solutions([r["task_type"] for r in solve], [Task.from_dict(r["task"]) for r in solve],
                             [r["solution"] for r in solve], ex)
    assert all(ok for ok, _ in checks), [reason for ok, reason in checks if not ok][:3]
    bad = [r for r in flawed if r.get("role") != "propose" and r["task_type"] != "induction"]
    bad_checks = check_solutions([r["task_type"] for r in bad], [Task.from_dict(r["task"]) for r in bad],
                                 [r["solution"] for r in bad], ex)
    assert 0 < sum(not ok for ok, _ in bad_checks) < len(bad)  # slip 1: every chain with a carry goes wrong
    props = [r for r in clean if r.get("role") == "propose"]
    parsed = [parse_proposal(r["task_type"], answer_of(r["solution"]), program="def f(a): return a", n_inputs=4)
              for r in props]
    assert not any(p.error for p in parsed)
    assert all(v.ok for v in ex.validate([p.program for p in parsed], [p.inputs for p in parsed]))


def test_heldout_file_is_reproducible_and_disjoint():
    rows = [json.loads(x) for x in HELDOUT_FILE.read_text().splitlines() if x.strip()]
    assert rows == heldout_rows()
    assert [r["task_type"] for r in rows].count("deduction") == 64 and len(rows) == 128
    assert all(is_heldout(r["task"]["program"], r["task"]["inputs"][0]) for r in rows)
    train_pairs = {(r["task"]["program"], r["task"]["inputs"][0]) for r in corpus(300, 0, 0.0, 2, 4) if "task" in r}
    assert not train_pairs & {(r["task"]["program"], r["task"]["inputs"][0]) for r in rows}
    gold = check_solutions([r["task_type"] for r in rows], [Task.from_dict(r["task"]) for r in rows],
                           [f"<think></think><answer>{r['answer']}</answer>" for r in rows], Executor())
    assert all(ok for ok, _ in gold)
