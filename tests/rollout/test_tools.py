"""The built-in tools (calculator, search), the tool-call formats and the rollout.multi_turn config checks."""

from __future__ import annotations

import json

import pytest

from rlvr.config import ConfigError, config_from_dict
from rlvr.demo.tiny import build_char_tokenizer
from rlvr.rollout.tools import ToolBox, ToolError, make_tool, tool_spec
from rlvr.rollout.tools.calculator import evaluate, format_number
from rlvr.rollout.tools.format import chat_template_reply, find_calls, json_reply, parse_call


@pytest.mark.parametrize("expression, want", [
    ("47+8-5+9", "59"), ("2*(3+4)", "14"), ("7/2", "3.5"), ("-3**2", "-9"), ("(-3)**2", "9"), ("17//5", "3"),
    ("17%5", "2"), ("1/3", "0.333333333333"), ("2**10", "1024"), ("1e3+1", "1001"), (" 4 ", "4"),
])
def test_calculator_by_hand(expression, want):
    assert format_number(evaluate(expression)) == want


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('x')", "only numbers"), ("x+1", "found Name"), ("(1).real", "found Attribute"),
    ("1/0", "division by zero"), ("2**5000", "exponent 5000 is too large"), ("9**999*9**999*9**999*9**999",
                                                                              "more than 1000 digits"),
    ("1+", "cannot parse"), ("'a'*3", "only numbers"), ("[1][0]", "only numbers"), ("(-8)**0.5", "not a real"),
])
def test_calculator_rejects_everything_but_arithmetic(expression, reason):
    with pytest.raises(ToolError, match=reason.replace("(", r"\(").replace("*", r"\*")):
        format_number(evaluate(expression))


def test_toolbox_reports_bad_arguments_without_raising():
    box = ToolBox(["calculator"])
    try:
        out = box.run([({}, "calculator", {"expr": "1"}), ({}, "calculator", "1+1"), ({}, "calculator",
                                                                                      {"expression": "1+1"})])
    finally:
        box.close()
    assert [o.status for o in out] == ["error", "error", "ok"] and out[2].text == "2"
    assert 'calculator takes {"expression"' in out[0].text and "must be a JSON object" in out[1].text


def test_tool_specs():
    assert tool_spec("python") == ("python", {})
    assert tool_spec({"name": "search", "params": {"top_k": 2}}) == ("search", {"top_k": 2})
    with pytest.raises(ValueError):
        tool_spec({"name": "x", "other": 1})
    with pytest.raises(KeyError, match="calculator"):
        make_tool("calculater")


def test_search_ranks_by_bm25_and_caches_its_index(tmp_path, monkeypatch):
    pytest.importorskip("bm25s")
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "docs.jsonl"
    docs = [{"title": "Hamlet", "text": "Hamlet is a tragedy written by William Shakespeare."},
            {"title": "Python", "text": "Python is a programming language created by Guido van Rossum."},
            {"text": "The cat sat on the mat. " * 100}]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    tool = make_tool({"name": "search", "params": {"corpus": str(corpus), "top_k": 2, "max_chars": 30}})
    assert not tool.cached
    # one hit (the others score 0), its text cut to max_chars = 30
    assert tool({"query": "who created the Python language"}, {}) == "[1] Python\nPython is a programming langua ..."
    assert tool({"query": "the of and"}, {}) == "no results"  # stopwords only
    assert tool({"query": "cat mat"}, {}) == "[1] The cat sat on the mat. The ca ..."  # no title, 30 characters
    again = make_tool({"name": "search", "params": {"corpus": str(corpus), "top_k": 2, "max_chars": 30}})
    assert again.cached and again.index_path == tool.index_path
    assert again.search("shakespeare tragedy")[0][0] == 0
    corpus.write_text(corpus.read_text() + json.dumps({"text": "new"}) + "\n")  # changed corpus -> new index
    assert not make_tool({"name": "search", "params": {"corpus": str(corpus)}}).cached
    with pytest.raises(ToolError):
        tool({"query": ""}, {})
    with pytest.raises(ValueError, match="does not exist"):
        make_tool({"name": "search", "params": {"corpus": str(tmp_path / "none.jsonl")}})


def test_json_format_parsing():
    assert parse_call('{"name": "calculator", "arguments": {"expression": "1"}}').arguments == {"expression": "1"}
    assert parse_call('{"name": "f", "parameters": "{\\"a\\": 1}"}').arguments == {"a": 1}
    assert "not JSON" in parse_call("{").error and "expected" in parse_call("[1]").error
    assert "must be a JSON object" in parse_call('{"name": "f", "arguments": 3}').error
    text = 'a <tool_call>{"name": "f", "arguments": {}}</tool_call> b <tool_call>{"name": "g"}</tool_call>'
    assert [c.name for c in find_calls(text)] == ["f", "g"] and [c.name for c in find_calls(text, True)] == ["g"]
    assert json_reply(["1", "2"]) == "<tool_response>1</tool_response><tool_response>2</tool_response>"


