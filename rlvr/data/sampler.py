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

Curricula read what the trainer saw: after each sampled batch the loop calls ``sampler.observe(examples,
pass_rates)`` (the share of each prompt's completions that were correct), and the samplers below use it:

- ``skip_solved = N`` (both samplers): a prompt solved by every completion in each of its last N visits is passed
  over, except that at least ``min_active`` of the prompts (and one batch) stay in play: when more would be
  skipped, those skipped longest ago come back first.
- ``WeaknessSampler`` (data.sampling: weakness, after SwS / DRIVE): each batch draws prompts without replacement
  with probability proportional to ``w_i = floor + (1 - floor) * f_i``, where ``f_i`` is an exponential moving
  average of the prompt's failure rate (1 - pass rate) over its visits, ``prior`` before the first one. The floor
  keeps every prompt's chance above ``floor / sum(w)``: none is starved.
- ``MixtureSampler`` (data.sources): each batch slot picks a source with probability proportional to its weight
  (a seeded categorical draw per slot), and each source's own sampler (uniform or weakness) supplies its examples.

Every draw is seeded from (seed, a counter kept in the state), so ``state_dict`` / ``load_state_dict`` resume
each of them exactly, the curriculum statistics included.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

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


class SolvedTracker:
    """skip_solved bookkeeping over N examples: each prompt's run of consecutive all-solved visits.

    streak:    (N,) int, visits in a row whose every completion was correct (0 after any other visit)
    last_seen: (N,) int, the observation count at the prompt's last visit (0 = never seen)
    """

    def __init__(self, n: int, skip_solved: int, min_active: float, batch_size: int):
        self.skip_solved, self.min_active, self.batch_size = skip_solved, min_active, batch_size
        self.streak = np.zeros(n, dtype=np.int64)
        self.last_seen = np.zeros(n, dtype=np.int64)
        self.observations = 0

    def observe(self, positions: Sequence[int], pass_rates: Sequence[float]) -> None:
        self.observations += 1
        for i, rate in zip(positions, pass_rates):
            self.streak[i] = self.streak[i] + 1 if rate >= 1.0 else 0
            self.last_seen[i] = self.observations

    def blocked(self) -> np.ndarray:
        """(N,) bool: the prompts passed over now. Never more than N - max(ceil(min_active * N), batch_size)
        (capped at N): when more are solved, those seen longest ago come back first."""
        n = len(self.streak)
        solved = self.streak >= self.skip_solved if self.skip_solved else np.zeros(n, dtype=bool)
        keep = min(n, max(math.ceil(self.min_active * n), self.batch_size, 1))
        excess = keep - int((~solved).sum())
        if excess > 0:  # too few left in play: un-block the oldest solved ones
            order = np.flatnonzero(solved)[np.argsort(self.last_seen[solved], kind="stable")]
            solved = solved.copy()
            solved[order[:excess]] = False
        return solved

    @property
    def skipped(self) -> int:
        return int(self.blocked().sum()) if self.skip_solved else 0

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak.tolist(), "last_seen": self.last_seen.tolist(),
                "observations": self.observations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["streak"]) != len(self.streak):
            return  # a changed dataset (strict=False): start the statistics afresh
        self.streak = np.asarray(state["streak"], dtype=np.int64)
        self.last_seen = np.asarray(state["last_seen"], dtype=np.int64)
        self.observations = int(state["observations"])


