"""Label-free vote rewards (rlvr.rewards.vote): TTRL's majority label, RLCCF's collective label under both
weightings, the batch rewards' scores / details / bad input, and the metrics."""

from __future__ import annotations

from rlvr.config import RewardComponentConfig
from rlvr.rewards import RewardScorer
from rlvr.rewards.batch import ScoreBatch
from rlvr.rewards.vote import (collective_label, collective_vote, label_free, majority_label, majority_vote,
                               train_votes, vote_metrics)
from rlvr.types import Example


def tag(x) -> str:
    return f"<think>..</think><answer>{x}</answer>"


def test_majority_label_ties_go_to_the_first_seen_and_abstentions_count_in_the_ratio():
    assert majority_label(["4", "3", "3", "4", None]) == ("4", 0.4)
    assert majority_label([" 7 ", "7.", None, "8"]) == ("7", 0.5)  # normalised: spacing, final period
    assert majority_label([None, None]) == (None, 0.0)


def test_collective_label_sample_and_model_weighting_differ():
    # model 0: 3 x "1", 1 x "2" (SC 0.75); model 1: 2 x "2", 2 x "3" (SC 0.5); model 2: 2 x "2", 2 x "4" (SC 0.5)
    answers = [["1", "1", "1", "2"], ["2", "2", "3", "3"], ["2", "2", "4", "4"]]
    # sample: "1" 0.75*3 = 2.25; "2" 0.75*1 + 0.5*2 + 0.5*2 = 2.75 -> "2"
    assert collective_label(answers, "sample") == ("2", [0.75, 0.5, 0.5])
    # model: each model's majority, weighted by its SC: "1" 0.75, "2" 0.5 + 0.5 = 1.0 -> "2"; swap model 2 to "4"s
    assert collective_label(answers, "model")[0] == "2"
    answers[2] = ["4", "4", "4", "2"]  # SC 0.75, majority "4"
    # model: "1" 0.75, "2" 0.5, "4" 0.75 -> tie between "1" and "4": the first seen ("1")
    assert collective_label(answers, "model")[0] == "1"
    # sample: "1" 2.25, "2" 0.75 + 1.0 + 0.75 = 2.5, "4" 2.25 -> "2"
    assert collective_label(answers, "sample")[0] == "2"
    assert collective_label([[None], [None]]) == (None, [0.0, 0.0])


def test_majority_vote_rewards_agreement_and_never_reads_the_answer_for_the_score():
    a, b = Example("1+1", "2"), Example("2+2", None)  # b has no answer: label accuracy unknown
    texts = [tag(2), tag(3), tag(2), "no tag", tag(5), tag(4), tag(4), tag(5)]
    batch = ScoreBatch([a] * 4 + [b] * 4, texts, [{}] * 8)
    out = majority_vote(batch, None, extract="answer_tag")
    assert [r.score for r in out] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]  # b: tie 5 / 4 -> the first seen, 5
    assert out[0].details["vote_label"] == "2" and out[0].details["majority_ratio"] == 0.5
    assert out[0].details["label_correct"] is True and out[4].details["label_correct"] is None
    wrong = majority_vote(ScoreBatch([Example("1+1", "3")] * 2, [tag(2), tag(2)], [{}] * 2), None,
                          extract="answer_tag")
    assert [r.score for r in wrong] == [1.0, 1.0] and wrong[0].details["label_correct"] is False
    metrics = vote_metrics(out + wrong)
    assert metrics["vote/label_accuracy"] == 4 / 6  # over the 6 completions whose row has an answer: 4 right, 2 wrong
    assert metrics["vote/majority_ratio"] == (4 * 0.5 + 4 * 0.5 + 2 * 1.0) / 10


def test_a_group_without_any_answer_scores_zero_with_a_reason(caplog):
    batch = ScoreBatch([Example("q", "1")] * 3, ["nothing", "at", "all"], [{}] * 3)
    out = majority_vote(batch, None, extract="answer_tag")
    assert [r.score for r in out] == [0.0] * 3 and "no extractable answer" in out[0].reason
    assert "has an extractable answer; the group scores 0" in caplog.text
    assert vote_metrics(out)["vote/no_label_frac"] == 1.0


def test_collective_vote_uses_the_peers_of_the_row():
    peers = {"big": [tag(7)] * 4, "mid": [tag(7), tag(7), tag(6), tag(6)]}
    ex = Example("q", "7", metadata={"peers": peers})
    batch = ScoreBatch([ex] * 4, [tag(6), tag(6), tag(6), tag(7)], [{}] * 4)
    out = collective_vote(batch, None, extract="answer_tag")
    assert [r.score for r in out] == [0.0, 0.0, 0.0, 1.0]  # "7": 0.75*1 + 1*4 + 0.5*2 beats "6": 0.75*3 + 0.5*2
    assert out[0].details["self_consistency"] == [0.75, 1.0, 0.5] and out[0].details["label_correct"] is True
    alone = collective_vote(ScoreBatch([Example("q", "7", metadata={"peers": 3})] * 2, [tag(6), tag(6)], [{}] * 2),
                            None, extract="answer_tag")
    assert [r.score for r in alone] == [1.0, 1.0]  # a malformed peers field: the policy votes alone (logged)


def test_through_the_scorer_and_the_helpers():
    comps = [RewardComponentConfig(name="majority_vote", params={"extract": "answer_tag", "n_train": 2})]
    scorer = RewardScorer(comps, timeout_s=5, num_workers=1)
    try:
        ex = Example("q", None)
        out = scorer.score([ex] * 3, [tag(1), tag(1), tag(2)], [{}] * 3)
    finally:
        scorer.close()
    assert [r.score for r in out] == [1.0, 1.0, 0.0]
    assert train_votes(comps) == 2 and label_free(comps)
    assert not label_free(comps + [RewardComponentConfig(name="exact_match")])
