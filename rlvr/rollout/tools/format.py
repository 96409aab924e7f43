"""How tool calls look in the model's text and how tool replies are written back (rollout.multi_turn.format).

``json`` (default; any tokenizer):
    model:   ... <tool_call>{"name": "calculator", "arguments": {"expression": "47+8"}}</tool_call>
    reply:   <tool_response>55</tool_response>
  The turn ends at the stop string ``</tool_call>``; a turn that ends at EOS is the final answer. One call per
  turn. The prompt should say which tools exist (system prompt / template: the model has to learn the format).

``chat_template`` (a tokenizer whose chat template has a tool role, Qwen2.5 / Llama 3.1 style):
    the prompt is rendered with ``apply_chat_template(messages, tools=[schemas])``; the model ends its turn
    with EOS (``<|im_end|>``) after one or more ``<tool_call>{json}</tool_call>`` blocks; the reply is the
    template's own rendering of the tool messages and the next generation prompt, i.e. the text the template
    adds after the assistant turn (`chat_template_reply`). A turn without a call is the final answer.

A call that cannot be parsed (bad JSON, no "name", arguments not an object) is a `Call` with ``error`` set: the
model reads the error as the reply and the trajectory goes on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
_CALLS = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)


@dataclass
class Call:
    """One parsed tool call; ``error`` non-empty when the text was not a valid call (name/arguments unset)."""

    name: str = ""
    arguments: Any = field(default_factory=dict)
    error: str = ""


def parse_call(body: str) -> Call:
    """The JSON between the tags -> a Call (``{"name": str, "arguments": {...}}``; ``parameters`` is accepted as
    another name for ``arguments``, and arguments given as a JSON string are decoded)."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        return Call(error=f"malformed tool call: not JSON ({err.msg} at char {err.pos}); expected "
                          '{"name": ..., "arguments": {...}}')
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return Call(error='malformed tool call: expected {"name": ..., "arguments": {...}}')
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    if not isinstance(arguments, dict):
        return Call(name=obj["name"], error="malformed tool call: arguments must be a JSON object")
    return Call(obj["name"], arguments)


def find_calls(text: str, last_only: bool = False) -> list[Call]:
    """Every ``<tool_call>...</tool_call>`` block of a model turn, parsed (only the last with ``last_only``)."""
    bodies = _CALLS.findall(text)
    if last_only:
        bodies = bodies[-1:]
    return [parse_call(b.strip()) for b in bodies]


def json_reply(contents: list[str]) -> str:
    """``<tool_response>...</tool_response>`` per result, concatenated."""
    return "".join(f"{RESPONSE_OPEN}{c}{RESPONSE_CLOSE}" for c in contents)


def chat_template_reply(tokenizer, contents: list[str]) -> str:
    """The text a chat template puts after an assistant turn that ended with EOS: the tool messages (role
    "tool") and the next assistant generation prompt. Measured on a two-message conversation: the rendering with
    the tool messages minus the rendering without them, plus whatever the template writes after the EOS of the
    assistant turn (Qwen's newline after ``<|im_end|>``), which the model does not generate."""
    base = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    before = tokenizer.apply_chat_template(base, tokenize=False)
    after = tokenizer.apply_chat_template(base + [{"role": "tool", "content": c} for c in contents], tokenize=False,
                                          add_generation_prompt=True)
    if not after.startswith(before):
        raise ValueError("the chat template renders the conversation differently once tool messages follow; "
                         "use rollout.multi_turn.format json")
    eos = tokenizer.eos_token or ""
    cut = before.rfind(eos) + len(eos) if eos and eos in before else len(before)
    return before[cut:] + after[len(before):]
