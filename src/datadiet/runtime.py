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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


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
