"""The self-play task buffers: one per task type, seeded with the identity triplet, saved in checkpoints.

Deduction and abduction buffers hold (p, i, o) triplets, the induction buffer (p, {i_n, o_n}, message) tasks;
the induction proposer takes its programs from the deduction and abduction buffers (Absolute Zero, §3.3.1).
A task whose (program, inputs) is already in its buffer is a duplicate: it is not added again (counted).
``capacity`` > 0 keeps the newest tasks (the seed always stays). Sampling takes an explicit numpy Generator,
so which references a step sees follows from (seed, step) and resumes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlvr.selfplay.tasks import IDENTITY, TASK_TYPES, Task


class TaskBuffers:
    def __init__(self, task_types: tuple[str, ...] | list[str] = TASK_TYPES, capacity: int = 0):
        self.task_types = tuple(task_types)
        self.capacity = capacity
        self.tasks: dict[str, list[Task]] = {t: [] for t in TASK_TYPES}
        for t in ("deduction", "abduction"):
            self.tasks[t].append(Task.from_dict(IDENTITY.to_dict()))
        self._keys: dict[str, set] = {t: {self._key(x) for x in self.tasks[t]} for t in TASK_TYPES}

    @staticmethod
    def _key(task: Task) -> tuple:
        return task.program.strip(), tuple(task.inputs)

    def add(self, task_type: str, task: Task) -> bool:
        """Add ``task``; False (and nothing added) when it is a duplicate."""
        key = self._key(task)
        if key in self._keys[task_type]:
            return False
        items = self.tasks[task_type]
        items.append(task)
        self._keys[task_type].add(key)
        if self.capacity and len(items) > self.capacity:  # the oldest non-seed task leaves
            gone = items.pop(1 if task_type != "induction" else 0)
            self._keys[task_type].discard(self._key(gone))
        return True

    def programs(self) -> list[Task]:
        """The tasks induction proposals start from: the deduction and abduction buffers' programs."""
        return self.tasks["deduction"] + self.tasks["abduction"]

    def sample(self, task_type: str, k: int, rng: np.random.Generator) -> list[Task]:
        """k tasks of the buffer (without replacement while it has k; the induction buffer empty: none)."""
        items = self.tasks[task_type]
        if not items:
            return []
        idx = rng.choice(len(items), size=k, replace=len(items) < k)
        return [items[int(i)] for i in idx]

    def metrics(self) -> dict[str, float]:
        out = {}
        for t in self.task_types:
            items = self.tasks[t]
            out[f"selfplay/{t}/buffer_size"] = float(len(items))
            if items:  # diversity: the share of distinct programs, and how long they are
                out[f"selfplay/{t}/buffer_distinct_programs"] = len({x.program.strip() for x in items}) / len(items)
                out[f"selfplay/{t}/buffer_program_chars"] = float(np.mean([len(x.program) for x in items]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": {t: [x.to_dict() for x in items] for t, items in self.tasks.items()},
                "capacity": self.capacity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks = {t: [Task.from_dict(d) for d in state["tasks"].get(t, [])] for t in TASK_TYPES}
        self._keys = {t: {self._key(x) for x in self.tasks[t]} for t in TASK_TYPES}
