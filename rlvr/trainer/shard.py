"""One data-parallel rank's view of an update (torch.distributed already initialised: gloo on CPU, NCCL on GPU).

Every rank receives the whole rollout batch (token ids: small) and computes the same advantages, the same
mini-batch shuffles and the same whole-mini-batch counts; it then runs forward/backward on its own share of each
mini-batch's rows (`Shard.part`). Because every micro-batch loss is normalised by the whole mini-batch's counts
(rlvr/trainer/update.py), the ranks' losses add up to the single-process loss, so the gradient is their *sum*:
FSDP2 averages over the ranks when it reduce-scatters, hence each rank scales its loss by ``world``
(`Shard.loss_scale`). Parameters are sharded with FSDP2 ``fully_shard`` (each decoder layer, then the root).

FSDP runs collectives inside every forward and backward, so every rank must run the same number of them: a
rank with fewer micro-batches runs dummy ones (one row, loss x 0; `Shard.align`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Shard:
    rank: int
    world: int
    device: torch.device

    @property
    def loss_scale(self) -> float:
        return float(self.world)

    def part(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of ``rows`` (sizes differ by at most one)."""
        return torch.tensor_split(rows, self.world)[self.rank]

    def align(self, micros: list) -> list:
        """``micros`` padded with None (a dummy micro-batch) to the largest count over the ranks."""
        most = self.max_int(len(micros))
        return list(micros) + [None] * (most - len(micros))

    def max_int(self, value: int) -> int:
        t = torch.tensor([value], dtype=torch.long, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) ``tensor`` in place (ranks fill disjoint rows: the sum is the gather)."""
        t = tensor.to(self._comm_device)
        dist.all_reduce(t)
        tensor.copy_(t.to(tensor.device))
        return tensor

    def sum_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Key-wise sum over the ranks (a rank that ran only dummy micro-batches contributes nothing)."""
        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, dict(values))
        total: dict[str, float] = {}
        for part in gathered:
            for key, value in part.items():
                total[key] = total.get(key, 0.0) + value
        return total

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def wrap(self, model: torch.nn.Module) -> None:
        """FSDP2: every decoder layer (the model's ``_no_split_modules`` classes) is one shard group, then the
        root holds the rest (embeddings, final norm, head: tied weights stay in one group)."""
        from torch.distributed.fsdp import fully_shard

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        layer_classes = set(getattr(base, "_no_split_modules", None) or [])
        layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` is an FSDP2 module (its forward must go through the root: no backbone + head split)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)
