"""What the machine gives a run: how many cores this process may use, how rows are cut among
workers, and per-stage wall times.

    workers = cpu_count()                 # the cores this process may use (affinity-aware)
    timer = Timer()
    with timer.stage("sign"):
        ...
    manifest_stats["seconds"] = timer.seconds
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity where the OS has one (Linux), else every core.

    The one worker-count rule of the package: signing, near-copy editing, statistics and torch's
    threads all start from it. `os.sched_getaffinity` does not exist on macOS or Windows.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - not Linux


def cut_slices(rows: Sequence[int], workers: int) -> list[tuple[int, int, int, int]]:
    """Cut parts of ROWS rows each into slices for WORKERS: (part index, offset, length, global start).

    One function for the local engine and the Ray engines, so both sign the same slices.
    """
    # At least two slices per worker so one slow slice does not leave a core idle for long; a
    # part is one row group, so each slice re-decodes its part (~0.3 s per 200k stories).
    target = max(10_000, math.ceil(sum(rows) / (2 * max(workers, 1))))
    out: list[tuple[int, int, int, int]] = []
    start = 0
    for i, n in enumerate(rows):
        pieces = max(1, math.ceil(n / target))
        size = math.ceil(n / pieces) if n else 0
        out.extend((i, off, min(size, n - off), start + off) for off in range(0, n, max(size, 1)))
        start += n
    return out


class Timer:
    """Wall seconds per named stage, summed over repeats and rounded to ms (a manifest's `seconds`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


# -- worker processes end with their parent --------------------------------------------------------

# prctl(2) option: the signal the kernel sends this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
# Where prctl is missing (macOS), a watchdog thread checks the parent this often: "within seconds".
_WATCHDOG_S = 1.0


def tie_to_parent(parent_pid: int) -> None:
    """End this worker process as soon as PARENT_PID, the process that started it, dies.

    Called first in every worker (`worker_pool`'s initializer, each DDP rank). A `kill -9` or
    `kill -TERM` of the parent runs none of its clean-up, and a spawned worker would otherwise wait
    forever on a queue nobody will write, keeping multiprocessing's resource tracker alive with it.
    On Linux the kernel sends SIGKILL the moment the parent dies (prctl PR_SET_PDEATHSIG; the
    parent here is the process, since datadiet starts workers from its main thread); elsewhere a
    daemon thread polls the parent id every second. A parent already gone ends the worker now.
    """
    import sys
    import threading

    bound = False
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            bound = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            bound = False
    if os.getppid() != parent_pid:  # it died before we were bound (we were re-parented)
        os._exit(1)
    if not bound:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="datadiet-parent").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_WATCHDOG_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _start_worker(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    tie_to_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of WORKERS spawned processes that end when this process dies, however it dies.

    Spawned, not forked: polars' thread pool is already running in this process, and forking a
    multithreaded process can deadlock the child. INITIALIZER(*INITARGS) runs in each worker
    after it is tied to this process (`tie_to_parent`).
    """
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
