"""evaluate / run_eval / compare_runs / plots with a scripted engine and scorer (no model needed)."""

from __future__ import annotations

import json
import math

import pytest

from rlvr.eval.compare import compare_runs, compare_table
from rlvr.eval.plots import plot_curves
from rlvr.eval.results import read_problems, run_eval
from rlvr.eval.runner import evaluate, problem_key, verdict
from rlvr.types import Completion, Example, RewardResult

# per prompt: the n sampled texts and the greedy text. "" = no answer. Reference answers: q0 -> "1", q1 -> "2".
SCRIPT = {
    "q0": (["1", "1", "3", ""], "1"),  # c = 2, answers 1,1,3,None
    "q1": (["5", "5", "5", "2"], "5"),  # c = 1, majority wrong, greedy wrong
}


class ScriptedEngine:
    """Returns SCRIPT's completions; logprob of every token log(0.5); the 4th sample of q1 is truncated."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n, *, max_new_tokens, temperature, top_p, top_k, batch_size=0):
        self.calls.append((list(prompts), n, temperature))
        out = []
        for p in prompts:
            texts = [SCRIPT[p][1]] if temperature == 0 else SCRIPT[p][0][:n]
            group = []
            for i, t in enumerate(texts):
                ids = [ord(ch) for ch in t] + [0]  # text chars + EOS
                finish = "length" if (p == "q1" and i == 3 and temperature > 0) else "eos"
                group.append(Completion(t, ids, [math.log(0.5)] * len(ids), finish, prompt_ids=[7]))
            out.append(group)
        return out


class ScriptedScorer:
    """Exact match against the reference; extracted = the text (None when empty)."""

    def score(self, examples, completions):
        res = []
        for ex, text in zip(examples, completions):
            ok = float(text == ex.answer)
            res.append(RewardResult(ok, extracted=text or None, components={"auto": ok}))
        return res


def _examples():
    return [Example("q0", "1", source="toy", index=0, prompt="q0"), Example("q1", "2", source="toy", index=1, prompt="q1")]


def test_evaluate_summary_by_hand():
    res = evaluate(ScriptedEngine(), ScriptedScorer(), _examples(), n=4, ks=[1, 2, 4, 8], temperature=1.0, top_p=1.0,
                   max_new_tokens=8, batch_size=0, greedy=True)
    s = res.summary
    # pass@1 = mean(2/4, 1/4) = 0.375; pass@2: q0 1 - C(2,2)/C(4,2) = 5/6, q1 1 - C(3,2)/C(4,2) = 1/2
    assert s["pass@1"] == pytest.approx(0.375)
    assert s["pass@2"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert s["pass@4"] == 1.0 and "pass@8" not in s  # k > n skipped
    assert s["avg@4"] == pytest.approx(3 / 8)
    # maj@4: q0 votes 1,1,3 -> "1" correct; q1 votes 5,5,5,2 -> "5" wrong -> 0.5
    assert s["maj@4"] == pytest.approx(0.5)
    # maj@1 = fraction of samples in a correct class: q0 2/4, q1 1/4
    assert s["maj@1"] == pytest.approx(0.375)
    assert s["greedy_pass@1"] == 0.5  # q0 greedy "1" right, q1 greedy "5" wrong
    assert s["best_of_n"] == 1.0 and s["solved_frac"] == 1.0
    # lengths: q0 2,2,2,1 ; q1 2,2,2,2 -> 15 / 8 ; one truncated of 8
    assert s["mean_length"] == pytest.approx(15 / 8)
    assert s["truncation_rate"] == pytest.approx(1 / 8)
    assert s["token_entropy"] == pytest.approx(math.log(2))  # every token has surprisal log 2
    # answer entropy: q0 {1:2, 3:1, none:1} -> -(.5 ln .5 + 2 * .25 ln .25); q1 {5:3, 2:1}
    h0 = -(0.5 * math.log(0.5) + 0.5 * math.log(0.25))
    h1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert s["answer_entropy"] == pytest.approx((h0 + h1) / 2)
    p0 = res.problems[0]
    assert p0["correct"] == 2 and p0["extracted"] == ["1", "1", "3", None] and p0["greedy"]["correct"] == 1


def test_verdict_uses_first_component_or_named_key():
    r = RewardResult(0.3, components={"auto": 1.0, "format": 0.0})
    assert verdict(r, 0.5) is True  # first component ("auto") decides, not the weighted score
    assert verdict(r, 0.5, "format") is False
    assert verdict(RewardResult(0.7), 0.5) is True  # no components: the score


def test_cot_pass_at_k_needs_answer_and_judge():
    class JudgeScorer(ScriptedScorer):
        def score(self, examples, completions):
            res = super().score(examples, completions)
            for i, r in enumerate(res):  # the judge rejects every other sample
                r.components["judge"] = float(i % 2 == 0)
            return res

    res = evaluate(ScriptedEngine(), JudgeScorer(), _examples()[:1], n=4, ks=[1, 4], temperature=1.0, top_p=1.0,
                   max_new_tokens=8, batch_size=0, greedy=False, judge_key="judge")
    # q0 correct samples are #0 and #1; the judge accepts #0 and #2 -> CoT-correct only #0 -> cot_pass@1 = 1/4
    assert res.summary["pass@1"] == 0.5
    assert res.summary["cot_pass@1"] == 0.25
    assert res.summary["cot_pass@4"] == 1.0


def test_run_eval_resumes_after_a_kill(tmp_path):
    class Killed(Exception):
        pass

    class DiesOnQ1(ScriptedEngine):
        def generate(self, prompts, n, **kw):
            if "q1" in prompts:
                raise Killed
            return super().generate(prompts, n, **kw)

    kw = dict(settings={"model": "m", "n": 4}, ks=[1, 4], n=4, temperature=1.0, top_p=1.0, max_new_tokens=8,
              batch_size=4, greedy=False)  # batch_size 4 / n 4 -> one problem per chunk
    with pytest.raises(Killed):
        run_eval(DiesOnQ1(), ScriptedScorer(), _examples(), tmp_path, **kw)
    assert list(read_problems(tmp_path / "problems.jsonl")) == [problem_key(_examples()[0])]
    engine = ScriptedEngine()
    res = run_eval(engine, ScriptedScorer(), _examples(), tmp_path, **kw)
    assert [c[0] for c in engine.calls] == [["q1"]]  # q0 was not sampled again
    assert res.summary["pass@1"] == pytest.approx(0.375)
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["resumed_problems"] == 1 and payload["ks"] == [1, 4]
    assert (tmp_path / "pass_at_k.png").stat().st_size > 0
    # other budgets only: nothing is resampled, the new k appears in the summary and in problems.jsonl
    engine = ScriptedEngine()
    res = run_eval(engine, ScriptedScorer(), _examples(), tmp_path, **{**kw, "ks": [1, 2, 4]})
    assert engine.calls == [] and res.summary["pass@2"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert all("pass@2" in rec for rec in read_problems(tmp_path / "problems.jsonl").values())
    # other settings -> a different hash -> everything is sampled again
    engine = ScriptedEngine()
    run_eval(engine, ScriptedScorer(), _examples(), tmp_path, **{**kw, "settings": {"model": "m", "n": 4, "seed": 1}})
    assert [c[0] for c in engine.calls] == [["q0"], ["q1"]]
    assert len((tmp_path / "problems.jsonl").read_text().splitlines()) == 2  # stale lines dropped


def _fake_run(path, correct: dict[str, int], answers: dict[str, list], n=4, ks=(1, 2, 4)):
    """Write an eval output dir by hand: problem key -> correct count (flags = first c samples)."""
    from rlvr.eval.runner import summarize

    path.mkdir(parents=True)
    recs = []
    for key, c in correct.items():
        recs.append({"key": key, "n": n, "correct": c, "correct_flags": [1] * c + [0] * (n - c),
                     "extracted": answers[key], "scores": [1.0] * c + [0.0] * (n - c), "lengths": [3] * n,
                     "truncated": 0, "entropy_sum": 1.0 * n, "num_tokens": 3 * n,
                     "answer_entropy": 0.0, "settings_hash": "h"})
    (path / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (path / "results.json").write_text(json.dumps({"summary": summarize(recs, ks), "ks": list(ks), "settings_hash": "h"}))


def test_compare_runs_by_hand(tmp_path):
    ans = {"a": ["1"] * 4, "b": ["1"] * 4, "c": ["1"] * 4, "d": ["1"] * 4}
    # base: a 1/4, b 1/4, c 0, d 0 ; rl: a 4/4, b 0, c 2/4, d 0
    _fake_run(tmp_path / "base", {"a": 1, "b": 1, "c": 0, "d": 0}, ans)
    _fake_run(tmp_path / "rl", {"a": 4, "b": 0, "c": 2, "d": 0}, ans)
    rep = compare_runs(tmp_path / "base", tmp_path / "rl", tmp_path / "cmp", labels=("base", "rl"))
    assert rep["support"]["counts"] == {"preserved": 1, "shrunk": 1, "expanded": 1, "out_of_support": 1}
    # pass@1: base (1/4 + 1/4)/4 = 0.125, rl (1 + 0.5)/4 = 0.375 -> +0.25
    assert rep["delta"]["pass@1"] == pytest.approx(0.25)
    # pass@4: base 2/4 solved, rl 2/4 solved -> equal at k=4; at k=2 base (.5+.5)/4=.25, rl (1+5/6)/4 > .25
    assert rep["pass_at_k"]["base"]["4"] == rep["pass_at_k"]["rl"]["4"] == 0.5
    assert rep["crossover_k"] is None  # rl >= base everywhere, touching at k=4 only
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["support"]["counts"]["shrunk"] == 1
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    assert compare_table(rep).row_count > 4


def test_plot_curves_reads_trainer_metrics(tmp_path):
    lines = [{"step": 1, "reward/mean": 0.1}, {"step": 2, "reward/mean": 0.2, "eval/pass@1": 0.3, "eval/maj@4": 0.4},
             {"step": 3, "reward/mean": 0.25}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{torn")
    out = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert out.stat().st_size > 0


def test_seeded_evaluate_leaves_the_callers_rng_alone():
    import torch

    class RandomEngine(ScriptedEngine):
        def generate(self, prompts, n, **kw):
            torch.rand(3)  # consumes the global generator, like sampling does
            return super().generate(prompts, n, **kw)

    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    evaluate(RandomEngine(), ScriptedScorer(), _examples(), n=4, ks=[1], temperature=1.0, top_p=1.0,
             max_new_tokens=8, batch_size=0, greedy=True, seed=7)
    assert torch.equal(torch.rand(2), expected)  # same draw as if evaluate had not run


def test_temperature_zero_reuses_the_sample_as_greedy():
    engine = ScriptedEngine()
    res = evaluate(engine, ScriptedScorer(), _examples(), n=1, ks=[1], temperature=0.0, top_p=1.0,
                   max_new_tokens=8, batch_size=0, greedy=True)
    assert len(engine.calls) == 1  # no second, greedy generate call
    # greedy texts: q0 "1" (right), q1 "5" (wrong) -> pass@1 = greedy_pass@1 = 0.5
    assert res.summary["pass@1"] == res.summary["greedy_pass@1"] == 0.5
