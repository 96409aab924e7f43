"""reasoning_gym verifier: entries generated here, scored by reasoning-gym's own score_answer."""

import json

import pytest

from rlvr.rewards import VERIFIERS

rg = pytest.importorskip("reasoning_gym")
verify = VERIFIERS.get("reasoning_gym")


def _entry(name, **kwargs):
    ds = rg.create_dataset(name, size=2, seed=3, **kwargs)
    return json.loads(json.dumps(ds[1]))  # as the data loader stores it: JSON-able


def test_reasoning_gym_right_wrong_missing():
    entry = _entry("basic_arithmetic")
    md = {"rg_dataset": "basic_arithmetic", "rg_kwargs": {"size": 2, "seed": 3}, "rg_entry": entry}
    right = verify(f"work...<answer>{entry['answer']}</answer>", entry["answer"], md)
    assert (right.score, right.extracted) == (1.0, str(entry["answer"]))
    wrong_answer = str(int(entry["answer"]) + 1)  # basic_arithmetic answers are integers
    assert verify(f"<answer>{wrong_answer}</answer>", entry["answer"], md).score == 0.0
    assert verify("no tag", entry["answer"], md).reason == "no <answer> tag"


def test_reasoning_gym_malformed_metadata():
    assert verify("<answer>1</answer>", "1", {}).reason == "error: metadata has no rg_dataset"


def test_reasoning_gym_through_the_scorer_under_the_default_memory_limit():
    # the worker imports reasoning-gym (and numpy) inside its 4 GiB address-space cap
    from rlvr.config import RewardComponentConfig
    from rlvr.rewards import RewardScorer
    from rlvr.types import Example

    entry = _entry("leg_counting")
    example = Example(entry["question"], entry["answer"], "reasoning_gym",
                      {"rg_dataset": "leg_counting", "rg_kwargs": {}, "rg_entry": entry})
    with RewardScorer([RewardComponentConfig("auto")], timeout_s=30, num_workers=1) as scorer:
        out = scorer.score([example, example], [f"<answer>{entry['answer']}</answer>", "<answer>-1</answer>"])
    assert [r.score for r in out] == [1.0, 0.0]
