"""RewardScorer: composition, "auto", user functions, and the worker pool's failure handling."""

import math
import time
from pathlib import Path

import pytest

from rlvr.config import RewardComponentConfig as C
from rlvr.rewards import RewardScorer
from rlvr.rewards.user import load_module_from_file
from rlvr.types import Example

HERE = Path(__file__).parent
load_module_from_file(HERE / "rewards_scorer_helpers.py")  # registers the _test_* verifiers (workers import it too)
USER = str(HERE / "rewards_user_funcs.py")


def ex(answer, verifier="math", **metadata):
    return Example(question="q", answer=answer, verifier=verifier, metadata=metadata, prompt="P")


@pytest.fixture(scope="module")
def scorer():
    s = RewardScorer([C("auto", 1.0), C("think_format", 0.5)], timeout_s=5, num_workers=2)
    yield s
    s.close()


def test_weighted_sum_and_components(scorer):
    examples = [ex("4"), ex("B", "mcqa", options=["x", "y"]), ex("4")]
    completions = [
        "<think>2+2</think><answer>4</answer>",  # auto 1, format 1 -> 1 + 0.5*1 = 1.5
        "<answer>(B)</answer>",                  # auto 1, format 0 -> 1.0
        "<think>hm</think><answer>5</answer>",   # auto 0, format 1 -> 0.5
    ]
    out = scorer.score(examples, completions)
    assert [r.score for r in out] == [1.5, 1.0, 0.5]
    assert out[1].components == {"auto": 1.0, "think_format": 0.0}
    # reason / extracted come from the first component; every reason is in details
    assert (out[2].reason, out[2].extracted) == ("wrong", "5")
    assert out[1].details["reasons"]["think_format"] == "missing <think>, </think>"


def test_auto_with_unknown_verifier_and_bad_completion(scorer):
    out = scorer.score([ex("4", "mathh"), ex("4")], ["<answer>4</answer>", None])
    assert out[0].components["auto"] == 0.0 and "did you mean 'math'" in out[0].reason
    assert out[1].score == 0.0  # None completion -> "" -> no answer
    assert all(math.isfinite(r.score) for r in out)


def test_empty_batch_and_length_mismatch(scorer):
    assert scorer.score([], []) == []
    with pytest.raises(ValueError):
        scorer.score([ex("1")], [])


def test_unknown_component_name_fails_early():
    with pytest.raises(KeyError, match="did you mean 'think_format'"):
        RewardScorer([C("think_fromat")], timeout_s=1, num_workers=1)


def test_user_function_components_and_duplicate_names():
    comps = [C(f"{USER}:contains_answer", 1.0), C("_test_echo", 2.0, {"value": 0.25}),
             C("_test_echo", -1.0, {"value": 1.0})]
    with RewardScorer(comps, timeout_s=5, num_workers=1) as s:
        out = s.score([ex("7"), ex("8")], ["it is 7", "it is 9"], metadata_extra=[{"completion_tokens": 3}, {}])
    # contains_answer: 1, 0; echo: 0.25 (x2) and 1.0 (x-1) -> 1 + 0.5 - 1 = 0.5 and 0 + 0.5 - 1 = -0.5
    assert [r.score for r in out] == [0.5, -0.5]
    assert out[0].components == {f"{USER}:contains_answer": 1.0, "_test_echo": 0.25, "_test_echo#2": 1.0}
    assert out[0].details["reasons"]["_test_echo"] == "tokens=3"  # metadata_extra reached the worker


def test_user_function_failures_do_not_crash_the_scorer():
    with RewardScorer([C(f"{USER}:raises"), C(f"{USER}:sync_hang", params={"timeout_s": 0.2})],
                      timeout_s=5, num_workers=1) as s:
        out = s.score([ex("1"), ex("2")], ["a", "b"])
    assert [r.score for r in out] == [0.0, 0.0]
    assert out[0].details["reasons"] == {f"{USER}:raises": "error: ValueError: bad reward",
                                         f"{USER}:sync_hang": "timeout after 0.2s"}


def test_raise_nan_and_memory_limit():
    with RewardScorer([C("auto")], timeout_s=20, num_workers=1, memory_limit_mb=1024) as s:
        out = s.score([ex("1", "_test_raise"), ex("1", "_test_nan"), ex("1", "_test_memory"), ex("2")],
                      ["x", "x", "x", "<answer>2</answer>"])
    assert [r.score for r in out] == [0.0, 0.0, 0.0, 1.0]
    assert out[0].reason == "error: RuntimeError: boom"
    assert out[1].reason == "error: non-finite score nan"
    assert out[2].reason.startswith("error: MemoryError")


def test_hung_item_is_killed_and_the_rest_still_scored():
    # one worker, so all 6 items share a chunk: the hang is item 2; items 3..5 must be re-queued and scored
    completions = ["ok", "ok", "hang", "ok", "ok", "ok"]
    with RewardScorer([C("_test_hang")], timeout_s=1.0, num_workers=1) as s:
        t0 = time.monotonic()
        out = s.score([ex("1")] * 6, completions)
        elapsed = time.monotonic() - t0
        assert s.pool.restarts == 1
        # the replacement worker is healthy
        assert [r.score for r in s.score([ex("1")] * 2, ["ok", "ok"])] == [1.0, 1.0]
    assert [r.score for r in out] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert out[2].reason == "timeout after 1s"
    assert elapsed < 10  # 1 s timeout + a worker restart, not the 600 s sleep


