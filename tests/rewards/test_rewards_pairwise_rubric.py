"""pairwise_judge (BRPO's comparisons) and rubric_judge against local HTTP judges, failure paths included."""

from __future__ import annotations

import time

import pytest

from rlvr.rewards import RewardScorer
from rlvr.rewards.batch import ScoreBatch
from rlvr.rewards.pairwise import group_seed, pairwise_judge, parse_verdict, reference_index
from rlvr.rewards.rubric import parse_rubric, parse_verdicts, rubric_judge
from rlvr.types import Example

from tests.rewards.judge_servers import JudgeServer, prefers_shorter

FAST = {"retries": 2, "backoff_s": 0.01}


def group_batch(texts: list[str], seed: int = 7) -> ScoreBatch:
    ex = Example("Write a line.", None, prompt="Write a line.")
    return ScoreBatch([ex] * len(texts), texts, [{"question": ex.question, "sample_seed": seed}] * len(texts))


def test_parse_verdict():
    assert parse_verdict("A is clearer. [[A]]") == 1
    assert parse_verdict("[[A]] at first, but on reflection [[B]]") == -1
    assert parse_verdict("[[C]]") == 0 and parse_verdict("[[tie]]") == 0
    assert parse_verdict("Verdict: B") == -1 and parse_verdict("The better response is A.") == 1
    assert parse_verdict(" B ") == -1
    assert parse_verdict("I cannot decide between them") is None
    assert parse_verdict("Score A: 7, Score B: 4", "scores") == 1
    assert parse_verdict("Score A: 7, Score B: 7.5", "scores", tie_margin=1.0) == 0
    assert parse_verdict("Score A: 7", "scores") is None
    with pytest.raises(ValueError, match="unknown pairwise parser"):
        parse_verdict("", "votes")


def test_reference_choice_is_seeded_and_uniform():
    assert reference_index(8, 123) == reference_index(8, 123)
    picks = {reference_index(4, s) for s in range(200)}
    assert picks == {0, 1, 2, 3}
    assert group_seed({"sample_seed": 5}, "p", 0) != group_seed({"sample_seed": 6}, "p", 0)
    assert group_seed({}, "prompt", 0) == group_seed({}, "prompt", 0)  # a prompt hash when no sampling seed


def test_pairwise_outcomes_against_the_seeded_reference():
    texts = ["aaaa", "aa", "aaaaaa", "aaaa", "a"]
    batch = group_batch(texts)
    ref = reference_index(5, group_seed(batch.metadata[0], "Write a line.", 0))
    with JudgeServer(prefers_shorter) as judge:
        out = pairwise_judge(batch, timeout_s=10, base_url=judge.url, **FAST)
        assert judge.requests == 2 * 4  # both orders for the 4 non-reference completions
    expected = [0.0 if i == ref else float((len(texts[ref]) > len(t)) - (len(texts[ref]) < len(t)))
                for i, t in enumerate(texts)]
    assert [r.score for r in out] == expected
    assert out[ref].details["brpo_reference"] and out[ref].reason == "brpo reference"
    words = {"better than the reference", "worse than the reference", "tied with the reference"}
    assert {r.reason for i, r in enumerate(out) if i != ref} <= words


def test_both_orders_cancel_a_position_biased_judge():
    batch = group_batch(["x", "yy", "zzz"])
    with JudgeServer(lambda p: "[[A]]") as judge:  # always prefers whatever is shown first
        both = pairwise_judge(batch, timeout_s=10, base_url=judge.url, **FAST)
        one = pairwise_judge(batch, timeout_s=10, base_url=judge.url, both_orders=False, **FAST)
    assert [r.score for r in both] == [0.0, 0.0, 0.0]
    assert sorted(r.score for r in one) == [0.0, 1.0, 1.0]  # shown first, so "better"; the reference 0


def test_a_group_of_one_has_nothing_to_compare():
    out = pairwise_judge(group_batch(["only"]), timeout_s=1, base_url="http://127.0.0.1:9/v1")
    assert out[0].score == 0.0 and "group of one" in out[0].reason


@pytest.mark.parametrize("mode, reason", [("garbage", "bad response"), ("http500", "HTTP 500")])
def test_judge_failures_score_zero_with_the_reason(mode, reason, caplog):
    with JudgeServer(mode=mode) as judge:
        out = pairwise_judge(group_batch(["a", "bb"]), timeout_s=10, base_url=judge.url, **FAST)
        assert judge.requests == 2 * 3  # each order tried 1 + retries times
    scores = sorted(r.score for r in out)
    assert scores == [0.0, 0.0]
    failed = [r for r in out if not r.details.get("brpo_reference")][0]
    assert failed.reason.startswith("judge failed") and reason in failed.reason and "3 attempts" in failed.reason
    assert "comparisons failed" in caplog.text


def test_a_stalling_judge_is_cut_at_timeout_s_retries_included():
    with JudgeServer(mode="stall", delay=3.0) as judge:
        t0 = time.monotonic()
        out = pairwise_judge(group_batch(["a", "bb"]), timeout_s=0.6, base_url=judge.url, retries=5, backoff_s=0.05)
        elapsed = time.monotonic() - t0
    assert elapsed < 2.0  # both orders in parallel, each bounded by timeout_s: no 3 s stall, no 6 retries
    failed = [r for r in out if not r.details.get("brpo_reference")][0]
    assert failed.score == 0.0 and "timeout" in failed.reason and "within 0.6s" in failed.reason


