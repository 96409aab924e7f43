"""math and exact_match verifiers: true positives, true negatives, malformed inputs."""

import threading
from fractions import Fraction

import pytest

from rlvr.rewards import VERIFIERS
from rlvr.rewards.math import plain_number, simple_number

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
    r = math_v(r"\boxed{\frac{3}{4}}", "0.75", {})          # digit-only LaTeX fraction: fast path
    assert (r.extracted, r.details["path"]) == (r"\frac{3}{4}", "number")
    r = math_v(r"\boxed{\sqrt{9}/4}", "0.75", {})
    assert (r.score, r.extracted, r.details["path"]) == (1.0, r"\sqrt{9}/4", "math_verify")


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


# ---- issue 9.1: no marker -> math-verify on the whole completion, never the last number -------------------

@pytest.mark.parametrize(
    "completion, reference, extracted",
    [
        (r"Therefore the probability is \frac{1}{3}", "1/3", r"\frac{1}{3}"),   # was: last number "3"
        (r"$\frac13 $", "$1/3$", None),                                        # was: "13"; fast path now
        (r"$5 \geq x$", r"$x \leq 5$", r"5 \geq x"),                          # was: "5"
        (r"$(3,2)$", r"$(p,q)=(3,2)$", "(3,2)"),                              # was: "2"
        (r"$\sec^2(y)$", r"$\tan^2(y)+1$", r"\sec^2(y)"),                      # was: "2"
    ],
)
def test_latex_without_markers_goes_to_math_verify(completion, reference, extracted):
    r = math_v(completion, reference, {})
    assert r.score == 1.0 and r.reason == "correct", r
    if extracted is None:  # a completion that is only a simple number: exact fraction compare
        assert r.details["path"] == "number"
    else:
        assert (r.extracted, r.details["path"]) == (extracted, "math_verify_full"), r


@pytest.mark.parametrize(
    "completion, reference",
    [
        (r"Therefore the probability is \frac{1}{3}", "1/4"),
        (r"$\frac13 $", "$13$"),
        (r"$5 \geq x$", r"$x \leq 4$"),
        (r"$(3,2)$", r"$(p,q)=(2,3)$"),
        (r"$\sec^2(y)$", r"$\tan^2(y)$"),
    ],
)
def test_latex_without_markers_wrong_answers_stay_wrong(completion, reference):
    r = math_v(completion, reference, {})
    assert r.score == 0.0 and r.reason == "wrong", r


def test_no_marker_and_no_math_says_so():
    r = math_v("I really do not know.", "3", {})
    assert r.score == 0.0 and r.reason.startswith("no answer found") and r.extracted is None


def test_explicit_last_number_still_means_last_number():
    r = math_v(r"Therefore the probability is \frac{1}{3}", "3", {}, extract="last_number")
    assert (r.score, r.extracted, r.details["path"]) == (1.0, "3", "number")
    r = math_v(r"Therefore the probability is \frac{1}{3}", "1/3", {}, extract="last_number")
    assert r.score == 0.0


def test_exact_match_keeps_the_last_number_fallback():
    assert exact("we got 9 and then 10", "10", {}).score == 1.0


def test_several_boxed_answers_are_one_set():
    # the last-\boxed candidate "3" is wrong; math-verify on the whole text joins the boxes into {1, 2, 3}
    r = math_v(r"\boxed{1}, \boxed{2}, \boxed{3}", r"\{1,2,3\}", {})
    assert (r.score, r.details["path"]) == (1.0, "math_verify_full"), r
    assert math_v(r"\boxed{1}, \boxed{2}", r"\{1,2,3\}", {}).score == 0.0
    # an <answer> tag is never second-guessed by a whole-text parse
    assert math_v(r"maybe $x = 12$ <answer>7</answer>", "12", {}).score == 0.0


def test_repeated_answer_markers():
    r = math_v("So $10,200 + $255 = $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.",
               "$10455$", {})
    assert (r.score, r.extracted, r.details["path"]) == (1.0, "10,455", "number"), r


