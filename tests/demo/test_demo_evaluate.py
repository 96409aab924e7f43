"""Held-out evaluation: pass@1 / pass@k from per-problem correct counts (generation stubbed)."""

import rlvr.rollout.hf as hf
from rlvr.demo.evaluate import evaluate, sample_table
from rlvr.types import Completion


class FakeEngine:
    """Returns, for problem i, completions whose first `correct[i]` answers are right."""

    correct = [2, 0, 4]

    def __init__(self, model, tokenizer, device="cpu", add_special_tokens=True):
        pass

    def generate(self, prompts, n, **_):
        out = []
        for p in prompts:
            i = int(p.split("+")[0])  # the fake questions are "i+0"
            right = f"<answer>{i}</answer>"
            out.append([Completion(right if j < self.correct[i] else "<answer>x</answer>", [], [], "eos")
                        for j in range(n)])
        return out


class FakeModel:
    def parameters(self):
        import torch

        yield torch.zeros(1)


def test_pass_at_k_from_counts(monkeypatch):
    monkeypatch.setattr(hf, "HFRolloutEngine", FakeEngine)
    rows = [{"question": f"{i}+0", "answer": str(i)} for i in range(3)]
    res = evaluate(FakeModel(), None, rows, n=4, temperature=1.0, ks=(1, 2, 4), batch_size=4)
    assert res["correct"] == [2, 0, 4]
    # by hand: pass@1 = mean(2/4, 0/4, 4/4) = 0.5
    assert abs(res["pass@1"] - 0.5) < 1e-12
    # pass@2 = mean(1 - C(2,2)/C(4,2), 0, 1) = mean(1 - 1/6, 0, 1) = (5/6 + 1) / 3
    assert abs(res["pass@2"] - (5 / 6 + 1) / 3) < 1e-12
    # pass@4 = mean(1, 0, 1)
    assert abs(res["pass@4"] - 2 / 3) < 1e-12
    table = sample_table(rows, res["samples"], limit=2)
    assert [r["correct"] for r in table] == [True, False] and table[0]["extracted"] == "0"
