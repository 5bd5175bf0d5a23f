"""Data-parallel training on several processes with torch DistributedDataParallel (DDP).

Two ways in, both with torchrun's environment contract (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) and NCCL on GPUs, gloo on CPUs:

- `curate train ... --nproc N` calls `train_processes(..., nproc=N)`, which starts N local worker
  processes itself (spawn, on a free port, each on max(1, cores // N) CPU threads), runs
  `datadiet.train.trainer.train` in each and relays rank 0's progress, step lines and result to
  the caller;
- `torchrun --nproc-per-node N $(which curate) train ...` starts the processes; `prepare_processes` reads
  their environment and joins the process group, and `datadiet.train.pipeline.train_run` lets rank 0
  alone talk to the store while the other ranks only train.

Inside `train` (see `current_world`), the global batch of each step is the one a single process
would draw for (seed, step); rank r takes its r-th slice of batch_size / N windows, DDP averages the
gradients, and rank 0 alone writes checkpoints and metrics. A run on N processes therefore reaches
the weights and losses of the single-process run up to floating-point rounding, and N stays out of
the run's id like `threads` and `device`.
"""

from __future__ import annotations

import inspect
import mmap
import os
import queue as queue_mod
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Task, Tracker

if TYPE_CHECKING:
    from datadiet.train.config import TrainConfig
    from datadiet.train.model import GPTConfig
    from datadiet.train.trainer import TrainResult

# Seconds the parent waits on the workers' message queue per poll: short enough that the progress
# display keeps up with tiny models (~10 ms steps), long enough not to spin a core.
POLL_S = 0.05
TORCHRUN_VARS = ("RANK", "WORLD_SIZE")


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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // nproc)


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


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago, for MASTER_PORT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def torchrun_world(nproc: int | None = None) -> World | None:
    """The world torchrun (or any launcher with its environment contract) started this process in.

    Args:
        nproc: `--nproc` as given; when set it must agree with WORLD_SIZE.

    Returns:
        None when RANK and WORLD_SIZE are not both set.

    Raises:
        UsageError: The variables are malformed or disagree with `nproc`.
    """
    if not all(v in os.environ for v in TORCHRUN_VARS):
        return None
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    except ValueError as exc:
        raise UsageError(
            f"torchrun variables RANK, WORLD_SIZE, LOCAL_RANK must be integers ({exc}); launch with torchrun"
        ) from exc
    if not 0 <= rank < size:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={size}; launch with torchrun")
    if nproc not in (None, size):
        raise UsageError(
            f"--nproc {nproc} disagrees with torchrun's WORLD_SIZE={size}; drop --nproc when launching with torchrun"
        )
    return World(rank=rank, size=size, local_rank=local, local_size=local_size)


def prepare_processes(nproc: int | None, device_name: str, batch_size: int) -> World | None:
    """Check `--nproc` against the batch and this machine, and join torchrun's process group if in one.

    Call it before any other work, so that a bad `--nproc` fails at once and changes nothing.

    Args:
        nproc: `--nproc` as given (None: not given, which means 1, or WORLD_SIZE under torchrun).
        device_name: `TrainConfig.device`; picks NCCL (cuda) or gloo, and each local rank's GPU.
        batch_size: The global batch, which must split evenly over the processes.

    Returns:
        The world when torchrun started this process as one of several (the group is then joined);
        None otherwise, where `train_processes` starts the `nproc` local workers itself if nproc > 1.

    Raises:
        UsageError: `nproc` below 1, not dividing the batch, or disagreeing with WORLD_SIZE; more
            processes on this machine than GPUs; an unavailable device, or mps.
    """
    from datadiet.train.trainer import select_device

    world = torchrun_world(nproc)
    n = world.size if world is not None else 1 if nproc is None else nproc
    check_nproc(n, batch_size)
    device = select_device(device_name)
    if n == 1:
        return None
    # Locally started workers take ranks 0 .. n-1 on this machine; the highest must have a GPU too.
    device = ddp_device(device, world or World(rank=n - 1, size=n, local_rank=n - 1, local_size=n))
    if world is None:
        return None
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL binds each rank's communicator to the current GPU
        dist.init_process_group(backend_for(device), init_method="env://")
    return world


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's `value` on every rank (a picklable object); every rank must call it."""
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if world.size > 1:
        dist.barrier()