def test_a_flaky_judge_succeeds_on_retry_and_an_unparsable_reply_scores_zero():
    with JudgeServer(lambda p: "[[B]]", mode="flaky", fail_first=1) as judge:
        out = pairwise_judge(group_batch(["a", "bb"]), timeout_s=10, base_url=judge.url, both_orders=False, **FAST)
        assert judge.requests == 2  # a 500, then the retry
    assert sorted(r.score for r in out) == [-1.0, 0.0]  # the compared one is shown as A, and B (the reference) wins
    with JudgeServer(lambda p: "hmm") as judge:
        out = pairwise_judge(group_batch(["a", "bb"]), timeout_s=10, base_url=judge.url, **FAST)
    failed = [r for r in out if not r.details.get("brpo_reference")][0]
    assert failed.score == 0.0 and "unparsable judge reply" in failed.reason


def test_concurrent_requests_are_bounded():
    with JudgeServer(prefers_shorter, delay=0.15) as judge:
        pairwise_judge(group_batch(["a" * k for k in range(1, 9)]), timeout_s=10, base_url=judge.url,
                       concurrency=3, **FAST)
        assert judge.requests == 14 and 1 < judge.max_in_flight <= 3


def test_pairwise_judge_through_the_scorer_and_the_loop_seeds():
    a, b = Example("q1", None, prompt="q1"), Example("q2", None, prompt="q2")
    examples = [a, a, a, b, b, b]
    texts = ["x", "xx", "xxx", "yyy", "y", "yy"]
    extra = [{"sample_seed": 11}] * 3 + [{"sample_seed": 12}] * 3
    with JudgeServer(prefers_shorter) as judge, \
            RewardScorer([{"name": "pairwise_judge", "params": {"base_url": judge.url, "timeout_s": 5, **FAST}}],
                         timeout_s=10, num_workers=1) as scorer:
        first = scorer.score(examples, texts, extra)
        again = scorer.score(examples, texts, extra)
    assert [r.score for r in first] == [r.score for r in again]  # the same seeds pick the same references
    for group in ([0, 1, 2], [3, 4, 5]):
        refs = [i for i in group if first[i].details.get("brpo_reference")]
        assert len(refs) == 1
        j = refs[0]
        for i in group:
            if i != j:
                assert first[i].score == float((len(texts[j]) > len(texts[i])) - (len(texts[j]) < len(texts[i])))


# ---------------------------------------------------------------------------------------------------------- rubric

RUBRIC = [{"criterion": "mentions the sea", "weight": 2}, "is one sentence", {"criterion": "rhymes", "weight": 1}]


def test_parse_rubric_and_verdicts():
    assert parse_rubric(RUBRIC) == [("mentions the sea", 2.0), ("is one sentence", 1.0), ("rhymes", 1.0)]
    assert parse_rubric('["a", {"criterion": "b", "weight": 0.5}]') == [("a", 1.0), ("b", 0.5)]
    for bad, why in [([], "non-empty"), ("not json", "JSON"), ([{"weight": 1}], "criterion 1"),
                     ([{"criterion": "x", "weight": 0}], "> 0")]:
        with pytest.raises(ValueError, match=why):
            parse_rubric(bad)
    assert parse_verdicts("1: yes\n2. No\n**3)** not met\n4: yes", 3) == {1: True, 2: False, 3: False}  # 4 > n
    assert parse_verdicts("1: yes\n2: no\n3: yes\n2: yes", 3) == {1: True, 2: True, 3: True}
    assert parse_verdicts("Criterion 3 - pass", 3) == {3: True}


def test_rubric_judge_is_the_weighted_fraction_met():
    md = {"question": "Write about the sea.", "rubric": RUBRIC}
    with JudgeServer(lambda p: "1: yes\n2: no\n3: yes") as judge:
        out = rubric_judge("The sea is wide.", None, md, base_url=judge.url, **FAST)
        prompt = judge.prompts[0]
    assert out.score == pytest.approx((2 + 1) / 4)
    assert [c["met"] for c in out.details["criteria"]] == [True, False, True]
    assert out.reason == "2 of 3 criteria met"
    assert "1. mentions the sea\n2. is one sentence\n3. rhymes" in prompt and "Write about the sea." in prompt
    with JudgeServer(lambda p: "1: yes") as judge:
        partial = rubric_judge("x", None, md, base_url=judge.url, **FAST)
    assert partial.score == pytest.approx(0.5) and "2 without a verdict" in partial.reason
    assert partial.details["criteria"][1]["met"] is None
    with JudgeServer(lambda p: "I like it") as judge:
        assert "unparsable" in rubric_judge("x", None, md, base_url=judge.url, **FAST).reason
    assert "no rubric" in rubric_judge("x", None, {}, base_url="http://127.0.0.1:9/v1").reason
    assert "bad rubric" in rubric_judge("x", None, {"rubric": "[]"}, base_url="http://127.0.0.1:9/v1").reason
    with JudgeServer(mode="http500") as judge:
        failed = rubric_judge("x", None, md, base_url=judge.url, **FAST)
    assert failed.score == 0.0 and "HTTP 500" in failed.reason


def test_rubric_verdicts_reach_the_completion_details_through_the_worker_pool():
    ex = Example("Write about the sea.", "", verifier="rubric_judge", metadata={"rubric": RUBRIC})
    with JudgeServer(lambda p: "1: no\n2: yes\n3: yes") as judge, \
            RewardScorer([{"name": "think_format", "weight": 0.0},
                          {"name": "rubric_judge", "params": {"base_url": judge.url, **FAST}}],
                         timeout_s=10, num_workers=1) as scorer:
        out = scorer.score([ex], ["The sea."])
    assert out[0].score == pytest.approx(0.5)
    verdicts = out[0].details["component_details"]["rubric_judge"]["criteria"]
    assert [c["met"] for c in verdicts] == [False, True, True]
