"""answer_format (math and mcqa): tag | boxed | tag_or_boxed read only that span (none -> 0, "no answer span");
any keeps the extract order and math-verify on the whole completion. The default comes from the prompt config."""

import pytest

from rlvr.config import ConfigError, RunConfig, config_from_dict
from rlvr.rewards import VERIFIERS
from rlvr.trainer.loop import reward_metrics

SPRAY = "I think 12 or 7, maybe 3 ... 540at 540"  # numbers sprayed at random, no answer span
OPTS = {"options": ["red", "green", "blue"]}


def math(completion, ref="540", **params):
    return VERIFIERS.get("math")(completion, ref, {}, **params)


def mcqa(completion, ref="B", **params):
    return VERIFIERS.get("mcqa")(completion, ref, OPTS, **params)


@pytest.mark.parametrize("fmt, completion, score", [
    ("tag", "work 3 <answer>540</answer>", 1.0),
    ("tag", r"so \boxed{540}", 0.0),                       # a box is not a tag
    ("boxed", r"so \boxed{540}", 1.0),
    ("boxed", "<answer>540</answer>", 0.0),
    ("tag_or_boxed", "<answer>540</answer>", 1.0),
    ("tag_or_boxed", r"thus \boxed{540}.", 1.0),
    ("tag_or_boxed", r"<answer>541</answer> \boxed{540}", 0.0),  # the tag wins
    ("tag_or_boxed", "<answer>\\frac{1080}{2}</answer>", 1.0),  # the span still goes through math-verify
])
def test_math_answer_format_reads_only_its_span(fmt, completion, score):
    assert math(completion, answer_format=fmt).score == score


@pytest.mark.parametrize("fmt", ["tag", "boxed", "tag_or_boxed"])
def test_math_no_span_scores_zero_with_the_reason(fmt):
    out = math(SPRAY + " the answer is 540", answer_format=fmt)
    assert (out.score, out.reason, out.details) == (0.0, "no answer span", {"no_answer_span": True})


def test_math_any_keeps_todays_results():
    assert math(SPRAY).score == math(SPRAY, answer_format="any").score == 1.0  # today: the last number counts
    assert math("the answer is 540", answer_format="any").reason == "correct"
    assert math("<answer>5</answer>", answer_format="any").score == 0.0


@pytest.mark.parametrize("fmt, completion, score, reason", [
    ("tag", "<answer>(B)</answer>", 1.0, "correct"),
    ("boxed", r"\boxed{green}", 1.0, "correct"),
    ("tag_or_boxed", r"\boxed{A}", 0.0, "wrong"),
    ("tag_or_boxed", "I pick B", 0.0, "no answer span"),
    ("any", "I pick B", 1.0, "correct"),  # today: the last line
])
def test_mcqa_answer_format(fmt, completion, score, reason):
    out = mcqa(completion, answer_format=fmt)
    assert (out.score, out.reason) == (score, reason)


def components(prompt=None, comps=None):
    tree = {"reward": {"components": comps or [{"name": "auto"}, {"name": "math"}, {"name": "think_format"},
                                               {"name": "mcqa", "params": {"answer_format": "any"}}]}}
    if prompt:
        tree["prompt"] = prompt
    return [c.params for c in config_from_dict(tree).reward.components]


def test_default_from_the_prompt_config():
    tagged = [{"answer_format": "tag_or_boxed"}, {"answer_format": "tag_or_boxed"}, {}, {"answer_format": "any"}]
    assert components({"system_prompt": "r1"}) == tagged
    assert components({"template": "{question}\nPut the result in <answer></answer>."}) == tagged
    assert components({"template": "Q: {question}\nA:"}) == [{}, {}, {}, {"answer_format": "any"}]  # any


def test_bad_answer_format_is_a_config_error():
    with pytest.raises(ConfigError, match=r"answer_format: 'tags' is not one of .*did you mean 'tag'"):
        components(comps=[{"name": "math", "params": {"answer_format": "tags"}}])
    with pytest.raises(ConfigError, match="only the math and mcqa verifiers"):
        components(comps=[{"name": "think_format", "params": {"answer_format": "tag"}}])


def test_auto_passes_answer_format_only_to_math_and_mcqa():
    from rlvr.config import RewardComponentConfig as C
    from rlvr.rewards import RewardScorer
    from rlvr.types import Example

    exs = [Example(question="q", answer="540", verifier="math"), Example(question="q", answer="540", verifier="exact_match")]
    with RewardScorer([C("auto", params={"answer_format": "tag_or_boxed"})], timeout_s=5, num_workers=1) as s:
        out = s.score(exs, [SPRAY, "the answer is 540"])
    assert (out[0].score, out[0].reason) == (0.0, "no answer span")
    assert out[1].score == 1.0  # exact_match did not receive (or choke on) answer_format


def test_no_answer_frac_metric():
    import torch
    from types import SimpleNamespace

    from rlvr.types import RewardResult

    results = [RewardResult(0.0, reason="no answer span", details={"no_answer_span": True}),
               RewardResult(1.0, reason="correct"), RewardResult(0.0, reason="wrong"), RewardResult(1.0)]
    batch = SimpleNamespace(rewards=torch.tensor([0.0, 1.0, 0.0, 1.0]), response_mask=torch.ones(4, 3),
                            truncated=torch.zeros(4, dtype=torch.bool))
    cfg = RunConfig()
    cfg.rollout.n = 2
    assert reward_metrics(cfg, batch, None, results)["reward/no_answer_frac"] == 0.25
