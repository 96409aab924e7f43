"""End to end: `rlvr eval` on two untrained tiny char-level Llamas, resume, then `rlvr compare`."""

from __future__ import annotations

import json
import math

import pytest
import torch
import typer
from typer.testing import CliRunner

from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama, save_tiny

# A user reward over the FIRST character of the completion: its class is the "answer" (so an untrained model
# gets a spread of answers and a non-trivial accuracy: ~26 of the ~100 characters are lowercase letters).
REWARD = '''
def _cls(text):
    if not text:
        return None
    ch = text[0]
    return "lower" if ch.islower() else "upper" if ch.isupper() else "digit" if ch.isdigit() else "other"

def first_char(prompts, completions, answers, metadata):
    return [{"score": float(_cls(c) == a), "extracted": _cls(c)} for c, a in zip(completions, answers)]
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_e2e")
    tok = build_char_tokenizer()
    for name, seed in (("base", 0), ("rl", 1)):
        save_tiny(build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=seed), tok, root / name)
    rows = [{"question": f"{i}+{i}=", "answer": "lower"} for i in range(6)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "reward.py").write_text(REWARD)
    (root / "cfg.yaml").write_text(
        f"reward:\n  components:\n    - name: {root / 'reward.py'}:first_char\n  num_workers: 1\n"
        "prompt:\n  template: '{question}'\nmodel:\n  device: cpu\n"
    )
    app = typer.Typer()
    from rlvr.cli.eval import compare_command, eval_command

    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
    return root, app


def _eval(root, app, name, *extra):
    args = ["eval", *extra, "--config", str(root / "cfg.yaml"), "--model", str(root / name),
            "--data", str(root / "data.jsonl"),
            "--n", "4", "--k", "1,2,4", "--temperature", "1.0", "--max-new-tokens", "4", "--batch-size", "12",
            "--output-dir", str(root / f"eval_{name}"), "--no-progress", "--seed", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = root / f"eval_{name}"
    return json.loads((out / "results.json").read_text()), [json.loads(x) for x in (out / "problems.jsonl").open()]


def test_eval_then_resume_then_compare(setup):
    torch.manual_seed(0)
    root, app = setup
    payload, problems = _eval(root, app, "base")
    s = payload["summary"]
    assert len(problems) == 6 and s["num_problems"] == 6 and payload["ks"] == [1, 2, 4]
    assert (root / "eval_base" / "pass_at_k.png").stat().st_size > 0
    # pass@k recomputed from the stored counts with the binomial definition 1 - C(n-c,k)/C(n,k)
    for k in (1, 2, 4):
        expected = sum(1 - math.comb(4 - p["correct"], k) / math.comb(4, k) for p in problems) / 6
        assert s[f"pass@{k}"] == pytest.approx(expected)
    assert s["avg@4"] == pytest.approx(s["pass@1"])
    for p in problems:  # correct count agrees with the stored answers: a sample is right iff its class is "lower"
        assert p["correct"] == sum(a == "lower" for a in p["extracted"])
        assert p["lengths"] and max(p["lengths"]) <= 4 and "greedy" in p
    assert 0 <= s["truncation_rate"] <= 1 and 0 < s["token_entropy"] < math.log(100) + 1
    assert "greedy_pass@1" in s and "maj@4" in s and "answer_entropy" in s

    # resume: the same command again samples nothing and gives the same summary
    again, problems_again = _eval(root, app, "base")
    assert again["resumed_problems"] == 6 and again["summary"] == s
    assert [p["key"] for p in problems_again] == [p["key"] for p in problems]

    payload_rl, problems_rl = _eval(root, app, "rl", "--token-entropy", "forward")
    # exact entropies of a V = 100 vocabulary lie in (0, log 100]
    assert 0 < payload_rl["summary"]["token_entropy"] <= math.log(100) + 1e-6
    res = CliRunner().invoke(app, ["compare", str(root / "eval_base"), str(root / "eval_rl"), "--labels", "base,rl",
                                   "--output-dir", str(root / "cmp")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "support: shrunk" in res.output
    cmp = json.loads((root / "cmp" / "compare.json").read_text())
    assert (root / "cmp" / "compare.png").stat().st_size > 0
    # categories recomputed from both runs' correct counts
    ca = {p["key"]: p["correct"] > 0 for p in problems}
    cb = {p["key"]: p["correct"] > 0 for p in problems_rl}
    expected = {"preserved": 0, "shrunk": 0, "expanded": 0, "out_of_support": 0}
    for key in ca:
        expected[{(1, 1): "preserved", (1, 0): "shrunk", (0, 1): "expanded", (0, 0): "out_of_support"}[(ca[key], cb[key])]] += 1
    assert cmp["support"]["counts"] == expected
    assert cmp["delta"]["answer_entropy"] == pytest.approx(payload_rl["summary"]["answer_entropy"] - s["answer_entropy"])
    assert cmp["delta"]["token_entropy"] == pytest.approx(payload_rl["summary"]["token_entropy"] - s["token_entropy"])


def test_forward_entropy_matches_logits_on_tiny_llama(setup):
    from rlvr.eval.entropy import entropy_from_logits, forward_token_entropy

    root, _ = setup
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, hidden=32, layers=1, heads=2, seed=0).eval()
    prompt, resp = tok("2+2=")["input_ids"], tok("4ab")["input_ids"]
    ent = forward_token_entropy(model, prompt, resp, temperature=0.7)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + resp])).logits[0, len(prompt) - 1 : len(prompt) + len(resp) - 1]
    # the chunked rlvr.algorithms.logprobs path and the plain full-logits entropy must agree
    assert ent == pytest.approx(entropy_from_logits(logits, 0.7).tolist(), abs=1e-4)
