"""Start the three worker groups of a ``distributed.backend: ray`` run (rlvr.trainer.loop.start_workers).

Placement: the trainer ranks get one placement-group bundle each ({CPU: trainer_cpus, GPU: trainer_gpus}, packed
onto as few nodes as possible). With ``colocate: true`` rollout worker i joins bundle i (which then also holds
rollout_cpus, and half of its GPUs go to each); otherwise rollout and reward workers go wherever Ray finds room.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from rlvr.distributed.cluster import DistributedError, connect, import_ray

log = logging.getLogger("rlvr")

PLACEMENT_WAIT_S = 120.0


def for_workers(cfg, prompts: list[str]):
    """A copy of cfg that means the same in a worker process, whose working directory may differ: absolute
    paths, and the vLLM engine sized here (the workers do not get the prompts)."""
    cfg = copy.deepcopy(cfg)
    expanded = os.path.expanduser(cfg.model.path)
    if os.path.exists(expanded):
        cfg.model.path = os.path.abspath(expanded)
    cfg.output_dir = str(Path(cfg.output_dir).resolve())
    for comp in cfg.reward.components:
        path, sep, function = comp.name.rpartition(":")
        if sep and path.endswith(".py"):
            comp.name = f"{os.path.abspath(os.path.expanduser(path))}:{function}"
    if cfg.rollout.engine == "vllm" and not cfg.rollout.vllm.max_model_len:
        from rlvr.data.checks import prompt_token_counts
        from rlvr.trainer.policy import load_tokenizer

        longest = max(prompt_token_counts(load_tokenizer(cfg.model), prompts, not cfg.prompt.chat_template),
                      default=0)
        cfg.rollout.vllm.max_model_len = longest + max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
    return cfg


def trainer_placement(cfg):
    """The trainer ranks' placement group (bundle i: rank i, and rollout worker i when colocated), ready."""
    ray = import_ray()
    from ray.util.placement_group import placement_group, remove_placement_group

    d = cfg.distributed
    bundle = {"CPU": d.trainer_cpus + (d.rollout_cpus if d.colocate else 0.0)}
    if d.trainer_gpus or (d.colocate and d.rollout_gpus):
        bundle["GPU"] = max(d.trainer_gpus, d.rollout_gpus if d.colocate else 0.0)
    group = placement_group([dict(bundle) for _ in range(d.trainer_workers)], strategy="PACK")
    try:
        ray.get(group.ready(), timeout=PLACEMENT_WAIT_S)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        have = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        raise DistributedError(
            f"the cluster cannot place {d.trainer_workers} trainer ranks of {bundle} each within "
            f"{PLACEMENT_WAIT_S:.0f} s (it has {have}); lower distributed.trainer_workers / trainer_cpus / "
            "trainer_gpus or add nodes") from None
    return group


def start_ray_workers(cfg, prompts: list[str], resume_from: Path | None):
    """(RayTrainerGroup, RayRolloutGroup, RayRewardGroup) on the cluster named by distributed.address."""
    from rlvr.distributed.reward import RayRewardGroup
    from rlvr.distributed.rollout import RayRolloutGroup
    from rlvr.distributed.trainer import RayTrainerGroup

    d = cfg.distributed
    connect(d.address, d.num_cpus)
    ray = import_ray()
    if ray.cluster_resources().get("GPU", 0) > 0 and not d.trainer_gpus:
        log.warning("the Ray cluster has GPUs but distributed.trainer_gpus is 0: the trainer ranks run on CPU")
    cfg = for_workers(cfg, prompts)
    started = []
    try:
        placement = trainer_placement(cfg)
        learner = RayTrainerGroup(cfg, resume_from, placement)
        started.append(learner)
        engine = RayRolloutGroup(cfg, (placement, list(range(d.rollout_workers))) if d.colocate else None)
        started.append(engine)
        r = cfg.reward
        scorer = RayRewardGroup(r, d.reward_workers, d.reward_cpus, d.max_restarts)
    except BaseException:
        for group in reversed(started):
            group.close()
        raise
    log.info("ray: %d trainer rank(s), %d rollout worker(s), %d reward worker(s)%s", d.trainer_workers,
             d.rollout_workers, d.reward_workers, " (rollout colocated with the trainer ranks)" if d.colocate else "")
    return learner, engine, scorer
