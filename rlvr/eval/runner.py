"""`evaluate`: sample n completions per problem, verify them, and turn the verdicts into metrics.

    result = evaluate(engine, scorer, examples, n=16, ks=[1, 4, 16], temperature=1.0, top_p=1.0,
                      max_new_tokens=512, batch_size=64, greedy=True)
    result.summary["pass@4"], result.summary["maj@16"], result.problems[0]["extracted"]

Used by `rlvr eval` (through ``rlvr.eval.results.run_eval``, which adds resumable files) and by the trainer
every ``eval.every`` steps (it logs ``eval/<key>`` for every key of ``summary``). The metric definitions are
in passk.py, majority.py and entropy.py; docs/evaluation.md explains each with its paper.

What counts as correct. A completion is correct when its answer-verifier score is >= ``correct_threshold``:
the score of the reward component ``correct_key`` (default: the first component, normally "auto", the
example's own verifier), else the composed score. With a "judge" component (``judge_key``) a completion is
also *CoT-correct* when the judge scores it >= 0.5 as well (CoT-pass@k, Wen et al. 2025, "Reinforcement
Learning with Verifiable Rewards Implicitly Incentivizes Correct Reasoning in Base LLMs", arXiv:2506.14245).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rlvr.eval.entropy import answer_entropy, forward_token_entropy, sampled_token_surprisal
from rlvr.eval.majority import maj_at_k
from rlvr.eval.passk import pass_at_k
from rlvr.types import Completion, Example, RewardResult

JUDGE_THRESHOLD = 0.5


@dataclass
class EvalResult:
    """summary: metric name -> float (pass@k, maj@k, avg@n, ...); problems: one JSON-able record per problem."""

    summary: dict[str, float]
    problems: list[dict[str, Any]] = field(default_factory=list)


def problem_key(example: Example) -> str:
    """A stable id of a problem: its row index and a short hash of its question and reference answer.

    Independent of how the source path was spelled and of the prompt template, so `rlvr compare` matches the
    problems of two runs that read the same data differently (a relative vs an absolute path, another
    template); the resume of one run is protected by the settings hash instead.
    """
    text = json.dumps([example.question, example.answer], sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
    return f"{example.index}#{digest}"


def verdict(result: RewardResult, threshold: float, key: str | None = None) -> bool:
    """Answer correctness of one completion: the ``key`` component (else the first component, else the
    composed score) is >= ``threshold``."""
    if key is not None and key in result.components:
        return result.components[key] >= threshold
    if result.components and key is None:
        return next(iter(result.components.values())) >= threshold
    return result.score >= threshold


def _problem_record(
    example: Example,
    group: Sequence[Completion],
    results: Sequence[RewardResult],
    *,
    correct_threshold: float,
    correct_key: str | None,
    judge_key: str | None,
    entropies: Sequence[Sequence[float]] | None,
    save_completions: bool,
) -> dict[str, Any]:
    correct = [verdict(r, correct_threshold, correct_key) for r in results]
    record: dict[str, Any] = {
        "key": problem_key(example),
        "source": example.source,
        "index": example.index,
        "question": example.question,
        "reference": example.answer if isinstance(example.answer, (str, int, float, bool)) else str(example.answer),
        "n": len(group),
        "correct": sum(correct),
        "correct_flags": [int(c) for c in correct],
        "extracted": [r.extracted for r in results],
        "scores": [float(r.score) for r in results],
        "lengths": [len(c.token_ids) for c in group],
        "truncated": sum(c.finish_reason == "length" for c in group),
    }
    if judge_key is not None:
        cot = [ok and r.components.get(judge_key, 0.0) >= JUDGE_THRESHOLD for ok, r in zip(correct, results)]
        record["cot_correct"] = sum(cot)
    if entropies is not None:  # exact forward-pass entropies
        record["entropy_sum"] = float(sum(sum(e) for e in entropies))
        record["num_tokens"] = sum(len(e) for e in entropies)
    else:  # sampled-token surprisal, an unbiased estimate of the sampling distribution's entropy
        record["entropy_sum"], record["num_tokens"] = sampled_token_surprisal([c.logprobs for c in group])
    record["answer_entropy"] = answer_entropy(record["extracted"])
    if save_completions:
        record["completions"] = [c.text for c in group]
        record["reasons"] = [r.reason for r in results]
    return record


def problem_metrics(record: dict[str, Any], ks: Sequence[int]) -> dict[str, float]:
    """pass@k, maj@k (and CoT-pass@k) of one problem record for every k <= n."""
    n, out = record["n"], {}
    flags = [bool(x) for x in record["correct_flags"]]
    for k in ks:
        if 1 <= k <= n:
            out[f"pass@{k}"] = pass_at_k(n, record["correct"], k)
            out[f"maj@{k}"] = maj_at_k(record["extracted"], flags, k)
            if "cot_correct" in record:
                out[f"cot_pass@{k}"] = pass_at_k(n, record["cot_correct"], k)
    return out


def stored_or_computed(record: dict[str, Any], ks: Sequence[int]) -> dict[str, float]:
    """The record's own pass@k / maj@k values when it has all of them (they depend only on its samples)."""
    n = record["n"]
    names = [f"{m}@{k}" for k in ks if 1 <= k <= n for m in ("pass", "maj")]
    names += [f"cot_pass@{k}" for k in ks if 1 <= k <= n and "cot_correct" in record]
    if all(name in record for name in names):
        return {name: record[name] for name in names}
    return problem_metrics(record, ks)


