"""Batch generation into a resumable JSONL file, then verification, selection and accuracy-against-n curves.

    rows = generate_rows(engine, examples, "out.jsonl", settings=settings, n=8, temperature=1.0, ...)
    score_rows(rows, examples, answer_scorer, {"best_of_n:math": scorer}, correct_threshold=0.5, reference=True)
    select_rows(rows, [parse_rule("majority")])
    curves = selection_curves(rows, rules)             # rule name -> {k: accuracy}
    write_rows("out.jsonl", rows)

`rlvr generate` (rlvr/cli/generate.py) is these steps in order. One line of out.jsonl per problem:

    key, index, question, reference, prompt         the problem (key as in rlvr eval: row index + hash)
    completions, token_counts, finish_reasons       the n samples (finish reason "eos" or "length")
    extracted, correct                              the answer verifier's answers and verdicts (0/1; with --score)
    rewards                                         rule reward name -> (n,) scores (best_of_n / weighted_majority)
    selections                                      rule name -> rlvr.eval.select.pick (answer, index, votes, ...)
    settings_hash                                   hash of what changes the samples

Resuming, as `rlvr eval` does (rlvr.eval.results): a line is appended as soon as its problem's samples exist, and
a run with the same settings hash skips the problems already in the file; the file is rewritten in data order at
the end, lines with another hash dropped. Scores and selections are not part of the hash: they are recomputed from
the stored completions on every run (so another --select never resamples). Each problem samples with its own seed,
derive_seed(seed, row index), so a resumed file holds the samples an uninterrupted run would have drawn (with the
HF decode loop, whose samples depend on the prompt's seed only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr.eval.results import _append, _write_atomic, read_problems, settings_hash
from rlvr.eval.runner import _progress, _score, problem_key, verdict
from rlvr.eval.select import Rule, accuracy_at_k, budgets, pick
from rlvr.rollout import derive_seed
from rlvr.types import Example

PROBLEMS_PER_CHUNK = 16  # problems per generate call when batch_size is 0


def generate_rows(
    engine: Any,
    examples: Sequence[Example],
    path: str | Path,
    *,
    settings: Mapping[str, Any],
    n: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_new_tokens: int,
    batch_size: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Sample n completions per example (skipping those already in ``path`` with the same settings hash), appending
    each finished chunk to ``path``. Returns the rows in the order of ``examples`` (the file is not rewritten here).

    engine: a RolloutEngine (``generate(prompts, n, *, max_new_tokens, temperature, top_p, top_k, batch_size,
    seeds)``); batch_size: completions per generate call (0 = PROBLEMS_PER_CHUNK problems per call).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = settings_hash(dict(settings))
    done = read_problems(path, digest)
    keys = [problem_key(ex) for ex in examples]
    todo = [i for i, key in enumerate(keys) if key not in done]
    per_chunk = max(1, batch_size // n) if batch_size else PROBLEMS_PER_CHUNK
    rows = {key: done[key] for key in keys if key in done}
    bar = _progress(progress, len(examples), len(examples) - len(todo), "generate")
    try:
        for start in range(0, len(todo), per_chunk):
            chunk = [examples[i] for i in todo[start : start + per_chunk]]
            groups = engine.generate(
                [ex.prompt or ex.question for ex in chunk], n, max_new_tokens=max_new_tokens, temperature=temperature,
                top_p=top_p, top_k=top_k, batch_size=batch_size, seeds=[derive_seed(seed, ex.index) for ex in chunk])
            for ex, group in zip(chunk, groups):
                row = {
                    "key": problem_key(ex),
                    "index": ex.index,
                    "question": ex.question,
                    "reference": ex.answer if isinstance(ex.answer, (str, int, float, bool)) or ex.answer is None
                    else str(ex.answer),
                    "prompt": ex.prompt or ex.question,
                    "completions": [c.text for c in group],
                    "token_counts": [len(c.token_ids) for c in group],
                    "finish_reasons": [c.finish_reason for c in group],
                    "settings_hash": digest,
                }
                _append(path, row)
                rows[row["key"]] = row
                if bar is not None:
                    bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()
    return [rows[key] for key in dict.fromkeys(keys)]


def _scores(scorer: Any, examples: Sequence[Example], rows: Sequence[dict[str, Any]]):
    """One RewardResult per completion of every row (flattened, row by row)."""
    from rlvr.types import Completion

    flat_examples = [ex for ex, row in zip(examples, rows) for _ in row["completions"]]
    flat = [Completion(text, [0] * count, [], reason)
            for row in rows for text, count, reason in zip(row["completions"], row["token_counts"],
                                                           row["finish_reasons"])]
    return _score(scorer, flat_examples, flat)


def score_rows(
    rows: Sequence[dict[str, Any]],
    examples: Sequence[Example],
    answer_scorer: Any,
    reward_scorers: Mapping[str, Any],
    *,
    correct_threshold: float = 0.5,
    reference: bool = True,
) -> None:
    """Fill each row's "extracted" (and "correct" when ``reference``) from the answer verifier, and
    "rewards"[name] from each reward scorer (its one component's unweighted score), in place.

    answer_scorer / reward_scorers: RewardScorer-like (``score(examples, completions)``); a verdict is the answer
    verifier's first component >= correct_threshold, as in `rlvr eval`.
    """
    results = _scores(answer_scorer, examples, rows)
    at = 0
    for row in rows:
        part = results[at : at + len(row["completions"])]
        at += len(part)
        row["extracted"] = [r.extracted for r in part]
        if reference:
            row["correct"] = [int(verdict(r, correct_threshold)) for r in part]
        row["rewards"] = {}
    for name, scorer in reward_scorers.items():
        results = _scores(scorer, examples, rows)
        at = 0
        for row in rows:
            part = results[at : at + len(row["completions"])]
            at += len(part)
            row["rewards"][name] = [float(next(iter(r.components.values()), r.score)) for r in part]


def select_rows(rows: Sequence[dict[str, Any]], rules: Sequence[Rule]) -> None:
    """Each row's "selections": rule name -> pick(...) (needs score_rows first)."""
    for row in rows:
        row["selections"] = {rule.name: pick(rule, row["extracted"], row.get("correct"),
                                             row["rewards"].get(rule.reward)) for rule in rules}


def selection_curves(rows: Sequence[dict[str, Any]], rules: Sequence[Rule]) -> dict[str, dict[int, float]]:
    """rule name -> {k: mean over problems of accuracy_at_k} for k = 1, 2, 4, ... n (rows scored with a reference)."""
    n = min(len(row["completions"]) for row in rows)
    curves: dict[str, dict[int, float]] = {}
    for rule in rules:
        curves[rule.name] = {
            k: sum(accuracy_at_k(rule, row["extracted"][:n], row["correct"][:n],
                                 row["rewards"].get(rule.reward, [0.0] * n)[:n], k) for row in rows) / len(rows)
            for k in budgets(n)}
    return curves


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite ``path`` with ``rows`` (data order), atomically."""
    _write_atomic(Path(path), "".join(json.dumps(row) + "\n" for row in rows))
