"""Verifiers and rewards.

    from rlvr.rewards import VERIFIERS, RewardScorer
    VERIFIERS.get("math")("<answer>4</answer>", "4", {})   # -> RewardResult(score=1.0, ...)

A verifier is ``fn(completion: str, reference, metadata: dict, **params) -> RewardResult``, registered with
``@VERIFIERS.register("name")`` (module-level, so worker processes find it by name). Importing this package
imports every verifier module so they register; a new module adds one import line below.
See docs/rewards.md.
"""

from rlvr.rewards.base import VERIFIERS, call_verifier
from rlvr.rewards.batch import BATCH_REWARDS  # noqa: E402

# every verifier module, imported for its @VERIFIERS.register side effect
from rlvr.rewards import math, mcqa, table, format, length, reasoning_gym  # noqa: E402,F401
from rlvr.rewards import rlpr, pairwise, rubric, vote  # noqa: E402,F401 - batch rewards and the rubric judge
from rlvr.rewards import vision, consistency, perception  # noqa: E402,F401 - visual rewards (docs/vision.md)

from rlvr.rewards.compose import Component, combine, resolve_components  # noqa: E402
from rlvr.rewards.scorer import RewardScorer, WorkerPool  # noqa: E402
from rlvr.rewards.user import call_user_function, load_user_function  # noqa: E402

__all__ = [
    "VERIFIERS",
    "BATCH_REWARDS",
    "RewardScorer",
    "WorkerPool",
    "Component",
    "call_verifier",
    "call_user_function",
    "combine",
    "load_user_function",
    "resolve_components",
]
from rlvr.rewards import code, judge, verilog  # noqa: E402,F401
from rlvr.selfplay import rewards as _selfplay_rewards  # noqa: E402,F401 - the selfplay verifier
