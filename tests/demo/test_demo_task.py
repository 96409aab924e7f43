"""The demo task generator, its answer check, the warm-up batch layout and the cached base builder."""

from rlvr.demo import task
from rlvr.demo.pretrain import PretrainConfig, _batch, build_base
from rlvr.demo.tiny import build_char_tokenizer


def test_problem_format_and_arithmetic():
    rows = task.generate("train", 200, seed=3)
    for row in rows:
        a, op1, b, op2, c = _split(row["question"])
        s = a + b if op1 == "+" else a - b
        r = s + c if op2 == "+" else s - c
        assert s >= 0 and r >= 0
        assert row["answer"] == str(r)
        assert row["solution"] == f"<think>{a}{op1}{b}={s} {s}{op2}{c}={r}</think><answer>{r}</answer>"
        assert task.is_correct(row["solution"], row["answer"])


def _split(q):
    # by hand: "47+38-19" -> 47, '+', 38, '-', 19 (operands are always two digits)
    return int(q[0:2]), q[2], int(q[3:5]), q[5], int(q[6:8])


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
    assert m1.num_parameters() == 32 * 100 + 4 * 16 * 16 + 3 * 16 * 32 + 2 * 16 + 16  # emb + attn + mlp + norms