# ---------------------------------------------------------------------------------------------------
# Launching local workers


class _QueueTask:
    """A progress task in a worker whose events the parent replays on its own tracker."""

    def __init__(self, q: Any, key: int, description: str, total: float | None) -> None:
        self.q, self.key, self.description, self.total = q, key, description, total

    def advance(self, amount: float = 1) -> None:
        self.q.put(("advance", self.key, amount))

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self.q.put(("update", self.key, total, description))

    def __enter__(self) -> _QueueTask:
        self.q.put(("open", self.key, self.description, self.total))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.q.put(("close", self.key))


class _QueueTracker:
    def __init__(self, q: Any) -> None:
        self.q = q
        self.count = 0

    def task(self, description: str, total: float | None = None) -> Task:
        self.count += 1
        return _QueueTask(self.q, self.count, description, total)


@dataclass(frozen=True)
class _Mapped:
    """A whole-file read-only memmap sent to a worker by name, so it is mapped, not pickled (copied)."""

    filename: str
    dtype: str
    offset: int
    shape: tuple[int, ...]

    def load(self) -> np.ndarray:
        return np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)


def _portable(array: np.ndarray) -> np.ndarray | _Mapped:
    # Only a memmap that maps its file directly (its base is the mmap, not another array) has an
    # offset that locates its first element; slices of it are sent as arrays.
    if isinstance(array, np.memmap) and array.filename and isinstance(array.base, mmap.mmap):
        return _Mapped(str(array.filename), array.dtype.str, int(array.offset), tuple(array.shape))
    return array


def _local(array: np.ndarray | _Mapped) -> np.ndarray:
    return array.load() if isinstance(array, _Mapped) else array


def _worker(
    rank: int, fn: Callable[..., Any], nproc: int, port: int, backend: str, q: Any, args: tuple[Any, ...]
) -> None:
    """Entry point of local worker RANK: torchrun's variables, the process group, then `fn`."""
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    main = rank == 0
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, init_method="env://")
        try:
            out = fn(
                *(_local(a) if isinstance(a, _Mapped) else a for a in args),
                tracker=_QueueTracker(q) if main else NULL_TRACKER,
                on_step=(lambda line: q.put(("step", line))) if main else None,
            )
        finally:
            dist.destroy_process_group()
        if main:
            q.put(("result", out))
    except DatadietError as exc:
        # The parent re-raises the user-facing error itself; the exit status still stops the others.
        q.put(("error", rank, exc))
        raise