@pytest.mark.parametrize(
    "s, value",
    [(r"\frac{1}{3}", Fraction(1, 3)), (r"\frac13", Fraction(1, 3)), (r"\frac3{3}", Fraction(1)),
     (r"-\dfrac{10}{9}", Fraction(-10, 9)), (r"\tfrac{1}{2}", Fraction(1, 2)), (r"\cfrac{-1}{4}", Fraction(-1, 4)),
     (r"$\frac{3}{4}$", Fraction(3, 4)), (r"\(0.5\)", Fraction(1, 2)), (r"$$ 7 $$", Fraction(7)), ("1,000", Fraction(1000)),
     (r"\frac{7}{2}.", Fraction(7, 2))],
)
def test_simple_number(s, value):
    assert simple_number(s) == value


@pytest.mark.parametrize("s", [r"\frac{x}{2}", r"\frac{1}{2}x", r"\frac{1}{0}", r"\frac123", r"\sqrt{2}",
                               r"2\frac{1}{2}", r"\frac{1.5}{2}", r"$\frac{1}{2}$ and $3$", "x"])
def test_not_simple_number(s):
    assert simple_number(s) is None


@pytest.mark.parametrize(
    "completion, reference",
    [(r"\boxed{\frac{1}{3}}", "0.333333"), (r"\boxed{\dfrac{10}{9}}", "10/9"), (r"<answer>\frac13</answer>", "1/3"),
     (r"<answer>$-\frac{1}{2}$</answer>", "-0.5"), ("<answer>0.75</answer>", r"\frac{3}{4}"),
     (r"\boxed{\frac{2}{4}}", r"$\frac{1}{2}$")],
)
def test_latex_fraction_fast_path_agrees_with_math_verify(completion, reference):
    r = math_v(completion, reference, {})
    assert (r.score, r.details["path"]) == (1.0, "number"), r
    slow = math_v(completion, reference, {}, fast_path=False)
    assert (slow.score, slow.details["path"]) == (1.0, "math_verify"), slow


def test_verdicts_that_ran_into_the_timeout_are_not_cached(monkeypatch):
    """math-verify reads a timed-out check as "no match": that verdict must not stick to the item."""
    import rlvr.rewards.math as m

    calls = []

    @m.cache_unless_timed_out(maxsize=2)
    def check(item, timeout):
        calls.append(item)
        return item

    clock = iter([0.0, 0.1, 10.0, 13.0, 20.0, 20.1, 30.0, 30.1, 40.0, 40.1])
    monkeypatch.setattr(m.time, "perf_counter", lambda: next(clock))
    assert check("fast", 5) == "fast"  # 0.1 s of a 5 s timeout: cached
    assert check("fast", 5) == "fast" and calls == ["fast"]
    assert check("slow", 5) == "slow"  # 3 s >= half the timeout: ran into it, not cached
    assert "slow" not in [k[0] for k in check.cache]
    check("b", 5)
    check("c", 5)  # maxsize 2: "fast" (least recently used) is evicted
    assert [k[0] for k in check.cache] == ["b", "c"]
    check.cache_clear()
    assert not check.cache
    monkeypatch.undo()
    check("x", None)  # no timeout (outside the main thread): always cached
    assert [k[0] for k in check.cache] == ["x"]


@pytest.mark.parametrize("pred, gold", [
    ("333333/1000000", "1/3"),      # exact fractions: no rounding (math-verify: not equal)
    ("1000001/1000000", "1"),
    ("\\frac{333333}{1000000}", "\\frac{1}{3}"),
    ("0.333333", "1/3"),            # a decimal on one side: rounded to 6 places (math-verify: equal)
    ("\\frac{1}{3}", "0.333333"),
    ("2/3", "0.666667"),
    ("0.5", "\\frac{1}{2}"),
    ("0.3333", "1/3"),              # rounded to 6 places, 0.3333 is still not 1/3
])
def test_number_fast_path_rounds_like_math_verify(pred, gold):
    from math_verify import parse, verify

    expected = bool(verify(parse("\\boxed{" + gold + "}"), parse("\\boxed{" + pred + "}")))
    got = math_v(f"<answer>{pred}</answer>", gold, {})
    assert got.details["path"] == "number"
    assert (got.score == 1.0) == expected
