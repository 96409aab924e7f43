"""Prompt templates: fields, answer-leak refusal, the R1 system prompt, plain and chat-template rendering."""

import pytest

from rlvr.config import ConfigError, PromptConfig
from rlvr.data import R1_SYSTEM_PROMPT, TemplateError, check_template, render_prompt
from rlvr.types import Example

EX = Example(question="What is 2+2?", answer="4", metadata={"level": 3, "topic": "add"}, source="d.jsonl", index=7)

# A jinja chat template whose output is easy to write by hand: "<role>content\n" per message, then "<assistant>".
CHAT = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"


def char_tokenizer(chat_template=None):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(["<unk>", "<eos>"] + [chr(i) for i in range(32, 127)] + ["\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    t = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    t.chat_template = chat_template
    return t


def test_plain_template_with_metadata_fields():
    cfg = PromptConfig(template="[{topic} L{level}] {question}")
    assert render_prompt(EX, cfg, None) == "[add L3] What is 2+2?"


def test_system_prompt_plain_joins_with_blank_line():
    assert render_prompt(EX, PromptConfig(system_prompt="Be brief."), None) == "Be brief.\n\nWhat is 2+2?"
    r1 = render_prompt(EX, PromptConfig(system_prompt="r1", template="User: {question}\nAssistant:"), None)
    assert r1 == R1_SYSTEM_PROMPT + "\n\nUser: What is 2+2?\nAssistant:"


def test_r1_prompt_asks_for_think_and_answer_tags():
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert tag in R1_SYSTEM_PROMPT


def test_answer_is_never_offered():
    with pytest.raises(TemplateError, match="reference answer is never shown"):
        check_template(PromptConfig(template="{question} (hint: {answer})"), EX)
    # reasoning_gym's full entry holds the answer too: not a template field
    rg = Example(question="q", answer="a", metadata={"rg_entry": {"answer": "a"}, "rg_dataset": "x"})
    with pytest.raises(TemplateError, match="does not have; available fields: question, rg_dataset"):
        check_template(PromptConfig(template="{rg_entry[answer]}"), rg)


def test_missing_field_names_field_example_and_choices():
    with pytest.raises(TemplateError, match=r"\{difficulty\}, which example 7 of d.jsonl does not have; available fields: level, question, topic"):
        render_prompt(EX, PromptConfig(template="{question} {difficulty}"), None)
    # checking a list finds the first example lacking the field
    other = Example(question="q", answer="a", metadata={}, index=9)
    with pytest.raises(TemplateError, match="example 9"):
        check_template(PromptConfig(template="{topic}: {question}"), [EX, other])
    assert issubclass(TemplateError, ConfigError)  # the CLI reports it like any config problem


def test_positional_and_malformed_templates():
    with pytest.raises(TemplateError, match="positional field"):
        check_template(PromptConfig(template="{} {question}"), EX)
    with pytest.raises(TemplateError, match="not a valid format string"):
        check_template(PromptConfig(template="{question"), EX)
    # literal braces and braces inside the question are fine
    ex = Example(question="f(x) = {x}", answer="1")
    assert render_prompt(ex, PromptConfig(template="{{math}} {question}"), None) == "{math} f(x) = {x}"


def test_chat_template_with_and_without_system():
    tok = char_tokenizer(CHAT)
    # expected strings written out from CHAT by hand
    assert render_prompt(EX, PromptConfig(chat_template=True), tok) == "<user>What is 2+2?\n<assistant>"
    cfg = PromptConfig(chat_template=True, system_prompt="S")
    assert render_prompt(EX, cfg, tok) == "<system>S\n<user>What is 2+2?\n<assistant>"


def test_chat_template_missing_is_a_clear_error():
    tok = char_tokenizer(None)
    cfg = PromptConfig(chat_template=True)
    with pytest.raises(TemplateError, match="tokenizer has no chat template"):
        render_prompt(EX, cfg, tok)
    with pytest.raises(TemplateError, match="tokenizer has no chat template"):
        check_template(cfg, EX, tok)
    with pytest.raises(TemplateError, match="no tokenizer was given"):
        render_prompt(EX, cfg, None)
