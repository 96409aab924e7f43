"""Answer extraction and text normalisation (expected values read off the input strings by hand)."""

import pytest

from rlvr.rewards.extract import (answer_is, answer_tag, boxed, extract, extract_explicit, last_number, normalize_text,
                                  strip_latex)


def test_answer_tag_takes_the_last_closed_tag():
    assert answer_tag("<answer>1</answer> then <answer> 2 </answer>") == "2"
    assert answer_tag("<answer>1</answer> <answer>unclosed") == "1"
    assert answer_tag("no tag") is None
    assert answer_tag("<ANSWER>x</ANSWER>") == "x"


def test_boxed_balances_braces_and_takes_the_last():
    assert boxed(r"\boxed{1} and \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert boxed(r"\boxed{a{b{c}}d}") == "a{b{c}}d"
    # the last \boxed never closes: fall back to the previous complete one
    assert boxed(r"\boxed{7} then \boxed{8") == "7"
    assert boxed(r"\fbox{3}") == "3"
    assert boxed(r"\boxed 5 done") == "5"
    assert boxed("nothing") is None


def test_answer_is_stops_at_sentence_end_not_decimal_point():
    assert answer_is("So the answer is 3.5. Done.") == "3.5"
    assert answer_is("The final answer is $\\frac{1}{2}$.") == "\\frac{1}{2}"
    assert answer_is("Final answer: **B**") == "B"
    assert answer_is("the answer is 1\nbut the answer is 2") == "2"
    assert answer_is("no marker here") is None
    assert answer_is("Final Answer: The final answer is $10,455$. I hope it is correct.") == "10,455"


def test_last_number_handles_signs_commas_decimals_fractions():
    assert last_number("we had 3 apples, then -1,234.5") == "-1,234.5"
    assert last_number("ratio 3 / 4") == "3/4"
    assert last_number("x = .5") == ".5"
    assert last_number("none") is None


def test_auto_order_tag_then_boxed_then_answer_is_then_number():
    text = r"the answer is 3. \boxed{2} <answer>1</answer> 9"
    assert extract(text, "auto") == ("1", "answer_tag")
    assert extract(r"the answer is 3. \boxed{2} 9", "auto") == ("2", "boxed")
    assert extract("the answer is 3. then 9", "auto") == ("3", "answer_is")
    assert extract("got 9 and 10", "auto") == ("10", "last_number")
    assert extract("nothing at all", "auto") == (None, "auto")
    assert extract("  whole  ", "none") == ("whole", "none")


def test_malformed_inputs_do_not_crash():
    assert extract(None, "auto") == (None, "auto")
    assert extract("", "boxed") == (None, "boxed")
    with pytest.raises(ValueError, match="unknown extract mode"):
        extract("x", "boxd")


def test_normalize_text_keeps_numbers_intact():
    # punctuation and articles go, but "-3.5", "1,000" and "3/4" stay numbers
    assert normalize_text("The Answer: -3.5, 1,000 and 3/4!") == "answer -3.5 1,000 and 3/4"
    assert normalize_text(r"$\text{Paris}$.") == "paris"
    assert strip_latex(r"\(x+1\)") == "x+1"


def test_extract_explicit_never_guesses_a_number():
    assert extract_explicit(r"Therefore the probability is \frac{1}{3}") == (None, "auto")
    assert extract_explicit("got 9 and 10") == (None, "auto")
    assert extract_explicit(r"\boxed{2} <answer>1</answer>") == ("1", "answer_tag")
    assert extract_explicit(r"so \boxed{\frac{1}{2}}") == (r"\frac{1}{2}", "boxed")
    assert extract_explicit(None) == (None, "auto")