def spawn(
    fn: Callable[..., Any],
    nproc: int,
    *args: Any,
    device: torch.device | None = None,
    tracker: Tracker = NULL_TRACKER,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> Any:
    """Run `fn(*args, tracker=..., on_step=...)` in `nproc` new processes joined in one process group.

    `fn` must be importable by name (a module-level function) and its arguments picklable; memmapped
    arrays travel by file name. Rank 0 gets a tracker and `on_step` that relay to the ones given here;
    the other ranks get `NULL_TRACKER` and None. Environment as under torchrun, backend by `device`.

    Returns:
        Rank 0's return value.

    Raises:
        DatadietError: What a worker raised as a `DatadietError` (rank 0's when several did).
        torch.multiprocessing.ProcessRaisedException: Any other failure in a worker, with its traceback.
    """
    import torch.multiprocessing as tmp

    backend = backend_for(device or torch.device("cpu"))
    ctx = tmp.get_context("spawn")
    q = ctx.Queue()
    procs = tmp.start_processes(
        _worker,
        args=(
            fn,
            nproc,
            free_port(),
            backend,
            q,
            tuple(_portable(a) if isinstance(a, np.ndarray) else a for a in args),
        ),
        nprocs=nproc,
        join=False,
        start_method="spawn",
    )
    relay = _Relay(tracker, on_step)
    done = False
    try:
        with relay:
            while not done:
                relay.drain(q, POLL_S)
                done = procs.join(timeout=0)
            relay.drain(q, 0)
    except (tmp.ProcessRaisedException, tmp.ProcessExitedException) as exc:
        relay.drain(q, POLL_S)
        if relay.errors:
            raise relay.errors[min(relay.errors)] from None
        if isinstance(exc, tmp.ProcessExitedException):
            raise DatadietError(
                f"training process {exc.error_index} of {nproc} died ({exc.signal_name or f'exit {exc.exit_code}'}); "
                "check memory use, or rerun with --nproc 1"
            ) from exc
        raise
    finally:
        if not done:  # interrupted here (Ctrl-C) or a worker failed: stop the others too
            for p in procs.processes:
                if p.is_alive():
                    p.terminate()
    if not relay.has_result:
        raise DatadietError("training processes ended without a result from rank 0; rerun with --nproc 1")
    return relay.result


class _Relay:
    """Replays worker messages on the parent's tracker and `on_step`, and keeps the result and errors."""

    def __init__(self, tracker: Tracker, on_step: Callable[[dict[str, float]], None] | None) -> None:
        self.tracker, self.on_step = tracker, on_step
        self.tasks: dict[int, Task] = {}
        self.errors: dict[int, DatadietError] = {}
        self.result: Any = None
        self.has_result = False

    def drain(self, q: Any, wait: float) -> None:
        """Handle every queued message, waiting up to `wait` seconds for the first."""
        while True:
            try:
                msg = q.get(timeout=wait) if wait else q.get_nowait()
            except queue_mod.Empty:
                return
            wait = 0
            kind = msg[0]
            if kind == "open":
                self.tasks[msg[1]] = self.tracker.task(msg[2], total=msg[3]).__enter__()
            elif kind == "advance":
                self.tasks[msg[1]].advance(msg[2])
            elif kind == "update":
                self.tasks[msg[1]].update(total=msg[2], description=msg[3])
            elif kind == "close":
                self.tasks.pop(msg[1]).__exit__(None, None, None)
            elif kind == "step":
                if self.on_step is not None:
                    self.on_step(msg[1])
            elif kind == "result":
                self.result, self.has_result = msg[1], True
            elif kind == "error":
                self.errors[msg[1]] = msg[2]

    def __enter__(self) -> _Relay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self.tasks.values():
            task.__exit__(exc_type, exc, tb)
        self.tasks.clear()


# ---------------------------------------------------------------------------------------------------
# Training


def _train_worker(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    out_dir: Path,
    resume: bool,
    *,
    tracker: Tracker,
    on_step: Callable[[dict[str, float]], None] | None,
) -> TrainResult:
    from datadiet.train.trainer import train

    return train(
        model_cfg, train_cfg, train_tokens, val_tokens, out_dir, resume=resume, tracker=tracker, on_step=on_step
    )


def train_processes(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    out_dir: Path,
    *,
    nproc: int | None = None,
    resume: bool = False,
    tracker: Tracker = NULL_TRACKER,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """`datadiet.train.trainer.train` on `nproc` processes with the same global batch and result.

    Under torchrun (or when a process group is already initialised) this process is one rank and
    trains as such; otherwise `nproc` > 1 starts that many local workers and `nproc` = 1 (or None)
    trains here. Arguments and result as for `train`; the result is rank 0's.

    Raises:
        UsageError: `nproc` below 1 or not dividing the batch size, more local processes than GPUs,
            or anything `train` refuses.
        DatadietError: As `train`.
    """
    from datadiet.train.trainer import select_device, train

    if dist.is_available() and dist.is_initialized():
        world: World | None = current_world()
        if world is not None and nproc not in (None, world.size):
            raise UsageError(f"--nproc {nproc} disagrees with the {world.size} processes of the running group")
    else:
        world = prepare_processes(nproc, train_cfg.device, train_cfg.batch_size)
    if world is not None or nproc in (None, 1):  # one process, or one rank of a group someone else started
        return train(
            model_cfg, train_cfg, train_tokens, val_tokens, out_dir, resume=resume, tracker=tracker, on_step=on_step
        )
    assert nproc is not None
    result: TrainResult = spawn(
        _train_worker,
        nproc,
        model_cfg,
        train_cfg,
        train_tokens,
        val_tokens,
        Path(out_dir),
        resume,
        device=select_device(train_cfg.device),
        tracker=tracker,
        on_step=on_step,
    )
    return result
