"""Batch rewards: the second kind of reward component, computed in the trainer process on a whole scoring batch.

A verifier (rlvr.rewards.base) scores ONE completion in a worker process. A batch reward is called once per
``RewardScorer.score`` call with every completion of the batch, grouped by prompt, in the trainer process:

    @BATCH_REWARDS.register("my_reward", needs_policy=True)
    def my_reward(batch: ScoreBatch, policy: PolicyContext | None, *, timeout_s: float, **params) -> list[RewardResult]

It is the place for rewards that need
    - the policy (or another model) on the training device: ``needs_policy=True``, e.g. ``rlpr`` (the policy's
      probability of the reference answer); the scorer is given the policy with ``RewardScorer.attach_policy``;
    - the whole group of a prompt at once: e.g. ``pairwise_judge`` (BRPO compares every completion of a group
      with one reference completion of the same group).
It returns one RewardResult per completion, in batch order, and must not raise for a bad completion (an
exception still becomes score 0 with the reason for the whole batch, logged). Unlike worker verifiers there
is no process isolation: no memory limit, no hard kill; a reward that calls out (HTTP) bounds its own time
by ``timeout_s`` (the component's ``params.timeout_s``, else reward.timeout_s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlvr.registry import Registry
from rlvr.types import Example, RewardResult


class _BatchRegistry(Registry):
    """A Registry that also remembers which batch rewards need the policy."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.policy_rewards: set[str] = set()

    def register(self, name: str, obj: Any = None, *, doc: str | None = None, needs_policy: bool = False):
        if needs_policy:
            self.policy_rewards.add(name)
        return super().register(name, obj, doc=doc)


BATCH_REWARDS = _BatchRegistry("batch reward")


@dataclass
class PolicyContext:
    """What a model-based batch reward needs of the trainer: the policy module, its tokenizer and device.

    add_special_tokens: how prompts are tokenised (as the rollout engine does: False under a chat template).
    """

    model: Any
    tokenizer: Any
    device: Any
    add_special_tokens: bool = True


@dataclass
class ScoreBatch:
    """The completions of one ``RewardScorer.score`` call.

    examples[i], completions[i], metadata[i]: completion i's problem, text and metadata (the example's metadata
    plus the scorer's extras: question, completion_tokens, finish_reason, sample_seed ...).
    groups: index lists, one per prompt: consecutive completions of the same Example object (the loop scores
    P prompts x G completions in that order); a prompt scored once (eval, n = 1) is a group of one.
    """

    examples: list[Example]
    completions: list[str]
    metadata: list[dict[str, Any]]
    groups: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = consecutive_groups(self.examples)


def consecutive_groups(examples: list[Example]) -> list[list[int]]:
    """Runs of the same Example object: [a, a, a, b, b, a] -> [[0, 1, 2], [3, 4], [5]]."""
    groups: list[list[int]] = []
    for i, ex in enumerate(examples):
        if groups and examples[groups[-1][0]] is ex:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def call_batch_reward(name: str, batch: ScoreBatch, policy: PolicyContext | None, params: dict,
                      timeout_s: float) -> list[RewardResult]:
    """Run batch reward ``name``; an exception or a wrong number of results -> every item 0 with the reason."""
    import logging

    from rlvr.rewards.base import finite

    n = len(batch.completions)
    try:
        if name in BATCH_REWARDS.policy_rewards and policy is None:
            raise RuntimeError(f"the {name!r} reward needs the policy, and none was attached to the scorer "
                               "(RewardScorer.attach_policy); it runs in the trainer process only")
        params = dict(params)  # a component's own params.timeout_s overrides reward.timeout_s
        out = BATCH_REWARDS.get(name)(batch, policy, timeout_s=float(params.pop("timeout_s", timeout_s)), **params)
        if len(out) != n:
            raise RuntimeError(f"returned {len(out)} results for {n} completions")
    except Exception as err:  # noqa: BLE001 - a reward must never crash training
        reason = f"error: {type(err).__name__}: {err}"[:300]
        logging.getLogger("rlvr.rewards").warning("batch reward %s: %s; every item of the batch scores 0", name,
                                                  reason)
        return [RewardResult(0.0, reason=reason) for _ in range(n)]
    checked = []
    for res in out:
        value = finite(res.score) if isinstance(res, RewardResult) else None
        if value is None:
            checked.append(RewardResult(0.0, reason=f"error: {name} gave a non-finite or non-RewardResult score"))
        else:
            res.score = value
            checked.append(res)
    return checked
