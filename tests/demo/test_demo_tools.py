"""The multi-turn demo's warm-up data: tool trajectories whose reply is masked like the prompt."""

from __future__ import annotations

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
