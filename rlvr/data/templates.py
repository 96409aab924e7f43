"""Turn an Example into the prompt text the policy sees.

    check_template(cfg.prompt, report.examples)           # once, before the model loads: fails on unknown fields
    prompt = render_prompt(example, cfg.prompt, tokenizer)

The template is a ``str.format`` string. Its fields are ``question`` and the keys of ``example.metadata`` (the
row's other columns), never the reference answer: ``{answer}`` is refused so the model cannot be shown what it
is graded against. Literal braces are written ``{{`` and ``}}``.

    chat_template=False:  [system_prompt + "\\n\\n"] + template
    chat_template=True:   tokenizer.apply_chat_template([{system}, {user: template}], tokenize=False,
                                                        add_generation_prompt=True)
    with images:          the user content is [{"type": "image"} per image, {"type": "text", "text": template}]:
                          the chat template writes the model's image token for each (chat_template must be true)

``system_prompt: r1`` uses ``R1_SYSTEM_PROMPT``, the instruction of DeepSeek-R1-Zero (DeepSeek-AI 2025,
"DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning", Table 1), which asks
for ``<think> ... </think> <answer> ... </answer>``. Deviation: the paper puts the instruction, "User:" and
"Assistant:" in one base-model prompt; here it is the system part, and a base-model user writes
``template: "User: {question}\\nAssistant:"`` to get the paper's layout.
"""

from __future__ import annotations

import string
from typing import Any, Iterable

from rlvr.config import ConfigError, PromptConfig
from rlvr.types import Example

R1_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>."
)

SYSTEM_PROMPTS = {"r1": R1_SYSTEM_PROMPT}

# metadata keys never offered to templates: they contain the reference answer
HIDDEN_FIELDS = frozenset({"answer", "rg_entry"})


class TemplateError(ConfigError):
    """The prompt template cannot be rendered for the data (unknown field, answer leak, no chat template)."""


def system_prompt_text(prompt_cfg: PromptConfig) -> str:
    """The system prompt of the config: a built-in name ("r1") resolved to its text, else the text itself."""
    return SYSTEM_PROMPTS.get(prompt_cfg.system_prompt, prompt_cfg.system_prompt)


def template_fields(template: str) -> list[str]:
    """The root names of the template's fields: ``"{question} ({meta[level]})"`` -> ``["question", "meta"]``."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise TemplateError(f"prompt.template is not a valid format string ({err}); write literal braces as {{{{ }}}}") from None
    names = []
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root == "" or root.isdigit():
            raise TemplateError(f"prompt.template: positional field {{{field_name}}}; name the field, e.g. {{question}}")
        if root not in names:
            names.append(root)
    return names


def available_fields(example: Example) -> dict[str, Any]:
    """Fields a template may use for this example: question plus the metadata keys (never the answer)."""
    fields = {k: v for k, v in example.metadata.items() if k not in HIDDEN_FIELDS}
    fields["question"] = example.question
    return fields


def check_template(prompt_cfg: PromptConfig, examples: Example | Iterable[Example], tokenizer: Any = None) -> None:
    """Fail early (before the model loads) when the template uses a field some example lacks.

    examples: one Example or all of them (every one is checked; cheap). With a tokenizer and chat_template=True,
    also checks that the tokenizer has a chat template.
    """
    names = template_fields(prompt_cfg.template)
    if "answer" in names:
        raise TemplateError(
            "prompt.template uses {answer}: the reference answer is never shown to the model; "
            "use {question} and other row fields"
        )
    if tokenizer is not None and prompt_cfg.chat_template:
        _require_chat_template(tokenizer)
    for example in [examples] if isinstance(examples, Example) else examples:
        fields = available_fields(example)
        missing = [n for n in names if n not in fields]
        if missing:
            raise TemplateError(
                f"prompt.template uses {{{missing[0]}}}, which example {example.index} of {example.source or 'the data'} "
                f"does not have; available fields: {', '.join(sorted(fields))}"
            )


def _require_chat_template(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            "prompt.chat_template is true but the tokenizer has no chat template (a base model?); "
            "set prompt.chat_template=false or use an instruct model's tokenizer"
        )


def render_prompt(example: Example, prompt_cfg: PromptConfig, tokenizer: Any = None, tools: list | None = None) -> str:
    """The full prompt text for one example (system prompt, template, chat template). See the module docstring.
    ``tools``: function schemas passed to the chat template (``tools=``; multi-turn rollouts)."""
    check_template(prompt_cfg, example)
    user = prompt_cfg.template.format(**available_fields(example))
    system = system_prompt_text(prompt_cfg)
    if example.images and not prompt_cfg.chat_template:
        raise TemplateError("examples with images (data.image_field) need prompt.chat_template: true: the chat "
                            "template writes the model's image tokens for the {'type': 'image'} content parts")
    if not prompt_cfg.chat_template:
        return f"{system}\n\n{user}" if system else user
    if tokenizer is None:
        raise TemplateError("prompt.chat_template is true but no tokenizer was given to render_prompt")
    _require_chat_template(tokenizer)
    content = [{"type": "image"} for _ in example.images] + [{"type": "text", "text": user}] if example.images \
        else user  # images first, then the question (the Qwen-VL / CLS-RL / VLM-R1 layout)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         **({"tools": tools} if tools else {}))
