"""The demo task generator, its answer check, the warm-up batch layout and the cached base builder."""

import pytest

from rlvr.demo import task
from rlvr.demo.pretrain import PretrainConfig, _batch, build_base
from rlvr.demo.tiny import build_char_tokenizer


def test_problem_format_and_arithmetic():
    rows = task.generate("train", 200, seed=3)
    for row in rows:
        # by hand: "47+8-5+9" -> first 47, then (+, 8), (-, 5), (+, 9); solution "47+8=55 55-5=50 50+9=59"
        first, rest = int(row["question"][:2]), row["question"][2:]
        ops = [(rest[i], int(rest[i + 1])) for i in range(0, len(rest), 2)]
        assert len(ops) == 3 and 10 <= first <= 99 and all(1 <= x <= 9 for _, x in ops)
        value, steps = first, []
        for op, x in ops:
            new = value + x if op == "+" else value - x
            steps.append(f"{value}{op}{x}={new}")
            value = new
            assert value >= 0
        assert row["answer"] == str(value)
        assert row["solution"] == f"<think>{' '.join(steps)}</think><answer>{value}</answer>"
        assert task.is_correct(row["solution"], row["answer"])


def test_deterministic_and_disjoint():
    assert task.generate("train", 50, seed=0) == task.generate("train", 50, seed=0)
    assert task.generate("train", 50, seed=0) != task.generate("train", 50, seed=1)
    train = {r["question"] for r in task.generate("train", 3000, seed=0)}
    held = {r["question"] for r in task.generate("heldout", 400, seed=0)}
    assert len(train) == 3000 and len(held) == 400  # distinct within a split
    assert not train & held
    assert all(task.is_heldout(q) for q in held) and not any(task.is_heldout(q) for q in train)


def test_answer_extraction():
    assert task.extract_answer("<think>1+2=3</think><answer> 3 </answer>") == "3"
    assert task.extract_answer("<answer>1</answer><answer>2</answer>") == "2"  # the last tag counts
    assert task.extract_answer("<think>3</think>3") is None
    assert task.is_correct("<answer>66</answer>", "66") and not task.is_correct("<answer>67</answer>", "66")
    assert task.render_prompt("1+2-3") == "1+2-3\n"


def test_warmup_batch_masks_prompt_and_padding():
    tok = build_char_tokenizer()
    rows = [{"question": "1", "solution": "ab"}, {"question": "12", "solution": "a"}]
    ids, mask, labels = _batch(tok, rows)
    # by hand: row 0 = "1\n" + "ab" + EOS (5 tokens), row 1 = "12\n" + "a" + EOS (5 tokens)
    assert ids.shape == (2, 5)
    a, b = tok.convert_tokens_to_ids(["a", "b"])
    assert labels[0].tolist() == [-100, -100, a, b, tok.eos_token_id]
    assert labels[1].tolist() == [-100, -100, -100, a, tok.eos_token_id]
    assert mask.sum().item() == 10
    rows[1]["question"] = "1"  # row 1 becomes 4 tokens: one pad on the right, masked and ignored
    ids, mask, labels = _batch(tok, rows)
    assert ids[1, -1].item() == tok.pad_token_id and mask[1, -1].item() == 0 and labels[1, -1].item() == -100


def test_carries_by_hand():
    assert task.carries(47, "+", 8) and task.carries(50, "-", 7) and task.carries(5, "-", 6)
    assert not task.carries(47, "+", 2) and not task.carries(58, "-", 8) and not task.carries(41, "+", 8)


def test_flawed_demonstrations_drop_carries_only():
    clean = task.generate("train", 300, seed=0)
    always = task.generate("train", 300, seed=0, slip=1.0)
    some = task.generate("train", 300, seed=0, slip=0.5)
    assert task.generate("train", 300, seed=0, slip=0.0) == clean
    # the same problems and true answers whatever the slip rate; only the worked solutions change
    for rows in (always, some):
        assert [(r["question"], r["answer"]) for r in rows] == [(r["question"], r["answer"]) for r in clean]
    for row in always:  # slip = 1: every carry and borrow dropped, the chain continues from the wrong value
        q = row["question"]
        value, steps = int(q[:2]), []
        for i in range(2, len(q), 2):
            op, x = q[i], int(q[i + 1])
            new = value + x if op == "+" else value - x
            if task.carries(value, op, x):
                new += -10 if op == "+" else 10  # 47+8=45, 50-7=53: the tens digit copied unchanged
            steps.append(f"{value}{op}{x}={new}")
            value = new
        assert row["solution"] == f"<think>{' '.join(steps)}</think><answer>{value}</answer>"
    wrong = sum(not task.is_correct(r["solution"], r["answer"]) for r in always)
    assert 0.6 * len(always) < wrong < len(always)  # ~1 - 0.55^3 of the problems carry at least once
    n_some = sum(r["solution"] != c["solution"] for r, c in zip(some, clean))
    n_always = sum(r["solution"] != c["solution"] for r, c in zip(always, clean))
    assert 0.3 * n_always < n_some < 0.9 * n_always
    with pytest.raises(ValueError, match="slip"):
        task.generate("train", 3, seed=0, slip=1.5)