class PromptSampler:
    """Seeded, epoch-based, resumable batches of examples (optionally skipping solved prompts). See the module
    docstring."""

    def __init__(self, examples: list[Example], batch_size: int, seed: int, shuffle: bool = True,
                 skip_solved: int = 0, min_active: float = 0.1):
        if not examples:
            raise ValueError("PromptSampler needs at least one example")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self._fingerprint = fingerprint(self.examples)
        self._positions = {(ex.source, ex.index): i for i, ex in enumerate(self.examples)}
        self.solved = SolvedTracker(len(self.examples), skip_solved, min_active, batch_size)
        self._epoch = 0
        self._position = 0  # examples of the current epoch already passed (served or skipped)
        self._order = self._permutation(0)

    @property
    def epoch(self) -> int:
        """The epoch the next example comes from (0-based)."""
        return self._epoch

    @property
    def position(self) -> int:
        """How many examples of the current epoch have been served (or passed over as solved)."""
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
        blocked = self.solved.blocked() if self.solved.skip_solved else None
        batch = []
        while len(batch) < size:
            if self._position == len(self._order):
                self._epoch += 1
                self._position = 0
                self._order = self._permutation(self._epoch)
            if blocked is None:
                take = min(size - len(batch), len(self._order) - self._position)
                batch.extend(self.examples[i] for i in self._order[self._position : self._position + take])
                self._position += take
            else:  # one at a time, passing over the solved ones (at least one per epoch is not blocked)
                i = self._order[self._position]
                self._position += 1
                if not blocked[i]:
                    batch.append(self.examples[i])
        return batch

    def observe(self, examples: Sequence[Example], pass_rates: Sequence[float]) -> None:
        """The pass rate of each sampled prompt's completions (what skip_solved counts)."""
        if self.solved.skip_solved:
            self.solved.observe(self._locate(examples), pass_rates)

    def _locate(self, examples: Sequence[Example]) -> list[int]:
        return [self._positions[(ex.source, ex.index)] for ex in examples]

    def metrics(self) -> dict[str, float]:
        return {"data/skipped_solved": float(self.solved.skipped)} if self.solved.skip_solved else {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here (plain JSON-able values)."""
        state = {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "num_examples": len(self.examples),
            "fingerprint": self._fingerprint,
        }
        if self.solved.skip_solved:
            state["solved"] = self.solved.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue from ``state``: the saved seed and shuffle are adopted, the position restored.

        strict: raise DataError (a ValueError) when the examples differ from those the state was saved with (count or content); with
        strict=False a content change is accepted (same count) and a position past the end starts the next epoch.
        """
        check_state(state, len(self.examples), self._fingerprint, strict)
        n = len(self.examples)
        self.seed = int(state["seed"])
        self.shuffle = bool(state["shuffle"])
        self._epoch = int(state["epoch"])
        self._position = min(int(state["position"]), n)
        self._order = self._permutation(self._epoch)
        if "solved" in state:
            self.solved.load_state_dict(state["solved"])


def check_state(state: dict[str, Any], n: int, digest: str, strict: bool) -> None:
    """DataError (strict) when a sampler state was saved for other examples (count or content)."""
    if not strict:
        return
    if state["num_examples"] != n:
        raise DataError(
            f"sampler state was saved for {state['num_examples']} examples but the data now has {n}; "
            f"the data position cannot be restored (the data changed since the checkpoint). {RESUME_ADVICE}"
        )
    if state.get("fingerprint") not in (None, digest):
        raise DataError(
            "sampler state was saved for different examples (same count, other content); "
            f"the data changed since the checkpoint. {RESUME_ADVICE}"
        )


class WeaknessSampler(PromptSampler):
    """Batches drawn in proportion to a smoothed failure rate (data.sampling: weakness). See the module docstring.

    fail: (N,) float64, the EMA of each prompt's failure rate: f <- (1 - smoothing) * f + smoothing * (1 - pass)
    """

    def __init__(self, examples: list[Example], batch_size: int, seed: int, floor: float = 0.1,
                 smoothing: float = 0.5, prior: float = 1.0, skip_solved: int = 0, min_active: float = 0.1):
        super().__init__(examples, batch_size, seed, shuffle=True, skip_solved=skip_solved, min_active=min_active)
        if not 0 < floor <= 1:
            raise ValueError(f"floor must be in (0, 1] (0 would starve solved prompts), got {floor}")
        self.floor, self.smoothing = floor, smoothing
        self.fail = np.full(len(self.examples), float(prior))
        self._draws = 0  # batches drawn: the draw's seed
        self._served = 0

    @property
    def epoch(self) -> int:
        """Examples served / N (there are no epochs: prompts repeat by weakness)."""
        return self._served // len(self.examples)

    def weights(self) -> np.ndarray:
        """(N,) the sampling weights w_i = floor + (1 - floor) * f_i, 0 for prompts skip_solved passes over."""
        w = self.floor + (1.0 - self.floor) * self.fail
        if self.solved.skip_solved:
            w = np.where(self.solved.blocked(), 0.0, w)
        return w

    def next_batch(self, size: int | None = None) -> list[Example]:
        """``size`` examples drawn without replacement by weight (in rounds when size exceeds the prompts in play)."""
        size = self.batch_size if size is None else size
        rng = np.random.default_rng([self.seed, 1, self._draws])
        self._draws += 1
        w = self.weights()
        picks: list[int] = []
        while len(picks) < size:
            take = min(size - len(picks), int((w > 0).sum()))
            picks.extend(rng.choice(len(w), size=take, replace=False, p=w / w.sum()).tolist())
        self._served += size
        return [self.examples[i] for i in picks]

    def observe(self, examples: Sequence[Example], pass_rates: Sequence[float]) -> None:
        positions = self._locate(examples)
        for i, rate in zip(positions, pass_rates):
            self.fail[i] = (1.0 - self.smoothing) * self.fail[i] + self.smoothing * (1.0 - float(rate))
        super().observe(examples, pass_rates)

    def metrics(self) -> dict[str, float]:
        w = self.weights()
        p = w / w.sum()
        return {**super().metrics(), "data/failure_rate_mean": float(self.fail.mean()),
                "data/weight_max_over_mean": float(p.max() * len(p))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "sampling": "weakness", "draws": self._draws, "served": self._served,
                "fail": self.fail.tolist()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        if state.get("sampling") != "weakness":
            raise DataError("the checkpoint's sampler state is not a weakness sampler's (data.sampling changed "
                            f"since the checkpoint). {RESUME_ADVICE}")
        super().load_state_dict(state, strict)
        self._draws, self._served = int(state["draws"]), int(state["served"])
        if len(state["fail"]) == len(self.fail):
            self.fail = np.asarray(state["fail"], dtype=np.float64)


class MixtureSampler:
    """Batches whose slots pick a source by weight; each source's sampler supplies its examples (data.sources).

    sources: (name, sampler) in the configured order; weights: one per source, > 0 (normalised here).
    """

    def __init__(self, sources: list[tuple[str, PromptSampler]], weights: Sequence[float], batch_size: int,
                 seed: int):
        if not sources or len(sources) != len(weights):
            raise ValueError("MixtureSampler needs one weight per source and at least one source")
        self.names = [name for name, _ in sources]
        self.samplers = [sampler for _, sampler in sources]
        w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        self.batch_size, self.seed = batch_size, seed
        self._batches = 0
        self._owner = {(ex.source, ex.index, ex.origin): k for k, s in enumerate(self.samplers) for ex in s.examples}

    @property
    def examples(self) -> list[Example]:
        return [ex for s in self.samplers for ex in s.examples]

    @property
    def epoch(self) -> int:
        """The fewest epochs any source has completed."""
        return min(s.epoch for s in self.samplers)

    def next_batch(self, size: int | None = None) -> list[Example]:
        size = self.batch_size if size is None else size
        rng = np.random.default_rng([self.seed, 2, self._batches])
        self._batches += 1
        slots = rng.choice(len(self.samplers), size=size, p=self.weights)
        drawn = [iter(s.next_batch(int((slots == k).sum()))) for k, s in enumerate(self.samplers)]
        return [next(drawn[k]) for k in slots]

    def observe(self, examples: Sequence[Example], pass_rates: Sequence[float]) -> None:
        for k, sampler in enumerate(self.samplers):
            mine = [(ex, r) for ex, r in zip(examples, pass_rates) if self._owner[(ex.source, ex.index, ex.origin)] == k]
            if mine:
                sampler.observe([ex for ex, _ in mine], [r for _, r in mine])

    def metrics(self) -> dict[str, float]:
        out = {}
        for name, sampler in zip(self.names, self.samplers):
            out.update({f"{key}/{name}": value for key, value in sampler.metrics().items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"mixture": self.names, "batches": self._batches,
                "sources": {name: s.state_dict() for name, s in zip(self.names, self.samplers)}}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        if state.get("mixture") != self.names:
            raise DataError(f"the checkpoint's sampler was saved for the sources {state.get('mixture')} but "
                            f"data.sources now names {self.names}. {RESUME_ADVICE}")
        self._batches = int(state["batches"])
        for name, sampler in zip(self.names, self.samplers):
            sampler.load_state_dict(state["sources"][name], strict)


def make_sampler(data_cfg, examples: list[Example], batch_size: int, seed: int):
    """The sampler a run's data section asks for: uniform or weakness, over one source or a weighted mixture
    (examples carry their data.sources entry's name in ``origin``)."""
    def single(items: list[Example], child_seed: int) -> PromptSampler:
        if data_cfg.sampling == "weakness":
            return WeaknessSampler(items, batch_size, child_seed, floor=data_cfg.weakness_floor,
                                   smoothing=data_cfg.weakness_smoothing, prior=data_cfg.weakness_prior,
                                   skip_solved=data_cfg.skip_solved, min_active=data_cfg.min_active)
        return PromptSampler(items, batch_size, child_seed, shuffle=data_cfg.shuffle,
                             skip_solved=data_cfg.skip_solved, min_active=data_cfg.min_active)

    if not data_cfg.sources:
        return single(examples, seed)
    from rlvr.config import source_name

    children, weights = [], []
    for k, entry in enumerate(data_cfg.sources):
        name = source_name(entry)
        items = [ex for ex in examples if ex.origin == name]
        if not items:
            raise DataError(f"data.sources[{k}] ({name}): no examples left (every prompt was too long?)")
        children.append((name, single(items, seed + 1_000_003 * (k + 1))))
        weights.append(entry.weight)
    return MixtureSampler(children, weights, batch_size, seed)
