"""Training in several processes, on one machine or many, with PyTorch's own engine
(torch.distributed).

    torchrun --standalone --nproc_per_node=2 -m core.train --dataset mnist ...
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
        -m core.train ...

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address;
`join` turns that environment into a process group: NCCL with one GPU per process (cuda:LOCAL_RANK)
where CUDA is available, gloo on the CPU otherwise. Without that environment nothing here does
anything and a run is the single process it always was. How core.train uses a group: every rank
draws the same seeded permutation of the training images and takes its own equal part of each global
batch (`rank_part`); DistributedDataParallel averages the gradients; BatchNorm statistics are
synchronised (SyncBatchNorm) on CUDA; only rank 0 evaluates, writes checkpoints and prints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "SINGLE", "launched", "join", "leave", "current", "wrap", "rank_part", "total",
           "agree", "barrier", "TIMEOUT"]

# How long a rank waits for the others at a collective before the job fails (a rank that died is
# noticed sooner: its sockets close). Rank 0's final evaluation and calibration run while the others
# wait.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among `size` processes, its GPU on its machine, the
    backend."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """The process that evaluates, writes and prints."""
        return self.rank == 0

    @property
    def device(self) -> torch.device | None:
        """The device this rank must train on (None: any, as a single process picks)."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu") if self.backend == "gloo" else None


SINGLE = World()


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one of several."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join(device: str | None = None) -> World:
    """Join the process group torchrun's environment describes; a single process when there is none.

    NCCL needs one GPU per process: asking for the CPU (`device` "cpu") or having no CUDA means
    gloo."""
    if not launched() or current().backend is not None:
        return current()
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {local_rank} on this machine has no GPU of its own "
                               f"({torch.cuda.device_count()} visible): start at most that many "
                               "per node")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=TIMEOUT)
    return current()


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                 dist.get_backend())


def wrap(model: nn.Module, world: World) -> nn.Module:
    """The module a rank trains through: DistributedDataParallel over `model` (whose BatchNorm
    layers, on CUDA, become SyncBatchNorm: PyTorch synchronises batch statistics on GPUs only; on
    the CPU each rank normalises by its own part of the batch and the running statistics are rank
    0's). `model` itself stays what is evaluated and saved: the parameters are shared, the file
    format does not change."""
    if world.size == 1:
        return model
    if world.backend == "nccl":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    devices = [world.local_rank] if world.backend == "nccl" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=devices)


def rank_part(batch: torch.Tensor, world: World) -> tuple[torch.Tensor, float]:
    """This rank's part of a global batch of image indices (contiguous, sizes differing by at most
    one), and the factor its mean loss is scaled by so that the gradients DDP averages equal the
    global batch's mean."""
    if world.size == 1:
        return batch, 1.0
    part = batch.tensor_split(world.size)[world.rank]
    return part, len(part) * world.size / len(batch)


def total(values: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of a tensor over every rank (itself in a single process)."""
    if world.size == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def agree(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """Each flag true if it is true on any rank, so that every rank stops at the same batch for the
    same reason."""
    if world.size == 1:
        return flags
    return [bool(v) for v in total(torch.tensor(flags, dtype=torch.float32, device=device),
                                   world).tolist()]


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