def test_build_base_caches_and_rebuilds(tmp_path):
    cfg = PretrainConfig(hidden=16, layers=1, heads=2, intermediate=32, n_train=32, n_test=4, n_dev=2,
                         batch_size=4, max_steps=3, min_steps=3, eval_every=3, target=1.1, flawed_steps=2)
    first = build_base(tmp_path, cfg=cfg)
    # target 1.1 is unreachable: phase 1 runs max_steps, then the 2 flawed steps
    assert not first["cached"] and first["learn_steps"] == 3 and first["steps"] == 5
    assert len(task.read_jsonl(first["heldout_path"])) == 4 and len(task.read_jsonl(first["dev_path"])) == 2
    second = build_base(tmp_path, cfg=cfg)
    assert second["cached"]
    third = build_base(tmp_path, cfg=cfg, rebuild=True)
    assert not third["cached"]
    from transformers import AutoModelForCausalLM

    m1 = AutoModelForCausalLM.from_pretrained(third["model_path"])
    assert third["loss"] == first["loss"]  # the build is seeded: a rebuild repeats the first one exactly
    assert m1.num_parameters() == 100 * 16 + 4 * 16 * 16 + 3 * 16 * 32 + 2 * 16 + 16  # emb + attn + mlp + norms


def _warmup(monkeypatch, cfg, scores, n_rows=8):
    """supervised_warmup on a tiny model with stubbed dev accuracies; returns (result, checked steps, the
    phase of every training batch: "clean" or "flawed")."""
    import rlvr.demo.pretrain as pretrain
    from rlvr.demo.tiny import build_tiny_llama

    tok = build_char_tokenizer()
    clean = task.generate("train", n_rows, seed=0)
    flawed = [{**r, "solution": r["solution"].replace("<think>", "<think>!")} for r in clean]
    it = iter(scores)
    monkeypatch.setattr(pretrain, "evaluate", lambda *a, **k: {"pass@1": next(it)})
    phases: list[str] = []
    real_batch = pretrain._batch

    def recording_batch(tokenizer, rows):
        kinds = {"flawed" if "<think>!" in r["solution"] else "clean" for r in rows}
        assert len(kinds) == 1  # a batch never mixes the phases
        phases.append(kinds.pop())
        return real_batch(tokenizer, rows)

    monkeypatch.setattr(pretrain, "_batch", recording_batch)
    checked: list[int] = []
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, intermediate=32)
    res = pretrain.supervised_warmup(model, tok, clean, flawed, clean, cfg,
                                     on_step=lambda s, l, d: d is not None and checked.append(s))
    return res, checked, phases


def test_warmup_learns_until_target_then_takes_on_the_flaw(monkeypatch):
    # check_loss=100: the loss gate is always open -> checks every 2 steps from step 2
    cfg = PretrainConfig(batch_size=2, max_steps=40, min_steps=2, eval_every=2, check_loss=100.0, target=0.5,
                         flawed_steps=3)
    res, checked, phases = _warmup(monkeypatch, cfg, [0.1, 0.4, 0.6, 0.3])
    # by hand: checks at 2, 4, 6; step 6 reaches 0.5 -> phase 1 ends; 3 flawed steps (7, 8, 9); a final check
    assert checked == [2, 4, 6, 9]
    assert phases == ["clean"] * 6 + ["flawed"] * 3
    assert res["learn_steps"] == 6 and res["steps"] == 9 and res["dev_pass1"] == 0.3
    assert res["history"] == [(2, 0.1), (4, 0.4), (6, 0.6), (9, 0.3)]


def test_warmup_checks_the_dev_set_rarely_while_the_loss_is_high(monkeypatch):
    # check_loss=0: the gate never opens -> checks only every 4 x eval_every = 8 steps
    cfg = PretrainConfig(batch_size=2, max_steps=40, min_steps=2, eval_every=2, check_loss=0.0, target=0.5,
                         flawed_steps=2)
    res, checked, phases = _warmup(monkeypatch, cfg, [0.0, 0.7, 0.2])
    assert checked == [8, 16, 18] and res["learn_steps"] == 16 and res["steps"] == 18
    # target unreachable: phase 1 runs to max_steps, then phase 2 as usual
    cfg = PretrainConfig(batch_size=2, max_steps=5, min_steps=2, eval_every=2, check_loss=100.0, target=1.1,
                         flawed_steps=1)
    res, checked, phases = _warmup(monkeypatch, cfg, [0.0, 0.0, 0.0])
    assert checked == [2, 4, 6] and phases == ["clean"] * 5 + ["flawed"] and res["steps"] == 6