def test_items_before_a_hung_one_in_its_chunk_are_scored_too():
    # 8 items on one worker: the hang (item 3) shares a chunk with items before it, whose results the worker
    # had not sent yet; they are scored again, not lost
    completions = ["ok"] * 3 + ["hang"] + ["ok"] * 4
    with RewardScorer([C("_test_hang")], timeout_s=1.0, num_workers=1) as s:
        out = s.score([ex("1")] * 8, completions)
    assert [r.score for r in out] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], [r.reason for r in out]
    assert out[3].reason == "timeout after 1s"


def test_crashed_worker_is_replaced():
    with RewardScorer([C("_test_crash")], timeout_s=5, num_workers=2) as s:
        out = s.score([ex("1")] * 4, ["ok", "crash", "ok", "ok"])
        procs = [w.proc for w in s.pool.workers]
    assert [r.score for r in out] == [1.0, 0.0, 1.0, 1.0]
    assert out[1].reason == "error: worker died (exit code 3)"
    assert all(p.poll() is not None for p in procs)  # close() stopped every worker


def test_many_items_keep_their_order(scorer):
    n = 300
    examples = [ex(str(i)) for i in range(n)]
    completions = [f"<think>.</think><answer>{i if i % 3 else i + 1}</answer>" for i in range(n)]
    out = scorer.score(examples, completions)
    # correct unless i % 3 == 0; format always ok -> 1.5 or 0.5
    assert [r.score for r in out] == [1.5 if i % 3 else 0.5 for i in range(n)]


def test_workers_that_cannot_start_raise_instead_of_looping():
    # 30 MB of address space is too little for python itself: every start fails -> a clear error, not a hang
    s = RewardScorer([C("math")], timeout_s=5, num_workers=1, memory_limit_mb=30)
    with pytest.raises(RuntimeError, match="failed to start 3 times"):
        s.score([ex("1")], ["<answer>1</answer>"])
    s.close()


def test_math_power_tower_is_killed():
    # math-verify evaluates 9^(9^(9^9)) in C big-integer code that no signal interrupts: only the hard kill works
    with RewardScorer([C("math")], timeout_s=1.5, num_workers=1) as s:
        out = s.score([ex("1"), ex("1")], [r"\boxed{9^{9^{9^{9}}}}", "<answer>1</answer>"])
    assert [(r.score, r.reason) for r in out] == [(0.0, "timeout after 1.5s"), (1.0, "correct")]


@pytest.mark.parametrize("fn, reason", [("exits", "error: worker died (exit code 7)"),
                                        ("segfaults", "error: worker died (exit code -11, SIGSEGV)")])
def test_user_function_that_kills_its_process_scores_zero_and_the_run_goes_on(fn, reason):
    # os._exit() / a segfault inside a user reward used to take the trainer down with it: now only a worker dies
    with RewardScorer([C(f"{USER}:{fn}"), C("_test_echo", 1.0, {"value": 0.5})], timeout_s=5, num_workers=1) as s:
        out = s.score([ex("1")] * 3, ["a", "b", "c"])
        assert s.pool.restarts == 1
        again = s.score([ex("1")], ["x"])  # the replacement worker scores the next batch
    assert [r.score for r in out] == [0.5] * 3  # 0 for the user component, the verifier still counts
    assert {r.details["reasons"][f"{USER}:{fn}"] for r in out} == {reason}
    assert again[0].details["reasons"]["_test_echo"] == "tokens=None"


def test_user_function_memory_limit_applies():
    with RewardScorer([C(f"{USER}:allocates_10gib")], timeout_s=20, num_workers=1, memory_limit_mb=1024) as s:
        out = s.score([ex("1")] * 2, ["a", "b"])
    assert [r.score for r in out] == [0.0, 0.0]
    assert out[0].reason.startswith("error: MemoryError") and "reward.memory_limit_mb" in out[0].reason


def test_user_function_runs_in_a_worker_unless_in_process():
    import os

    comps = [C(f"{USER}:pid"), C(f"{USER}:pid", params={"in_process": True})]
    with RewardScorer(comps, timeout_s=5, num_workers=1) as s:
        out = s.score([ex("1")] * 2, ["a", "b"])
        worker_pid = str(s.pool.workers[0].proc.pid)
    reasons = out[0].details["reasons"]
    assert reasons[f"{USER}:pid"] == worker_pid != str(os.getpid())
    assert reasons[f"{USER}:pid#2"] == str(os.getpid())


def test_user_function_hang_in_worker_is_killed_at_its_timeout():
    with RewardScorer([C(f"{USER}:sync_hang", params={"timeout_s": 0.5}), C(f"{USER}:contains_answer")],
                      timeout_s=5, num_workers=1) as s:
        t0 = time.monotonic()
        out = s.score([ex("1"), ex("2")], ["1", "x"])
        assert time.monotonic() - t0 < 5
        assert s.pool.restarts == 1
    assert [r.details["reasons"][f"{USER}:sync_hang"] for r in out] == ["timeout after 0.5s"] * 2
    assert [r.components[f"{USER}:contains_answer"] for r in out] == [1.0, 0.0]
