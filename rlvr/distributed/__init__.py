"""Where work runs with ``distributed.backend: ray`` (docs/distributed.md).

The driver (rlvr/trainer/loop.py) stays the single controller and calls the same three things as in one
process: a learner (`rlvr.distributed.trainer.RayTrainerGroup`: FSDP2 ranks), a rollout engine
(`rlvr.distributed.rollout.RayRolloutGroup`) and a reward scorer (`rlvr.distributed.reward.RayRewardGroup`).
Ray is an optional extra (``pip install 'rlvr[ray]'``), imported only here and only when asked for.
"""

from rlvr.distributed.cluster import DistributedError, connect, import_ray

__all__ = ["DistributedError", "connect", "import_ray"]
