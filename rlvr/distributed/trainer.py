"""The trainer group: ``distributed.trainer_workers`` Ray actors forming one torch.distributed process group,
each holding a `rlvr.trainer.learner.Learner` over its FSDP2 shards (rlvr/trainer/shard.py).

The driver calls the group exactly as it calls a Learner (update, save, reset_reference, close); each call runs
on every rank at once. The rollout batch goes to the object store once and every rank reads it; metrics come
back from rank 0 (they are already summed over the ranks), plus ``time/trainer_rank_max_s``.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.distributed.cluster import DistributedError, import_ray, stop_actors, threads_for

log = logging.getLogger("rlvr")


class TrainerRank:
    """One rank (a Ray actor: ``ray.remote(TrainerRank)``). ``setup`` joins the process group and builds the
    sharded learner; the other methods are collective (every rank is called together by RayTrainerGroup)."""

    def __init__(self, cfg, rank: int, world: int, cpus: float):
        torch.set_num_threads(threads_for(cpus))
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        self.cfg, self.rank, self.world = cfg, rank, world
        self.learner = None

    def ping(self) -> int:
        return self.rank

    def rendezvous(self) -> tuple[str, int]:
        """(this node's IP, a free port): rank 0's answer is where the process group meets."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, host: str, port: int, resume: str | None, marker: str) -> str:
        import torch.distributed as dist

        from rlvr.trainer.learner import Learner
        from rlvr.trainer.policy import resolve_device, resolve_dtype
        from rlvr.trainer.shard import Shard

        cfg = self.cfg
        device = resolve_device(cfg.model.device)
        if device.type == "cuda":
            torch.cuda.set_device(0)  # Ray exposes this actor's GPU as cuda:0
            device = torch.device("cuda", 0)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank, world_size=self.world)
        torch.manual_seed(cfg.trainer.seed)  # the same initial LoRA adapters on every rank
        self.tokenizer = None
        self.learner = Learner(cfg, device, resolve_dtype(cfg.model.dtype, device),
                               shard=Shard(self.rank, self.world, device), resume=Path(resume) if resume else None)
        if self.rank == 0 and marker:  # rank 0 writes checkpoints: it must see the driver's output_dir
            if not Path(marker).is_file():
                raise DistributedError(
                    f"trainer rank 0 (node {socket.gethostname()}) does not see {Path(marker).parent}, the "
                    "driver's output_dir: on several machines output_dir must be on storage they share")
        return f"{backend} rank {self.rank}/{self.world} on {device}"

    def update(self, batch, kl_coef: float, step: int):
        from rlvr.trainer.loop import seed_step

        seed_step(self.cfg.trainer.seed, step)  # the same global RNG on every rank as in one process
        t0 = time.perf_counter()
        metrics, finite = self.learner.update(batch, kl_coef, step)
        seconds = time.perf_counter() - t0
        return (metrics if self.rank == 0 else None), finite, seconds  # metrics are already summed over ranks

    def weights(self) -> dict[str, torch.Tensor] | None:
        """Full trainable weights (gathered on every rank); rank 0 returns them, the others None."""
        full = self.learner.trainable_weights(keep=self.rank == 0)
        return full if self.rank == 0 else None

    def probe(self, ids: list[int]):
        """The policy's log-probs of fixed tokens (a forward on every rank: FSDP gathers the layers)."""
        return self.learner.probe_logprobs(ids)

    def save(self, output_dir: str, step: int, driver_state: dict, keep: int, with_reference: bool) -> str | None:
        if self.tokenizer is None and self.rank == 0:
            from rlvr.trainer.policy import load_tokenizer

            self.tokenizer = load_tokenizer(self.cfg.model)
        path = self.learner.save(output_dir, step, self.tokenizer, driver_state, keep, with_reference)
        return str(path) if path is not None else None

    def reset_reference(self) -> None:
        self.learner.reset_reference()

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():  # explicitly: a group left to the interpreter's exit can abort (SIGABRT)
            dist.destroy_process_group()


