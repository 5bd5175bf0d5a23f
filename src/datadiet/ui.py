"""Terminal rendering: the only module (with cli/) that imports rich.

`RichTracker` implements `datadiet.progress.Tracker` with rich progress bars on stderr, so stdout
stays clean for `--json`. Bars are shown only when stderr is a terminal and `--quiet` is off.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from datadiet.progress import NULL_TRACKER, Tracker


class _RichTask:
    def __init__(self, progress: Progress, owner: RichTracker, description: str, total: float | None) -> None:
        self._progress = progress
        self._owner = owner
        self._id: TaskID = progress.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._progress.update(self._id, **kwargs)

    def __enter__(self) -> _RichTask:
        self._owner._open(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.remove_task(self._id)
        self._owner._close(self)


class RichTracker:
    """Progress bars that appear while at least one task is open and vanish when all are done."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._open_tasks = 0

    def task(self, description: str, total: float | None = None) -> _RichTask:
        return _RichTask(self._progress, self, description, total)

    def _open(self, task: _RichTask) -> None:
        if self._open_tasks == 0:
            self._progress.start()
        self._open_tasks += 1

    def _close(self, task: _RichTask) -> None:
        self._open_tasks -= 1
        if self._open_tasks == 0:
            self._progress.stop()


def make_tracker(quiet: bool, console: Console | None = None) -> Tracker:
    """A rich tracker on stderr when it is a terminal and not quiet; otherwise the null tracker."""
    err = console or Console(stderr=True)
    if quiet or not sys.stderr.isatty() or not err.is_terminal:
        return NULL_TRACKER
    return RichTracker(err)
