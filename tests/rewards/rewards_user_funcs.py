"""User reward functions in the documented signature, loaded by the tests as 'file.py:function'."""

import asyncio
import time


def contains_answer(prompts, completions, answers, metadata):
    return [1.0 if str(a) in c else 0.0 for c, a in zip(completions, answers)]


def with_dicts(prompts, completions, answers, metadata):
    out = []
    for p, c in zip(prompts, completions):
        if c == "none":
            out.append(None)
        else:
            out.append({"score": 0.5, "reason": f"prompt={p}", "extracted": c[:3]})
    return out


async def async_len(prompts, completions, answers, metadata):
    await asyncio.sleep(0.01)
    return [len(c) / 10 for c in completions]


async def async_hang(prompts, completions, answers, metadata):
    await asyncio.sleep(600)


def sync_hang(prompts, completions, answers, metadata):
    time.sleep(600)


def raises(prompts, completions, answers, metadata):
    raise ValueError("bad reward")


def wrong_length(prompts, completions, answers, metadata):
    return [1.0]


def non_finite(prompts, completions, answers, metadata):
    return [float("inf")] + [1.0] * (len(completions) - 1)


def not_a_list(prompts, completions, answers, metadata):
    return 1.0