def summarize(problems: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, float]:
    """Average the per-problem records into the summary (every value a float; see docs/evaluation.md)."""
    if not problems:
        return {"num_problems": 0.0}
    m = len(problems)
    n = problems[0]["n"]
    summary: dict[str, float] = {"num_problems": float(m), "n": float(n)}
    per = [stored_or_computed(p, ks) for p in problems]
    for key in per[0]:
        summary[key] = sum(p[key] for p in per) / m
    samples = sum(p["n"] for p in problems)
    summary[f"avg@{n}"] = sum(p["correct"] for p in problems) / samples
    summary["mean_reward"] = sum(sum(p["scores"]) for p in problems) / samples
    summary["best_of_n"] = sum(max(p["scores"]) for p in problems) / m
    summary["solved_frac"] = sum(p["correct"] > 0 for p in problems) / m
    summary["mean_length"] = sum(sum(p["lengths"]) for p in problems) / samples
    summary["truncation_rate"] = sum(p["truncated"] for p in problems) / samples
    tokens = sum(p["num_tokens"] for p in problems)
    summary["token_entropy"] = sum(p["entropy_sum"] for p in problems) / tokens if tokens else 0.0
    summary["answer_entropy"] = sum(p["answer_entropy"] for p in problems) / m
    greedy = [p["greedy"] for p in problems if p.get("greedy")]
    if greedy:
        summary["greedy_pass@1"] = sum(g["correct"] for g in greedy) / len(greedy)
        summary["greedy_length"] = sum(g["length"] for g in greedy) / len(greedy)
    return {k: float(v) for k, v in summary.items() if math.isfinite(v)}