class RayTrainerGroup:
    """The Learner interface over ``world`` TrainerRank actors.

    placement: (placement group, bundle indices) for the ranks, or None; resources: Ray options per rank.
    """

    def __init__(self, cfg, resume: Path | None, placement=None):
        ray = import_ray()
        d = cfg.distributed
        self.world = d.trainer_workers
        self.reference = True if cfg.algorithm.kl_coef > 0 else None
        actor = ray.remote(TrainerRank)
        self.ranks = []
        for rank in range(self.world):
            options: dict[str, Any] = {"num_cpus": d.trainer_cpus, "num_gpus": _rank_gpus(d)}
            if placement is not None:
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    placement_group=placement, placement_group_bundle_index=rank)
            self.ranks.append(actor.options(**options).remote(cfg, rank, self.world, d.trainer_cpus))
        host, port = ray.get(self.ranks[0].rendezvous.remote())
        marker = Path(cfg.output_dir).resolve() / ".rlvr_driver"
        marker.write_text("written by the driver; trainer rank 0 checks that it sees it\n")
        try:
            described = ray.get([r.setup.remote(host, port, str(resume) if resume else None, str(marker))
                                 for r in self.ranks])
        except Exception as err:  # noqa: BLE001 - the first line of the remote error, with the rank's story
            raise DistributedError(f"the trainer ranks could not start: {_remote_message(err)}") from err
        finally:
            marker.unlink(missing_ok=True)
        log.info("trainer group: %s", "; ".join(described))
        self.policy = self  # what engines read weights from (RayRolloutGroup.sync_weights)
        self.placement = placement
        self._weights = None

    def _all(self, method: str, *args):
        ray = import_ray()
        try:
            return ray.get([getattr(r, method).remote(*args) for r in self.ranks])
        except ray.exceptions.RayActorError as err:
            raise DistributedError(f"a trainer rank died during {method} ({_remote_message(err)}); the run stops "
                                   "and resumes from its last checkpoint with the same command") from err

    def update(self, batch, kl_coef: float, step: int) -> tuple[dict[str, float], bool]:
        ray = import_ray()
        ref = ray.put(batch)  # once in the object store, read by every rank
        results = self._all("update", ref, kl_coef, step)
        metrics, finite, _ = results[0]
        metrics = dict(metrics)
        metrics["time/trainer_rank_max_s"] = max(seconds for _, _, seconds in results)
        self._weights = None  # the weights changed: gathered again when an engine asks
        return metrics, finite

    def weights_ref(self):
        """An object-store reference to the full trainable weights after the last update (gathered once)."""
        if self._weights is None:
            refs = [r.weights.remote() for r in self.ranks]
            import_ray().get(refs[1:])  # every rank takes part in the gather; only rank 0's answer is kept
            self._weights = refs[0]
        return self._weights

    def weights_snapshot(self):
        """The weights after the last update, in the object store (an async run's engines load them later)."""
        return self.weights_ref()

    def probe_logprobs(self, ids: list[int]):
        return self._all("probe", ids)[0]

    def save(self, output_dir, step: int, tokenizer, driver_state: dict, keep: int, with_reference: bool):
        paths = self._all("save", str(Path(output_dir).resolve()), step, driver_state, keep, with_reference)
        return Path(paths[0])

    def reset_reference(self) -> None:
        self._all("reset_reference")

    def close(self) -> None:
        ranks, self.ranks = self.ranks, []
        stop_actors(ranks, "shutdown", timeout_s=60)  # the process group destroyed first, then the actors
        if self.placement is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.placement)
            self.placement = None


def _rank_gpus(d) -> float:
    """A trainer rank's GPUs: half of the bundle's when a rollout worker shares it (colocate)."""
    return d.trainer_gpus / 2 if d.colocate and d.trainer_gpus else d.trainer_gpus


def _remote_message(err: BaseException) -> str:
    """The remote error's own message (Ray wraps it in a traceback of the actor)."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:400] if lines else type(cause).__name__
