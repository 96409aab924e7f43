"""mcqa, table_em, table_f1, fact_verification (expected values worked out by hand in comments)."""

import pytest

from rlvr.rewards import VERIFIERS

mcqa = VERIFIERS.get("mcqa")
table_em = VERIFIERS.get("table_em")
table_f1 = VERIFIERS.get("table_f1")
fact = VERIFIERS.get("fact_verification")

OPTIONS = {"options": ["London", "Paris", "Rome", "Berlin"]}  # A B C D


@pytest.mark.parametrize(
    "completion",
    ["<answer>B</answer>", "<answer>(B)</answer>", "B.", "Answer: B", "<answer>B) Paris</answer>",
     "<answer>Paris</answer>", "The answer is (B).", "I choose **B**", r"\boxed{B}", "C looks wrong.\nAnswer: b"],
)
def test_mcqa_true_positives(completion):
    r = mcqa(completion, "B", OPTIONS)
    assert (r.score, r.extracted) == (1.0, "B"), r


@pytest.mark.parametrize(
    "completion, reason",
    [
        ("<answer>A</answer>", "wrong"),
        ("<answer>Rome</answer>", "wrong"),
        ("<answer>A or B</answer>", "names several options: A, B"),
        ("<answer>Paris and Rome</answer>", "names several options: B, C"),
        ("<answer>A dog</answer>", "no option found"),   # a capital "A" before a lower-case word is the article
        ("", "no answer found"),
    ],
)
def test_mcqa_true_negatives(completion, reason):
    r = mcqa(completion, "B", OPTIONS)
    assert (r.score, r.reason) == (0.0, reason), r


def test_mcqa_reference_forms_and_dict_options():
    assert mcqa("<answer>B</answer>", "Paris", OPTIONS).score == 1.0   # option text reference
    assert mcqa("<answer>B</answer>", 1, OPTIONS).score == 1.0         # 0-based index: 1 -> B
    assert mcqa("<answer>(b)</answer>", "(B)", {}).score == 1.0         # no options: letters A-J
    md = {"options": {"A": "yes", "B": "no"}}
    assert mcqa("<answer>no</answer>", "B", md).score == 1.0
    assert mcqa("<answer>B</answer>", "Madrid", OPTIONS).reason.startswith("error: reference")
    # "1" is part of "10": the longest matching option wins
    assert mcqa("<answer>10</answer>", "B", {"options": ["1", "10"]}).score == 1.0


def test_table_em():
    # list reference = set of items; "1,000" and "1000" are the same number
    assert table_em("<answer>1,000 | Paris</answer>", ["Paris", "1000"], {}).score == 1.0
    assert table_em("<answer>Paris</answer>", ["Paris", "1000"], {}).score == 0.0
    assert table_em("<answer>2.0</answer>", "2", {}).score == 1.0
    assert table_em("<answer>The Red Car.</answer>", "red car", {}).score == 1.0
    assert table_em("nothing", "x", {}, extract="answer_tag").score == 0.0
    assert table_em("<answer>x</answer>", "", {}).reason == "error: empty reference"


def test_table_f1():
    # pred {red, bus}, gold {red, car}: 1 common; P = R = 1/2 -> F1 = 1/2
    assert table_f1("<answer>red bus</answer>", "red car", {}).score == pytest.approx(0.5)
    # pred {red}, gold {red, car}: P = 1, R = 1/2 -> F1 = 2*(1*0.5)/1.5 = 2/3
    assert table_f1("<answer>red</answer>", "red car", {}).score == pytest.approx(2 / 3)
    assert table_f1("<answer>the red car</answer>", "red car", {}).score == 1.0
    assert table_f1("<answer>blue</answer>", "red car", {}).score == 0.0


@pytest.mark.parametrize(
    "completion, reference",
    [("<answer>Refuted</answer>", "false"), ("<answer>not supported</answer>", "refuted"),
     ("<answer>Supported</answer>", "SUPPORTS"), ("The claim is true.", 1), ("<answer>yes</answer>", True),
     ("<answer>Not enough info</answer>", "NEI"), ("<answer>entailed</answer>", "entailment")],
)
def test_fact_verification_true_positives(completion, reference):
    assert fact(completion, reference, {}).score == 1.0


def test_fact_verification_negatives_and_malformed():
    assert fact("<answer>supported</answer>", "refuted", {}).reason == "wrong"
    # "not supported" must not be read as "supported"
    assert fact("<answer>not supported</answer>", "supported", {}).score == 0.0
    assert fact("<answer>yes or no</answer>", "yes", {}).reason == "names several labels: true, false"
    assert fact("<answer>maybe</answer>", "yes", {}).reason == "no label found"
    assert fact("<answer>yes</answer>", "banana", {}).reason.startswith("error: reference")
