"""think_format and the length rewards (formulas evaluated by hand in the comments)."""

import math

import pytest

from rlvr.rewards import VERIFIERS

think = VERIFIERS.get("think_format")
overlong = VERIFIERS.get("overlong_soft")
dler = VERIFIERS.get("dler_truncation")
laser = VERIFIERS.get("laser_length")
cosine = VERIFIERS.get("cosine_length")
repetition = VERIFIERS.get("repetition_penalty")

GOOD = "<think>\n2+2 is 4\n</think>\n<answer>4</answer>"


def test_think_format_strict():
    assert think(GOOD, None, {}).score == 1.0
    assert think(GOOD, None, {}).extracted == "4"
    assert think("hello " + GOOD, None, {}).reason == "text outside or tags out of order"
    assert think("<answer>4</answer><think>x</think>", None, {}).score == 0.0
    assert think(GOOD + "<answer>5</answer>", None, {}).reason == "repeated <answer>, </answer>"
    assert think("<think>x</think>", None, {}).reason == "missing <answer>, </answer>"
    assert think("<think>x</think><answer> </answer>", None, {}).reason == "empty <answer>"
    assert think("", None, {}).score == 0.0


def test_think_format_soft_and_prefix():
    assert think("hello " + GOOD + " bye", None, {}, mode="soft").score == 1.0
    assert think("<answer>4</answer><think>x</think>", None, {}, mode="soft").score == 0.0
    # the R1 template ends the prompt with "<think>": the completion starts inside it
    assert think("reasoning</think><answer>4</answer>", None, {}, prefix_think=True).score == 1.0
    with pytest.raises(ValueError):
        think(GOOD, None, {}, mode="loose")


def test_overlong_soft_dapo_formula():
    # max_len 100, cache 20 -> L_exp 80: 0 up to 80, (80 - L)/20 in (80, 100], -1 beyond
    assert overlong("x" * 80, None, {}, max_len=100, cache_len=20).score == 0.0
    assert overlong("x" * 90, None, {}, max_len=100, cache_len=20).score == pytest.approx(-0.5)
    assert overlong("x" * 100, None, {}, max_len=100, cache_len=20).score == pytest.approx(-1.0)
    assert overlong("x" * 101, None, {}, max_len=100, cache_len=20).score == -1.0
    # tokens win over characters when the scorer passes them: 95 tokens -> (80 - 95)/20 = -0.75
    r = overlong("short", None, {"completion_tokens": 95}, max_len=100, cache_len=20)
    assert (r.score, r.details["unit"]) == (pytest.approx(-0.75), "tokens")
    assert overlong("x", None, {"completion_tokens": [1] * 90}, max_len=100, cache_len=20).score == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        overlong("x", None, {}, max_len=10, cache_len=20)


def test_dler_truncation():
    c = "<answer>4</answer>"  # 18 characters
    assert dler(c, "4", {}, max_len=18).score == 1.0
    assert dler(c, "4", {}, max_len=17).score == 0.0           # too long, even though correct
    assert dler(c, "5", {}, max_len=100).score == 0.0          # wrong
    assert dler("anything", None, {"correct": True}, max_len=100).score == 1.0  # correctness given


def test_laser_length():
    c = "<answer>4</answer>"  # 18 characters
    assert laser(c, "4", {}, target_len=20).score == 1.5    # +1 correct +0.5 short
    assert laser(c, "4", {}, target_len=10).score == 1.0    # correct, long
    assert laser(c, "5", {}, target_len=20).score == -0.5   # wrong
    assert laser(c, "4", {"target_len": 10}, target_len=20).score == 1.0  # per-example target wins


def test_cosine_length():
    c = "<answer>4</answer>"  # 18 characters
    # correct, t = 18, T = 36: 0.5 + 0.5*(1.0-0.5)*(1+cos(pi/2)) = 0.75
    assert cosine(c, "4", {}, max_len=36).score == pytest.approx(0.75)
    # wrong, t = 18, T = 72: -0.5 + 0.5*(-1.0+0.5)*(1+cos(pi/4)) = -0.5 - 0.25*(1+0.70711) = -0.926777
    assert cosine(c, "5", {}, max_len=72).score == pytest.approx(-0.5 - 0.25 * (1 + math.cos(math.pi / 4)))
    assert cosine(c, "4", {}, max_len=10).score == -1.0      # exceeds
    # base verifier picked by metadata["verifier"] (as the scorer sets it): mcqa here
    assert cosine("<answer>B</answer>", "B", {"verifier": "mcqa"}, max_len=36).score == pytest.approx(0.75)


def test_repetition_penalty():
    # words a b c a b c -> 3-grams abc, bca, cab, abc: 3 distinct of 4 -> -1 * (1 - 3/4) = -0.25
    assert repetition("a b c a b c", None, {}).score == pytest.approx(-0.25)
    assert repetition("one two three four", None, {}).score == 0.0
    assert repetition("too short", None, {}).score == 0.0
    # 2-grams of "x x x x x": 4 grams, 1 distinct -> -0.5 * (1 - 1/4) = -0.375
    assert repetition("x x x x x", None, {}, ngram_size=2, max_penalty=-0.5).score == pytest.approx(-0.375)
