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


def digits(prompts, completions, answers, metadata):
    """Share of digit characters (a cheap, deterministic reward for timing and worker tests)."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def exits(prompts, completions, answers, metadata):
    import os

    os._exit(7)


def segfaults(prompts, completions, answers, metadata):
    import ctypes

    return [float(len(ctypes.string_at(0)))]


def allocates_10gib(prompts, completions, answers, metadata):
    block = bytearray(10 * 1024**3)
    return [float(len(block) > 0)] * len(completions)


def pid(prompts, completions, answers, metadata):
    """The process id, to tell in-process from worker calls."""
    import os

    return [{"score": 1.0, "reason": str(os.getpid())} for _ in completions]
