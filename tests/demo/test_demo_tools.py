"""The multi-turn demo's warm-up data: tool trajectories whose reply is masked like the prompt."""

from __future__ import annotations

import pytest

from rlvr.demo.tiny import build_char_tokenizer
from rlvr.demo.tools import _rows_batch, tool_pieces
from rlvr.rollout.tools.calculator import evaluate
from rlvr.rollout.tools.format import find_calls


def test_tool_pieces_are_a_valid_call_and_the_reply_is_not_in_the_loss():
    tok = build_char_tokenizer()
    pieces = tool_pieces("47+8-5+9", "59")
    (call,) = find_calls(pieces[0][0])
    assert call.name == "calculator" and str(evaluate(call.arguments["expression"])) == "59"
    ids, mask, labels = _rows_batch(tok, [{"question": "47+8-5+9", "pieces": pieces}])
    prompt, (c, _), (r, _), (a, _) = "47+8-5+9\n", *pieces
    assert ids.shape[1] == len(prompt) + len(c) + len(r) + len(a) + 1 and mask.all()
    scored = labels[0] != -100
    # prompt and reply masked; the call, the answer and EOS scored (one char = one token)
    assert scored.tolist() == [False] * len(prompt) + [True] * len(c) + [False] * len(r) + [True] * (len(a) + 1)
    assert (labels[0][scored] == ids[0][scored]).all()


@pytest.mark.slow
def test_the_tool_demo_pipeline_end_to_end(tmp_path):
    """A quick demo base, its calculator warm-up, then `rlvr train examples/demo_tools.yaml` for two steps: the
    trajectories go through the real calculator and the metrics come out."""
    from rlvr.config import load_config
    from rlvr.demo.run import QUICK_PRETRAIN, find_config
    from rlvr.demo.tools import ToolBaseConfig, build_tool_base, evaluate_tools
    from rlvr.demo import task
    from rlvr.trainer import train

    info = build_tool_base(ToolBaseConfig(steps=20, batch_size=8), cache_dir=tmp_path / "cache",
                           base_cfg=QUICK_PRETRAIN)
    assert build_tool_base(ToolBaseConfig(steps=20, batch_size=8), cache_dir=tmp_path / "cache",
                           base_cfg=QUICK_PRETRAIN)["model_path"] == info["model_path"]  # cached
    before = evaluate_tools(info["model_path"], task.read_jsonl(info["heldout_path"])[:4])
    assert 0 <= before["accuracy"] <= 1 and 0 <= before["tool_use"] <= 1
    cfg = load_config(find_config().with_name("demo_tools.yaml"), [
        f"model.path={info['model_path']}", f"data.source={info['train_path']}", f"data.eval_source={info['dev_path']}",
        f"output_dir={tmp_path / 'run'}", "trainer.steps=2", "trainer.warmup_steps=0", "rollout.prompts_per_step=2",
        "rollout.n=4", "eval.every=2", "data.eval_size=4", "logging.progress=false"])
    out = train(cfg)
    assert out["step"] == 2 and "multi_turn/turns_mean" in out and "eval/pass@1" in out
