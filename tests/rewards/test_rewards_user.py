"""User reward functions: sync, async, None/dict items, raising, wrong length, non-finite, hanging."""

import time
from pathlib import Path

import pytest

from rlvr.rewards.user import call_user_function, is_user_spec, load_user_function

FILE = str(Path(__file__).parent / "rewards_user_funcs.py")


def call(name, completions, answers=None, timeout_s=2.0):
    fn = load_user_function(f"{FILE}:{name}")
    answers = answers if answers is not None else ["4"] * len(completions)
    prompts = [f"p{i}" for i in range(len(completions))]
    return call_user_function(fn, prompts, completions, answers, [{}] * len(completions), timeout_s, name)


def test_spec_parsing_and_load_errors():
    assert is_user_spec("a/b.py:fn") and not is_user_spec("math") and not is_user_spec("a.py:")
    with pytest.raises(FileNotFoundError):
        load_user_function("no/such/file.py:fn")
    with pytest.raises(AttributeError, match="contains_answer"):  # lists what the file defines
        load_user_function(f"{FILE}:nope")
    # loading twice gives the same function object (the module is imported once)
    assert load_user_function(f"{FILE}:raises") is load_user_function(f"{FILE}:raises")


def test_sync_floats():
    out = call("contains_answer", ["x = 4", "x = 5"])
    assert [r.score for r in out] == [1.0, 0.0]


def test_dict_and_none_items():
    out = call("with_dicts", ["abcdef", "none"])
    assert (out[0].score, out[0].reason, out[0].extracted) == (0.5, "prompt=p0", "abc")
    assert (out[1].score, out[1].reason) == (0.0, "returned None")


def test_async():
    out = call("async_len", ["12345", ""])
    assert [r.score for r in out] == [0.5, 0.0]  # len / 10


@pytest.mark.parametrize(
    "name, reason",
    [
        ("raises", "error: ValueError: bad reward"),
        ("wrong_length", "error: returned 1 items for 3 completions"),
        ("non_finite", "error: non-finite or non-numeric score inf"),
        ("not_a_list", "error: returned float, expected a list of 3 items"),
    ],
)
def test_failures_zero_every_item(name, reason):
    out = call(name, ["a", "b", "c"])
    assert [(r.score, r.reason) for r in out] == [(0.0, reason)] * 3


@pytest.mark.parametrize("name", ["sync_hang", "async_hang"])
def test_timeouts(name):
    t0 = time.monotonic()
    out = call(name, ["a", "b"], timeout_s=0.3)
    assert time.monotonic() - t0 < 3
    assert [(r.score, r.reason) for r in out] == [(0.0, "timeout after 0.3s")] * 2
