"""Held-out evaluation of the demo model: greedy pass@1 and sampled pass@k on the arithmetic task.

    result = evaluate(model, tokenizer, rows, n=8, temperature=1.0, max_new_tokens=48)
    result["pass@1"], result["pass@8"], result["correct"]   # per-problem correct counts in "correct"

Generation goes through the project's rollout engine (`rlvr.rollout.hf.HFRolloutEngine`), scoring through the
task's exact-match check, pass@k through `rlvr.eval` when it is there (else the same unbiased estimator here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlvr.demo.task import extract_answer, is_correct, render_prompt

from rlvr.eval.passk import pass_at_k


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    rows: list[dict[str, Any]],
    *,
    n: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 72,
    batch_size: int = 512,
    ks: tuple[int, ...] = (1,),
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate ``n`` completions per problem and score them.

    rows:        dicts with "question" and "answer" (see rlvr.demo.task.generate).
    temperature: 0 = greedy (then n should be 1).
    batch_size:  completions per generate call (bounds memory; ~512 is fastest for the tiny model on CPU).
    on_batch:    called with the number of problems done after each chunk (progress bars).
    Returns {"pass@k": float for k in ks (k <= n), "correct": [c_i], "n": n, "samples": [first completion text]}.
    """
    from rlvr.rollout.hf import HFRolloutEngine

    engine = HFRolloutEngine(model, tokenizer, device=next(model.parameters()).device, add_special_tokens=False)
    per_call = max(1, batch_size // n)
    correct: list[int] = []
    samples: list[str] = []
    for start in range(0, len(rows), per_call):
        chunk = rows[start : start + per_call]
        prompts = [render_prompt(r["question"]) for r in chunk]
        groups = engine.generate(
            prompts, n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, top_k=0
        )
        for row, group in zip(chunk, groups):
            correct.append(sum(is_correct(c.text, row["answer"]) for c in group))
            samples.append(group[0].text)
        if on_batch is not None:
            on_batch(len(correct))
    result: dict[str, Any] = {
        f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / max(1, len(correct)) for k in ks if k <= n
    }
    result.update(correct=correct, n=n, samples=samples)
    return result


def sample_table(rows: list[dict[str, Any]], samples: list[str], limit: int = 5) -> list[dict[str, Any]]:
    """A few (question, reference, completion, extracted, correct) records for reports."""
    out = []
    for row, text in list(zip(rows, samples))[:limit]:
        out.append(
            {
                "question": row["question"],
                "answer": row["answer"],
                "completion": text,
                "extracted": extract_answer(text),
                "correct": is_correct(text, row["answer"]),
            }
        )
    return out
