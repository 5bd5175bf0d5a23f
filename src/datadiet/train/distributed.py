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

The world one process belongs to and the collectives the training loop uses are `ddp.py`.
"""

from __future__ import annotations

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

from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Task, Tracker
from datadiet.runtime import tie_to_parent

if TYPE_CHECKING:
    from datadiet.train.config import TrainConfig
    from datadiet.train.model import GPTConfig
    from datadiet.train.trainer import TrainResult
from datadiet.train.ddp import World, backend_for, check_nproc, current_world, ddp_device

# Seconds the parent waits on the workers' message queue per poll: short enough that the progress
# display keeps up with tiny models (~10 ms steps), long enough not to spin a core.
POLL_S = 0.05


TORCHRUN_VARS = ("RANK", "WORLD_SIZE")


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
    from datadiet.train.device import select_device

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
    rank: int,
    fn: Callable[..., Any],
    nproc: int,
    port: int,
    backend: str,
    q: Any,
    args: tuple[Any, ...],
    parent_pid: int,
) -> None:
    """Entry point of local worker RANK: torchrun's variables, the process group, then `fn`."""
    tie_to_parent(parent_pid)  # a killed `curate train` must not leave its ranks training on
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
            os.getpid(),
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
    from datadiet.train.device import select_device
    from datadiet.train.trainer import train

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
