"""Where a run trains: the device, and under torchrun the process group for DistributedDataParallel.

`torchrun --nproc_per_node=N -m gan_pack train ...` starts N processes; each reads its rank from
the environment torchrun sets, trains on its share of every batch, and DDP averages G's and D's
gradients. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from gan_pack.errors import DeviceError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "World":
        """The processes torchrun started (WORLD_SIZE, RANK, LOCAL_RANK), or a world of one."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def resolve_device(name: str, world: World = World()) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU; "
                          "use --device cpu (or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world.size > 1:
        if world.local_rank >= torch.cuda.device_count():
            raise DeviceError(f"process {world.local_rank} of this node has no GPU "
                              f"({torch.cuda.device_count()} visible); lower --nproc_per_node")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device(name)


def join(world: World, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes."""
    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)


def leave(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device, world: World) -> nn.Module:
    """DDP around a module when there are several processes; the module itself otherwise."""
    if world.size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_processes(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(values)
        values /= world.size
    return values


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
