"""math and exact_match verifiers: true positives, true negatives, malformed inputs."""

import threading
from fractions import Fraction

import pytest

from rlvr.rewards import VERIFIERS
from rlvr.rewards.math import plain_number

math_v = VERIFIERS.get("math")
exact = VERIFIERS.get("exact_match")


@pytest.mark.parametrize(
    "s, value",
    [("12", Fraction(12)), ("-0.25", Fraction(-1, 4)), ("1,000", Fraction(1000)), ("3/4", Fraction(3, 4)),
     ("$7$", Fraction(7)), ("+2.", Fraction(2)), (".5", Fraction(1, 2))],
)
def test_plain_number(s, value):
    assert plain_number(s) == value


@pytest.mark.parametrize("s", ["x", "1/0", "1,00", "2^3", "\\frac{1}{2}", "", "1e5x"])
def test_not_plain_number(s):
    assert plain_number(s) is None


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("<answer>42</answer>", "42"),
        ("<answer>1,000</answer>", "1000"),
        ("<answer>0.5</answer>", "1/2"),            # fast path: Fraction(1,2) == Fraction(1,2)
        ("<answer>0.333333</answer>", "1/3"),       # equal after rounding to 6 decimals
        (r"so \boxed{\frac{1}{2}}", "0.5"),          # math-verify
        (r"\boxed{2^{10}}", "1024"),
        (r"\boxed{\{1,2\}}", r"\{2,1\}"),            # sets ignore order
        (r"\boxed{(0,1]}", "(0,1]"),                 # intervals
        (r"\boxed{50\%}", "0.5"),                    # percentage
        (r"\boxed{10 dollars}", "10"),               # units text: bare retry
        ("<answer>x = 5</answer>", "5"),             # equation's right side
        (r"\boxed{\sqrt 2}", r"\sqrt{2}"),
        ("The answer is 7.", 7),                     # non-string reference
    ],
)
def test_math_true_positives(completion, reference):
    r = math_v(completion, reference, {})
    assert r.score == 1.0, r


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("<answer>41</answer>", "42"),
        ("<answer>0.33</answer>", "1/3"),            # 0.33 != 0.333333
        (r"\boxed{[0,1)}", "(0,1]"),                 # interval ends differ
        (r"\boxed{\frac{1}{3}}", "0.5"),
        (r"\boxed{2^{10}}", "2"),                    # 1024, not the first number
        ("<answer>-4</answer>", "4"),
    ],
)
def test_math_true_negatives(completion, reference):
    r = math_v(completion, reference, {})
    assert r.score == 0.0 and r.reason == "wrong", r


def test_math_reports_extraction_and_path():
    r = math_v("<answer>3/4</answer>", "0.75", {})
    assert (r.score, r.extracted, r.details["path"]) == (1.0, "3/4", "number")
    r = math_v(r"\boxed{\frac{3}{4}}", "0.75", {})
    assert (r.extracted, r.details["path"]) == (r"\frac{3}{4}", "math_verify")


def test_math_malformed():
    assert math_v("I don't know", "3", {}).reason.startswith("no answer found")
    assert math_v("", "3", {}).score == 0.0
    assert math_v("<answer>3</answer>", None, {}).reason == "error: empty reference"
    assert math_v(r"\boxed{\frac{", "1", {}).score == 0.0
    assert math_v("<answer>}}{{\\\\</answer>", "1", {}).score == 0.0
    # extract=answer_tag ignores the boxed answer
    assert math_v(r"\boxed{3}", "3", {}, extract="answer_tag").reason == "no <answer> tag"


def test_math_works_outside_the_main_thread():
    # math-verify's signal.alarm timeouts only work in the main thread: they must be switched off here
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", math_v(r"\boxed{\frac{2}{4}}", "0.5", {})))
    t.start()
    t.join(30)
    assert out["r"].score == 1.0


def test_exact_match():
    assert exact("<answer>The Eiffel Tower.</answer>", "eiffel tower", {}).score == 1.0
    assert exact("<answer>Eiffel</answer>", "eiffel tower", {}).score == 0.0
    assert exact("<answer>Paris</answer>", ["London", "paris"], {}).score == 1.0  # any of a list
    assert exact("<answer>Paris</answer>", "paris", {}, case_sensitive=True).score == 0.0
    assert exact("no tags", "x", {}, extract="answer_tag").score == 0.0


def test_math_list_reference_means_any_of():
    assert math_v("<answer>6</answer>", ["2", "6"], {}).score == 1.0
    assert math_v(r"\boxed{\frac{12}{2}}", ["2", "6"], {}).score == 1.0   # math-verify path on the second
    assert math_v("<answer>5</answer>", ["2", "6"], {}).score == 0.0
    assert math_v("<answer>5</answer>", [], {}).reason == "error: empty reference"
