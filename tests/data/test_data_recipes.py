"""Data recipes: the curriculum samplers (skip_solved, weakness), weighted mixtures, the difficulty filter, 1-shot
selection, source statistics, and their config checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlvr.config import ConfigError, DataConfig, SourceConfig, config_from_dict, source_name, stage_configs
from rlvr.data import load_examples
from rlvr.data.filter import KeepRange, filtered_rows, histogram, histogram_text, parse_keep
from rlvr.data.sampler import MixtureSampler, PromptSampler, SolvedTracker, WeaknessSampler, make_sampler
from rlvr.data.select import accuracy_histories, rank_by_variance
from rlvr.data.sources import DataReport, BadRow
from rlvr.data.stats import answer_type, source_stats
from rlvr.types import Example


def examples(n: int, source: str = "s", origin: str = "") -> list[Example]:
    return [Example(question=f"q{i}", answer=str(i), source=source, index=i, origin=origin) for i in range(n)]


def indices(batch: list[Example]) -> list[int]:
    return [ex.index for ex in batch]


# ------------------------------------------------------------------------------------------------ skip_solved


def test_solved_tracker_blocks_after_n_all_solved_visits_and_keeps_a_floor():
    t = SolvedTracker(10, skip_solved=2, min_active=0.5, batch_size=2)
    t.observe([0, 1, 2], [1.0, 1.0, 0.5])
    assert not t.blocked().any()  # one solved visit is not two
    t.observe([0, 1, 2], [1.0, 0.9, 1.0])
    assert t.blocked().tolist() == [True] + [False] * 9  # 0: two in a row; 1 broke its streak; 2 has one
    for i in range(10):  # everything solved twice, 0 first (seen longest ago after this loop: 0)
        t.observe([i], [1.0])
        t.observe([i], [1.0])
    blocked = t.blocked()
    assert blocked.sum() == 5  # min_active 0.5 of 10 stay in play
    assert not blocked[:5].any() and blocked[5:].all()  # the oldest solved come back first


def test_prompt_sampler_passes_over_solved_prompts_but_never_empties():
    s = PromptSampler(examples(6), batch_size=2, seed=0, shuffle=False, skip_solved=1, min_active=0.2)
    assert indices(s.next_batch()) == [0, 1]
    s.observe(s.examples[:2], [1.0, 0.0])  # 0 solved by every completion, 1 not
    assert indices(s.next_batch()) == [2, 3]
    s.observe(s.examples[2:4], [1.0, 1.0])
    assert indices(s.next_batch()) == [4, 5]
    s.observe(s.examples[4:6], [1.0, 1.0])
    # 5 of 6 solved; min_active 0.2 of 6 -> 2 (and one batch = 2): 1 and the oldest solved one (0) stay
    assert indices(s.next_batch()) == [0, 1]
    assert indices(s.next_batch()) == [0, 1]
    assert s.metrics() == {"data/skipped_solved": 4.0}


def test_prompt_sampler_without_curriculum_is_unchanged_by_observe():
    a = PromptSampler(examples(7), batch_size=3, seed=5)
    b = PromptSampler(examples(7), batch_size=3, seed=5)
    for _ in range(5):
        batch = a.next_batch()
        a.observe(batch, [1.0] * len(batch))
        assert indices(batch) == indices(b.next_batch())
    assert "solved" not in a.state_dict()


# ------------------------------------------------------------------------------------------------ weakness


def test_weakness_weights_follow_the_failure_ema_with_a_floor():
    s = WeaknessSampler(examples(4), batch_size=2, seed=0, floor=0.1, smoothing=0.5, prior=1.0)
    assert np.allclose(s.weights(), [1.0] * 4)
    s.observe(s.examples[:2], [1.0, 0.25])
    # f0 = 0.5 * 1 + 0.5 * 0 = 0.5, f1 = 0.5 + 0.5 * 0.75 = 0.875; w = 0.1 + 0.9 f
    assert np.allclose(s.fail, [0.5, 0.875, 1.0, 1.0])
    assert np.allclose(s.weights(), [0.55, 0.8875, 1.0, 1.0])
    for _ in range(30):  # solved over and over: f -> 0, but the weight stays at the floor
        s.observe(s.examples[:1], [1.0])
    assert s.fail[0] < 1e-8 and s.weights()[0] == pytest.approx(0.1)


def test_weakness_sampler_draws_in_proportion_to_the_weights():
    s = WeaknessSampler(examples(4), batch_size=1, seed=1, floor=0.2, smoothing=1.0, prior=1.0)
    s.observe(s.examples, [1.0, 1.0, 0.5, 0.0])  # f = [0, 0, 0.5, 1] -> w = [0.2, 0.2, 0.6, 1.0]
    counts = np.bincount([s.next_batch()[0].index for _ in range(4000)], minlength=4)
    expected = np.array([0.2, 0.2, 0.6, 1.0]) / 2.0
    assert np.abs(counts / 4000 - expected).max() < 0.03  # binomial sd <= 0.008
    assert counts.min() > 0  # never starved


def test_weakness_batch_is_without_replacement_and_spans_rounds_when_larger_than_the_pool():
    s = WeaknessSampler(examples(3), batch_size=5, seed=0)
    batch = indices(s.next_batch())
    assert len(batch) == 5 and sorted(batch[:3]) == [0, 1, 2] and len(set(batch[3:])) == 2


def test_weakness_sampler_resumes_exactly_with_its_statistics():
    def run(stop_at: int | None):
        s = WeaknessSampler(examples(20), batch_size=4, seed=3, skip_solved=2)
        seq = []
        for step in range(8):
            if stop_at is not None and step == stop_at:
                state = json.loads(json.dumps(s.state_dict()))  # as a checkpoint stores it
                s = WeaknessSampler(examples(20), batch_size=4, seed=3, skip_solved=2)
                s.load_state_dict(state)
            batch = s.next_batch()
            s.observe(batch, [float((ex.index * 7 + step) % 3 == 0) for ex in batch])
            seq.append(indices(batch))
        return seq

    assert run(None) == run(4)


def test_a_weakness_state_does_not_load_into_a_uniform_sampler():
    from rlvr.data import DataError

    w = WeaknessSampler(examples(5), batch_size=2, seed=0)
    u = PromptSampler(examples(5), batch_size=2, seed=0)
    with pytest.raises(DataError, match="not a weakness sampler"):
        w.load_state_dict(u.state_dict())


# ------------------------------------------------------------------------------------------------ mixtures


def mixture(weights=(0.6, 0.3, 0.1), seed=0, batch_size=16):
    names = ["a", "b", "c"][: len(weights)]
    children = [(n, PromptSampler(examples(10 + 5 * k, source=n, origin=n), batch_size, seed + k))
                for k, n in enumerate(names)]
    return MixtureSampler(children, list(weights), batch_size, seed)


def test_mixture_source_frequencies_match_the_weights():
    m = mixture()
    drawn = [ex.origin for _ in range(300) for ex in m.next_batch()]  # 4800 slots
    for name, w in zip("abc", (0.6, 0.3, 0.1)):
        share = drawn.count(name) / len(drawn)
        assert abs(share - w) < 0.025, (name, share)  # binomial sd <= 0.0071: > 3.5 sd


def test_mixture_resumes_exactly():
    def run(stop_at):
        m = mixture(seed=4)
        seq = []
        for step in range(10):
            if step == stop_at:
                state = json.loads(json.dumps(m.state_dict()))
                m = mixture(seed=4)
                m.load_state_dict(state)
            seq.append([(ex.origin, ex.index) for ex in m.next_batch()])
        return seq

    assert run(None) == run(6)


def test_mixture_routes_observations_to_each_source_and_logs_per_source_metrics():
    children = [("a", WeaknessSampler(examples(3, "f.jsonl", "a"), 2, 0)),
                ("b", PromptSampler(examples(3, "f.jsonl", "b"), 2, 0, skip_solved=1))]
    m = MixtureSampler(children, [1, 1], 2, 0)
    a0, b0 = children[0][1].examples[0], children[1][1].examples[0]  # same source file and index, other origin
    m.observe([a0, b0], [1.0, 1.0])
    assert children[0][1].fail[0] == pytest.approx(0.5) and children[0][1].fail[1] == 1.0
    assert children[1][1].solved.streak.tolist() == [1, 0, 0]
    assert set(m.metrics()) == {"data/failure_rate_mean/a", "data/weight_max_over_mean/a", "data/skipped_solved/b"}


def test_make_sampler_and_load_mixture_keep_each_sources_fields_and_verifier(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"q": f"{i}+1", "a": str(i + 1)}) + "\n" for i in range(4)))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"question": f"{i}*2", "answer": str(2 * i)}) + "\n"
                                              for i in range(6)) + "not json\n")
    cfg = DataConfig(sources=[SourceConfig(source=str(tmp_path / "a.jsonl"), weight=3, question_field="q",
                                           answer_field="a", verifier="exact_match"),
                              SourceConfig(source=str(tmp_path / "b.jsonl"), name="times")])
    report = load_examples(cfg)
    assert [ex.origin for ex in report.examples] == ["a"] * 4 + ["times"] * 6
    assert {ex.verifier for ex in report.examples if ex.origin == "a"} == {"exact_match"}
    assert {ex.verifier for ex in report.examples if ex.origin == "times"} == {"math"}
    assert report.examples[0].question == "0+1" and report.bad_rows[0].reason.startswith("times: ")
    sampler = make_sampler(cfg, report.examples, batch_size=8, seed=0)
    assert isinstance(sampler, MixtureSampler) and sampler.names == ["a", "times"]
    assert np.allclose(sampler.weights, [0.75, 0.25])


# ------------------------------------------------------------------------------------------------ config


def test_config_checks_for_sources_and_curricula():
    ok = {"data": {"sources": [{"source": "x.jsonl"}, {"source": "reasoning_gym:countdown", "weight": 0.5}]}}
    cfg = config_from_dict(ok)
    assert [source_name(s) for s in cfg.data.sources] == ["x", "countdown"]
    bad = [
        ({"data": {"source": "y.jsonl", "sources": [{"source": "x.jsonl"}]}}, "exclude each other"),
        ({"data": {"sources": [{"source": "x.jsonl", "weight": 0}]}}, "weight must be"),
        ({"data": {"sources": [{"source": "d/x.jsonl"}, {"source": "e/x.jsonl"}]}}, "used twice"),
        ({"data": {"sources": [{"weight": 1}]}}, "source is empty"),
        ({"data": {"sources": [{"source": "x.jsonl", "verifier": "mathh"}]}}, "mathh"),
        ({"data": {"sampling": "hard"}}, "data.sampling"),
        ({"data": {"sampling": "weakness", "weakness_floor": 0}}, "starved"),
        ({"data": {"skip_solved": -1}}, "skip_solved"),
        ({"data": {"min_active": 0}}, "min_active"),
    ]
    for tree, message in bad:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(tree)


def test_stage_configs_apply_each_stage_on_the_base():
    cfg = config_from_dict({
        "data": {"source": "base.jsonl"}, "trainer": {"steps": 50, "lr": 1e-5},
        "algorithm": {"name": "grpo", "kl_coef": 0.01},
        "stages": [{"name": "math", "trainer": {"steps": 5}},
                   {"name": "code", "data": {"source": "code.jsonl"}, "algorithm": {"clip_high": 0.3}},
                   {"name": "dapo", "algorithm": "dapo"},
                   {"name": "mix", "data": {"sources": [{"source": "a.jsonl"}, {"source": "b.jsonl"}]}}]})
    (n1, s1), (n2, s2), (n3, s3), (_, s4) = stage_configs(cfg)
    assert s4.data.source == "" and len(s4.data.sources) == 2  # a mixture replaces the base's single source
    assert (n1, s1.trainer.steps, s1.trainer.lr, s1.data.source) == ("math", 5, 1e-5, "base.jsonl")
    assert (s2.trainer.steps, s2.data.source, s2.algorithm.clip_high, s2.algorithm.kl_coef) == \
        (50, "code.jsonl", 0.3, 0.01)  # same preset: the stage's keys change the base's
    assert s3.algorithm.name == "dapo" and s3.algorithm.dynamic_sampling and s3.algorithm.kl_coef == 0.0
    assert all(not s.stages for _, s in stage_configs(cfg))


@pytest.mark.parametrize("stages, message", [
    ([{"trainer": {"steps": 1}}], "name"),
    ([{"name": "a"}, {"name": "a"}], "earlier stage"),
    ([{"name": "a b"}], "name"),
    ([{"name": "a", "output_dir": "x"}], "not a section"),
    ([{"name": "a", "trainer": {"stepz": 1}}], r"stages\[0\] \(a\): unknown key 'trainer.stepz'"),
    ([{"name": "a", "rollout": {"n": 0}}], r"stages\[0\] \(a\): rollout.n must be > 0"),
    ([{"name": "a", "checkpoint": {"resume": "runs/x/checkpoints/step_000010"}}], "auto or never"),
])
def test_bad_stages_are_config_errors_at_load_time(stages, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"stages": stages})


# ------------------------------------------------------------------------------------------------ filter


def test_parse_keep():
    assert parse_keep("0.1<=pass<=0.9") == KeepRange(0.1, 0.9, True, True)
    assert parse_keep("0 < pass < 1") == KeepRange(0.0, 1.0, False, False)
    assert parse_keep("pass>=0.2") == KeepRange(low=0.2)
    assert parse_keep("pass<0.5") == KeepRange(high=0.5, high_inclusive=False)
    keep = parse_keep("0<pass<1")
    assert [keep(r) for r in (0.0, 0.125, 1.0)] == [False, True, False]
    for bad in ("0.1<=acc<=0.9", "pass=0.5", "0.9<=pass<=0.1", "pass<=1.5"):
        with pytest.raises(ValueError):
            parse_keep(bad)


def test_filtered_rows_and_histogram():
    from rlvr.eval.runner import problem_key

    exs = [Example(question=f"q{i}", answer=str(i), source="s", index=i, metadata={"extra": i}, verifier="math")
           for i in range(4)]
    correct = [0, 1, 4, 8]
    records = {problem_key(ex): {"correct": c, "n": 8} for ex, c in zip(exs, correct)}
    rows, rates = filtered_rows(exs, records, parse_keep("0.1<=pass<=0.9"), DataConfig(question_field="problem"))
    assert rates == [0.0, 0.125, 0.5, 1.0]
    assert rows == [{"problem": "q1", "answer": "1", "extra": 1, "verifier": "math", "pass_rate": 0.125, "pass_n": 8},
                    {"problem": "q2", "answer": "2", "extra": 2, "verifier": "math", "pass_rate": 0.5, "pass_n": 8}]
    assert histogram(rates, 8) == [(k / 8, int(k in (0, 1, 4, 8))) for k in range(9)]
    text = histogram_text(rates, 8, parse_keep("0.1<=pass<=0.9"))
    assert "* 0.125       1" in text and "  0.000       1" in text


# ------------------------------------------------------------------------------------------------ select


def test_accuracy_histories_and_variance_ranking():
    rows = []
    for step, accs in [(1, {0: [1, 1], 1: [0, 0], 2: [1, 0]}), (5, {0: [1, 1], 1: [1, 1]}), (9, {1: [1, 0]})]:
        for index, flags in accs.items():
            rows += [{"step": step, "index": index, "correct": bool(f)} for f in flags]
    rows.append({"step": 9, "index": 3, "reward": 1.0, "components": {"m": 0.0}})  # old row: first component
    hist = accuracy_histories(rows)
    assert hist == {("", 0): [1.0, 1.0], ("", 1): [0.0, 1.0, 0.5], ("", 2): [0.5], ("", 3): [0.0]}
    ranked = rank_by_variance(hist)
    assert [k for k, _, _ in ranked] == [("", 1), ("", 0), ("", 2), ("", 3)]
    assert ranked[0][1] == pytest.approx(1 / 6) and ranked[1][1] == 0.0 and math.isnan(ranked[2][1])


# ------------------------------------------------------------------------------------------------ stats


def test_source_stats_counts_types_duplicates_and_rejections(tiny_model_dir):
    from transformers import AutoTokenizer

    exs = [Example(question="1+1", answer="2"), Example(question="1+1", answer="2"),
           Example(question="x^2", answer="\\frac{1}{2}", metadata={"level": 3}), Example(question="who", answer=7)]
    report = DataReport(exs, [BadRow(4, "no answer (field 'answer' missing or empty)"), BadRow(9, "no answer (x)")],
                        6, "t.jsonl")
    stats = source_stats(report, AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    assert (stats["rows_read"], stats["usable"], stats["rejected"]) == (6, 4, 2)
    assert stats["rejected_by_reason"] == {"no answer": 2}
    assert stats["answer_types"] == {"numeric string": 2, "latex": 1, "int": 1}
    assert stats["duplicate_rows"] == 1 and stats["fields"]["level"] == 1
    assert stats["prompt_tokens"]["max"] >= 3 and stats["prompt_tokens"]["min"] >= 3
    assert [answer_type(v) for v in (None, True, 1.5, [1], "abc")] == ["none", "bool", "float", "list", "text"]


def test_source_row_uses_its_mixture_entrys_field_names():
    from rlvr.data.filter import source_row

    cfg = DataConfig(sources=[SourceConfig(source="a.jsonl", question_field="q", answer_field="a"),
                              SourceConfig(source="b.jsonl")])
    ex_a = Example(question="1+1", answer="2", origin="a", verifier="math")
    ex_b = Example(question="2+2", answer="4", origin="b", verifier="math")
    assert source_row(ex_a, cfg) == {"q": "1+1", "a": "2", "verifier": "math"}
    assert source_row(ex_b, cfg) == {"question": "2+2", "answer": "4", "verifier": "math"}


def test_a_data_flag_replaces_a_mixture_of_the_config(tmp_path, arithmetic_jsonl):
    from rlvr.cli.eval import _load_problems

    cfg = config_from_dict({"data": {"sources": [{"source": str(tmp_path / "missing.jsonl")}]}})
    examples, data_cfg, _ = _load_problems(cfg, str(arithmetic_jsonl), None)
    assert len(examples) == 32 and data_cfg.sources == [] and not any(ex.origin for ex in examples)