QWEN_LIKE = (  # the shape of Qwen2.5's template (tools in the system turn, tool replies in a user turn)
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %} {{ t.function.name }}{% endfor %}<|im_end|>\n"
    "{% endif %}{% for m in messages %}"
    "{% if m.role == 'tool' %}{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user"
    "{% endif %}{{ '\\n' }}<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_chat_template_reply_and_tools_in_the_prompt():
    from rlvr.config import PromptConfig
    from rlvr.data import render_prompt
    from rlvr.types import Example

    tok = build_char_tokenizer()
    tok.chat_template = QWEN_LIKE

    class QwenLike:  # the template's end-of-turn marker as the EOS (Qwen2.5: <|im_end|>)
        eos_token = "<|im_end|>"
        apply_chat_template = staticmethod(tok.apply_chat_template)

    # the model's turn ends with its EOS <|im_end|>: the reply is the template's newline after it, the tool
    # messages in one user turn, and the next assistant generation prompt
    reply = chat_template_reply(QwenLike(), ["55", "7"])
    assert reply == ("\n<|im_start|>user\n<tool_response>\n55\n</tool_response>\n<tool_response>\n7\n"
                     "</tool_response><|im_end|>\n<|im_start|>assistant\n")
    box = ToolBox(["calculator", "python"])
    prompt = render_prompt(Example("1+1", "2"), PromptConfig(chat_template=True), tok, tools=box.schemas())
    box.close()
    assert prompt.startswith("<|im_start|>system\nTools: calculator python<|im_end|>\n<|im_start|>user\n1+1")


def base(tmp_path, **multi_turn):
    return {"model": {"path": str(tmp_path)}, "data": {"source": str(tmp_path / "x.jsonl")},
            "rollout": {"multi_turn": multi_turn}}


@pytest.mark.parametrize("multi_turn, message", [
    ({"tools": ["calculater"]}, "did you mean|calculator"),
    ({"tools": [{"name": "python", "oops": 1}]}, "a tool is a name or"),
    ({"tools": ["calculator"], "env": "e.py:E"}, "tools or env, not both"),
    ({"env": "env.py"}, "expected 'file.py:ClassName'"),
    ({"env": "/no/such/env.py:E"}, "does not exist"),
    ({"tools": ["calculator"], "format": "xml"}, "rollout.multi_turn.format"),
    ({"tools": ["calculator"], "format": "chat_template"}, "needs prompt.chat_template"),
    ({"tools": ["calculator"], "max_turns": 0}, "max_turns must be >= 1"),
    ({"tools": ["calculator"], "discount": 0}, "discount in"),
])
def test_config_rejects_bad_multi_turn_settings(tmp_path, multi_turn, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(base(tmp_path, **multi_turn))


def test_config_needs_the_decode_loop_and_a_local_run(tmp_path):
    tree = base(tmp_path, tools=["calculator"])
    tree["rollout"]["hf"] = {"decode": "generate"}
    with pytest.raises(ConfigError, match="needs rollout.hf.decode: loop"):
        config_from_dict(tree)
    with pytest.raises(ConfigError, match="distributed.backend: none"):
        config_from_dict(base(tmp_path, tools=["calculator"]), ["async.max_staleness=1"])
    cfg = config_from_dict(base(tmp_path, tools=["calculator", {"name": "python", "params": {"persistent": True}}]))
    assert cfg.rollout.multi_turn.enabled and not config_from_dict(base(tmp_path)).rollout.multi_turn.enabled


def test_tool_timeouts_count_from_each_calls_start_not_its_time_queued():
    from rlvr.rollout.tools import TOOLS

    @TOOLS.register("test_sleep")
    class Sleep:
        name, description, parameters = "test_sleep", "test", {"type": "object"}

        def __call__(self, arguments, state):
            import time

            time.sleep(arguments["s"])
            return "slept"

    try:
        box = ToolBox(["test_sleep"], timeout_s=0.4, max_workers=1)
        # one thread: the second 0.3 s call waits 0.3 s in the queue, then runs 0.3 s < 0.4 s: not a timeout
        out = box.run([({}, "test_sleep", {"s": 0.3}), ({}, "test_sleep", {"s": 0.3}), ({}, "test_sleep", {"s": 1})])
        box.close()
    finally:
        TOOLS._items.pop("test_sleep", None)
        TOOLS._docs.pop("test_sleep", None)
    assert [o.status for o in out] == ["ok", "ok", "timeout"]
