"""The prompt sampler: seeded epochs over the examples, with an exactly resumable position.

    sampler = PromptSampler(report.examples, batch_size=cfg.rollout.prompts_per_step, seed=cfg.trainer.seed)
    batch = sampler.next_batch()            # P examples
    state = sampler.state_dict()            # save with the checkpoint
    ...
    sampler.load_state_dict(state)          # the next batches are exactly those the saved run would have drawn

Epoch e visits every example once, in the order ``numpy.random.default_rng([seed, e]).permutation(N)`` (the
identity when shuffle=False). The order depends only on (seed, epoch), never on the global RNG, so the state is
just (epoch, position). A batch that reaches the end of an epoch continues at the start of the next one, so no
example is dropped and batches always hold ``batch_size`` examples (a batch larger than N spans several epochs).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from rlvr.data.sources import DataError
from rlvr.types import Example

RESUME_ADVICE = ("To resume, restore the data file the checkpoint was trained on; to train on the new data, start "
                 "a fresh run with another output_dir (or load the checkpoint's weights as model.path)")


def fingerprint(examples: list[Example]) -> str:
    """A short hash of (source, index, question) of every example: detects a changed dataset on resume."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(f"{ex.source}\x00{ex.index}\x00{ex.question}\x01".encode("utf-8", errors="replace"))
    return digest.hexdigest()[:16]


class PromptSampler:
    """Seeded, epoch-based, resumable batches of examples. See the module docstring."""

    def __init__(self, examples: list[Example], batch_size: int, seed: int, shuffle: bool = True):
        if not examples:
            raise ValueError("PromptSampler needs at least one example")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self._fingerprint = fingerprint(self.examples)
        self._epoch = 0
        self._position = 0  # examples of the current epoch already served
        self._order = self._permutation(0)

    @property
    def epoch(self) -> int:
        """The epoch the next example comes from (0-based)."""
        return self._epoch

    @property
    def position(self) -> int:
        """How many examples of the current epoch have been served."""
        return self._position

    def __len__(self) -> int:
        """Full batches per epoch (rounded up)."""
        return -(-len(self.examples) // self.batch_size)

    def _permutation(self, epoch: int) -> np.ndarray:
        n = len(self.examples)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def next_batch(self, size: int | None = None) -> list[Example]:
        """The next ``size`` (default batch_size) examples, continuing into the next epoch when needed."""
        size = self.batch_size if size is None else size
        batch = []
        while len(batch) < size:
            if self._position == len(self._order):
                self._epoch += 1
                self._position = 0
                self._order = self._permutation(self._epoch)
            take = min(size - len(batch), len(self._order) - self._position)
            batch.extend(self.examples[i] for i in self._order[self._position : self._position + take])
            self._position += take
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here (plain JSON-able values)."""
        return {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "num_examples": len(self.examples),
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue from ``state``: the saved seed and shuffle are adopted, the position restored.

        strict: raise DataError (a ValueError) when the examples differ from those the state was saved with (count or content); with
        strict=False a content change is accepted (same count) and a position past the end starts the next epoch.
        """
        n = len(self.examples)
        if state["num_examples"] != n:
            if strict:
                raise DataError(
                    f"sampler state was saved for {state['num_examples']} examples but the data now has {n}; "
                    f"the data position cannot be restored (the data changed since the checkpoint). {RESUME_ADVICE}"
                )
        elif strict and state.get("fingerprint") not in (None, self._fingerprint):
            raise DataError(
                "sampler state was saved for different examples (same count, other content); "
                f"the data changed since the checkpoint. {RESUME_ADVICE}"
            )
        self.seed = int(state["seed"])
        self.shuffle = bool(state["shuffle"])
        self._epoch = int(state["epoch"])
        self._position = min(int(state["position"]), n)
        self._order = self._permutation(self._epoch)
