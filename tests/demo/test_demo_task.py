"""The demo task generator, its answer check, the warm-up batch layout and the cached base builder."""

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


def test_build_base_caches_and_rebuilds(tmp_path):
    cfg = PretrainConfig(hidden=16, layers=1, heads=2, intermediate=32, n_train=32, n_test=4, n_dev=2,
                         batch_size=4, max_steps=3, min_steps=3, eval_every=3, target=1.1)
    first = build_base(tmp_path, cfg=cfg)
    assert not first["cached"] and first["steps"] == 3  # target 1.1 is unreachable: runs max_steps
    assert len(task.read_jsonl(first["heldout_path"])) == 4 and len(task.read_jsonl(first["dev_path"])) == 2
    second = build_base(tmp_path, cfg=cfg)
    assert second["cached"]
    third = build_base(tmp_path, cfg=cfg, rebuild=True)
    assert not third["cached"]
    from transformers import AutoModelForCausalLM

    m1 = AutoModelForCausalLM.from_pretrained(third["model_path"])
    assert third["loss"] == first["loss"]  # the build is seeded: a rebuild repeats the first one exactly
    assert m1.num_parameters() == 100 * 16 + 4 * 16 * 16 + 3 * 16 * 32 + 2 * 16 + 16  # emb + attn + mlp + norms


def test_warmup_stops_at_target_and_backs_off_an_overshoot(monkeypatch):
    import rlvr.demo.pretrain as pretrain
    from rlvr.demo.tiny import build_tiny_llama

    tok = build_char_tokenizer()
    rows = task.generate("train", 8, seed=0)
    cfg = PretrainConfig(batch_size=2, max_steps=20, min_steps=2, eval_every=2, target=0.2, ceiling=0.45)
    # stubbed dev accuracies at steps 2, 4, 6: 0.1 (below target), then 0.6 (above target and above the ceiling)
    scores = iter([0.1, 0.6, 0.9])
    monkeypatch.setattr(pretrain, "evaluate", lambda *a, **k: {"pass@1": next(scores)})
    model = build_tiny_llama(tok, hidden=16, layers=1, heads=2, intermediate=32)
    res = pretrain.supervised_warmup(model, tok, rows, rows, cfg)
    # by hand: the check at step 4 (0.6) overshoots 0.45 -> back to step 2's weights and score
    assert res["steps"] == 2 and res["dev_pass1"] == 0.1
    assert res["history"] == [(2, 0.1), (4, 0.6), (2, 0.1)]
    scores = iter([0.1, 0.3, 0.9])
    res = pretrain.supervised_warmup(build_tiny_llama(tok, hidden=16, layers=1, heads=2, intermediate=32),
                                     tok, rows, rows, cfg)
    assert res["steps"] == 4 and res["dev_pass1"] == 0.3  # 0.3 is within [target, ceiling]: stop there