def evaluate(
    engine: Any,
    scorer: Any,
    examples: Sequence[Example],
    *,
    n: int,
    ks: Sequence[int],
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int,
    greedy: bool,
    top_k: int = 0,
    correct_threshold: float = 0.5,
    correct_key: str | None = None,
    judge_key: str | None = None,
    token_entropy: str = "sampled",
    save_completions: bool = False,
    seed: int | None = None,
    done: dict[str, dict[str, Any]] | None = None,
    on_problem: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> EvalResult:
    """Sample ``n`` completions (plus one greedy one when ``greedy``) per example, verify, summarize.

    With temperature 0 the samples are greedy already, and greedy pass@1 reuses the first one (no extra call).

    engine:   a RolloutEngine (``.generate(prompts, n, *, max_new_tokens, temperature, top_p, top_k, batch_size)``).
    scorer:   ``.score(examples, completions) -> list[RewardResult]`` (a rlvr.rewards.RewardScorer).
    examples: problems with ``prompt`` rendered (the question is used when the prompt is empty).
    ks:       budgets for pass@k / maj@k; those above n are skipped.
    batch_size: completions per generate call (0 = one call per chunk of 16 problems); problems are processed
              in chunks of max(1, batch_size // n) so finished problems can be saved as they complete.
    token_entropy: "sampled" (mean surprisal of the sampled tokens, free) or "forward" (exact entropy, one
              forward pass per completion through ``engine.model``).
    seed:     when given, each chunk samples with torch seeded by seed + (position of its first problem), and
              the caller's RNG state is restored afterwards (training randomness is not disturbed).
    done:     problem key -> record already finished (resume): those problems are not sampled again.
    on_problem: called with each new record as soon as it is finished (rlvr eval appends it to problems.jsonl).
    Returns EvalResult(summary, problems) with problems in the order of ``examples``.
    """
    if n < 1:
        raise ValueError(f"evaluate: n must be >= 1, got {n}")
    if token_entropy not in ("sampled", "forward"):
        raise ValueError(f"evaluate: token_entropy must be 'sampled' or 'forward', got {token_entropy!r}")
    done = dict(done or {})
    keys = [problem_key(ex) for ex in examples]
    todo = [i for i, key in enumerate(keys) if key not in done]
    per_chunk = max(1, batch_size // n) if batch_size else 16
    records: dict[str, dict[str, Any]] = {k: done[k] for k in keys if k in done}
    bar = _progress(progress, len(examples), len(examples) - len(todo))
    try:
        for start in range(0, len(todo), per_chunk):
            idx = todo[start : start + per_chunk]
            chunk = [examples[i] for i in idx]
            for rec in _eval_chunk(
                engine, scorer, chunk, n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                max_new_tokens=max_new_tokens, batch_size=batch_size, greedy=greedy,
                correct_threshold=correct_threshold, correct_key=correct_key, judge_key=judge_key,
                token_entropy=token_entropy, save_completions=save_completions,
                seed=None if seed is None else seed + idx[0],
            ):
                rec.update(problem_metrics(rec, ks))
                records[rec["key"]] = rec
                if on_problem is not None:
                    on_problem(rec)
                if bar is not None:
                    bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()
    problems = [records[k] for k in dict.fromkeys(keys)]
    return EvalResult(summarize(problems, ks), problems)


def image_kwargs(examples) -> dict:
    """``{"images": one list per example}`` for engine.generate when any example has images, else {} (so engines
    without image support keep their signature)."""
    return {"images": [ex.images for ex in examples]} if any(ex.images for ex in examples) else {}


def _eval_chunk(engine, scorer, chunk, *, n, temperature, top_p, top_k, max_new_tokens, batch_size, greedy,
                correct_threshold, correct_key, judge_key, token_entropy, save_completions, seed) -> list[dict]:
    prompts = [ex.prompt or ex.question for ex in chunk]
    greedy_groups = None
    images = image_kwargs(chunk)  # {"images": [...]} when some example has images (a vision-language policy)
    with _seeded(seed):
        groups = engine.generate(prompts, n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                 top_k=top_k, batch_size=batch_size, **images)
        if greedy and temperature > 0:
            greedy_groups = engine.generate(prompts, 1, max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0,
                                            top_k=0, batch_size=batch_size, **images)
    flat_examples = [ex for ex in chunk for _ in range(n)]
    flat = [c for group in groups for c in group]
    greedy_at = [len(chunk) * n + p for p in range(len(chunk))]  # where each greedy sample's result is
    if greedy_groups is not None:
        flat_examples += list(chunk)
        flat += [g[0] for g in greedy_groups]
    elif greedy:  # temperature 0: the samples are greedy already; reuse the first one
        greedy_groups, greedy_at = [[g[0]] for g in groups], [p * n for p in range(len(chunk))]
    results = _score(scorer, flat_examples, flat)
    records = []
    for p, (ex, group) in enumerate(zip(chunk, groups)):
        entropies = None
        if token_entropy == "forward":
            device = next(engine.model.parameters()).device
            entropies = [forward_token_entropy(engine.model, c.prompt_ids, c.token_ids, temperature or 1.0, device)
                         for c in group]
        rec = _problem_record(ex, group, results[p * n : (p + 1) * n], correct_threshold=correct_threshold,
                              correct_key=correct_key, judge_key=judge_key, entropies=entropies,
                              save_completions=save_completions)
        if greedy_groups is not None:
            g, r = greedy_groups[p][0], results[greedy_at[p]]
            rec["greedy"] = {"correct": int(verdict(r, correct_threshold, correct_key)), "extracted": r.extracted,
                             "length": len(g.token_ids), "truncated": int(g.finish_reason == "length")}
            if save_completions:
                rec["greedy"]["completion"] = g.text
        records.append(rec)
    return records


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Sample from torch's generators seeded with ``seed`` and restore the caller's RNG state afterwards (so an
    eval inside training does not change the training run's random stream); no-op when seed is None."""
    if seed is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _score(scorer: Any, examples: list[Example], completions: list[Completion]) -> list[RewardResult]:
    """scorer.score, passing token counts and finish reasons (length rewards read them) when it accepts them."""
    texts = [c.text for c in completions]
    if "metadata_extra" in inspect.signature(scorer.score).parameters:
        extra = [{"completion_tokens": len(c.token_ids), "finish_reason": c.finish_reason} for c in completions]
        return scorer.score(examples, texts, metadata_extra=extra)
    return scorer.score(examples, texts)


def _progress(enabled: bool, total: int, completed: int, label: str = "eval"):
    """A started rich progress bar over ``total`` problems (``completed`` done already) and its task, or None."""
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = bar.add_task(label, total=total, completed=completed)
    bar.start()
    return bar, task
