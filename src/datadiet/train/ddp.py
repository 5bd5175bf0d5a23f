"""DDP inside one training process: the `World` it belongs to (rank, size, local rank), the
checks and devices that follow from it, and the collective ops the training loop uses.

    world = current_world()                        # SINGLE outside a process group
    device = ddp_device(device, world)
    model = wrap_ddp(model, device) if world.size > 1 else model
    loss = all_reduce_sum(loss, device, world) / world.size

The processes themselves are started by `distributed.py` (or torchrun), which imports the trainer;
the trainer imports only this module, so the two never import each other.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from datadiet.errors import UsageError
from datadiet.runtime import cpu_count

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes:
        rank: Global rank, 0 .. size - 1; rank 0 writes every file.
        size: Number of processes (1 without DDP).
        local_rank: Rank on this machine, which picks the GPU.
        local_size: Processes on this machine, which share its cores.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, metrics and the store."""
        return self.rank == 0

    def shard(self, batch: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of a global batch whose length is divisible by `size`."""
        per_rank = len(batch) // self.size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]


SINGLE = World()


def current_world() -> World:
    """The world of the initialised default process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    rank, size = dist.get_rank(), dist.get_world_size()
    return World(
        rank=rank,
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", rank)),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", size)),
    )


def check_nproc(nproc: int, batch_size: int) -> None:
    """Refuse a process count that cannot split the global batch evenly.

    Raises:
        UsageError: `nproc` is below 1 or does not divide `batch_size`.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UsageError(f"--nproc must be a whole number of processes >= 1, not {nproc!r}; e.g. --nproc 2")
    if batch_size % nproc:
        raise UsageError(
            f"batch_size {batch_size} does not split over --nproc {nproc} processes; "
            f"choose an --nproc that divides it or --set batch_size={-(-batch_size // nproc) * nproc}"
        )


def threads_per_process(nproc: int) -> int:
    """CPU threads for each of `nproc` processes on this machine: the cores shared out, at least one."""
    return max(1, cpu_count() // nproc)


def backend_for(device: torch.device) -> str:
    """The collective backend for a device: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def ddp_device(device: torch.device, world: World) -> torch.device:
    """The device this rank trains on: its own GPU (by local rank) on CUDA, else `device` unchanged.

    Raises:
        UsageError: More processes per machine than GPUs, or a device DDP cannot use (mps).
    """
    if world.size == 1:
        return device
    if device.type == "mps":
        raise UsageError("DDP does not run on Apple mps devices; use --set device=cpu with --nproc, or --nproc 1")
    if device.type != "cuda":
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise UsageError(
            f"process with local rank {world.local_rank} has no GPU (this machine has {torch.cuda.device_count()}); "
            "use at most one process per GPU"
        )
    return torch.device("cuda", world.local_rank)


def wrap_ddp(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """`model` in DistributedDataParallel, its parameters already on `device` (this rank's)."""
    # The model's only buffer (the padding mask) is a constant, so it needs no broadcast before each
    # forward; newer torch (2.13 here) renamed the switch and warns about the old name.
    takes_new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_buffer_sync: dict[str, Any] = {"forward_sync_buffers": False} if takes_new else {"broadcast_buffers": False}
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        gradient_as_bucket_view=True,  # gradients live in the all-reduce buckets: one copy, not two
        **no_buffer_sync,
    )


def all_reduce_sum(value: float, device: torch.device, world: World) -> float:
    """`value` summed over all ranks (itself when there is one process); every rank must call it."""
    if world.size == 1:
        return value
    # float64 so that summing N per-rank partial sums adds no rounding of its own at these sizes.
    t = torch.tensor(value, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # gloo has no ReduceOp.AVG
    return float(t)
