"""reasoning-gym tasks scored by reasoning-gym itself: ``reasoning_gym``.

    reasoning_gym("<answer>12</answer>", "12",
                  {"rg_dataset": "basic_arithmetic", "rg_kwargs": {}, "rg_entry": {...}})   # -> 1.0

metadata carries ``rg_dataset`` (task name), ``rg_kwargs`` (its config kwargs) and ``rg_entry`` (the generated
entry: question, answer, metadata). The answer is the last <answer> tag, read with reasoning_gym's own
``extract_answer``; the score is ``dataset.score_answer(answer, entry)`` (in [0, 1]; some tasks give partial
credit). Datasets are built once per process per (name, kwargs), with size=1: only ``score_answer`` is used.
When ``rg_entry`` is missing, an entry ``{"question": "", "answer": reference, "metadata": {}}`` is used (enough
for tasks that compare with the answer only).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from rlvr.rewards.base import VERIFIERS, finite
from rlvr.types import RewardResult


@functools.lru_cache(maxsize=256)
def _dataset(name: str, kwargs_json: str) -> Any:
    import reasoning_gym as rg

    return rg.create_dataset(name, size=1, seed=0, **json.loads(kwargs_json))


def dataset_for(name: str, kwargs: dict | None) -> Any:
    """The reasoning_gym dataset ``name`` with ``kwargs``, cached per process."""
    clean = {k: v for k, v in (kwargs or {}).items() if k not in ("size", "seed")}
    return _dataset(name, json.dumps(clean, sort_keys=True, default=str))


@VERIFIERS.register("reasoning_gym")
def reasoning_gym(completion: str, reference: Any, metadata: dict, **_: Any) -> RewardResult:
    """A reasoning-gym task: last <answer> tag scored by the task's own score_answer."""
    from reasoning_gym.utils import extract_answer

    name = metadata.get("rg_dataset")
    if not name:
        return RewardResult(0.0, reason="error: metadata has no rg_dataset")
    entry = metadata.get("rg_entry") or {"question": "", "answer": reference, "metadata": {}}
    dataset = dataset_for(name, metadata.get("rg_kwargs"))
    answer = extract_answer(completion)
    if answer is None:
        return RewardResult(0.0, reason="no <answer> tag")
    score = finite(dataset.score_answer(answer, entry))
    if score is None:
        return RewardResult(0.0, reason="error: score_answer returned a non-finite value", extracted=answer)
    return RewardResult(score, reason="correct" if score >= 1.0 else ("wrong" if score == 0 else "partial"),
                        extracted=answer)
