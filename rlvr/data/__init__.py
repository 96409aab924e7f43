"""Data: sources -> Examples (``load_examples``), prompt templates (``render_prompt``), the resumable sampler.

    from rlvr.data import load_examples, check_template, render_prompt, PromptSampler

    report = load_examples(cfg.data)                       # DataReport(examples, bad_rows, total)
    print(report.summary())
    check_template(cfg.prompt, report.examples, tokenizer)  # before loading the model
    for ex in report.examples:
        ex.prompt = render_prompt(ex, cfg.prompt, tokenizer)
    sampler = PromptSampler(report.examples, cfg.rollout.prompts_per_step, seed=cfg.trainer.seed,
                            shuffle=cfg.data.shuffle)
"""

from rlvr.data.sampler import PromptSampler
from rlvr.data.sources import SOURCES, BadRow, DataError, DataReport, load_examples, resolve_source, to_jsonable
from rlvr.data.templates import (
    R1_SYSTEM_PROMPT,
    SYSTEM_PROMPTS,
    TemplateError,
    available_fields,
    check_template,
    render_prompt,
    system_prompt_text,
)

__all__ = [
    "SOURCES",
    "BadRow",
    "DataError",
    "DataReport",
    "load_examples",
    "resolve_source",
    "to_jsonable",
    "R1_SYSTEM_PROMPT",
    "SYSTEM_PROMPTS",
    "TemplateError",
    "available_fields",
    "check_template",
    "render_prompt",
    "system_prompt_text",
    "PromptSampler",
]
