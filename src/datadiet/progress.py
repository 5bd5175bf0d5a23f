"""Progress reporting that library code can use without depending on a terminal.

Library functions take a `Tracker`; the CLI passes one that draws rich progress bars
(`datadiet.ui`), tests and scripts get `NULL_TRACKER`, which does nothing. This is the
null-object pattern, so no library code branches on whether progress is shown.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol


class Task(Protocol):
    """One progress bar."""

    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...

    def __enter__(self) -> Task: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Tracker(Protocol):
    """Creates progress tasks; `task(...)` is used as a context manager."""

    def task(self, description: str, total: float | None = None) -> Task: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass

    def __enter__(self) -> _NullTask:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class NullTracker:
    """A tracker that shows nothing."""

    def task(self, description: str, total: float | None = None) -> Task:
        return _NullTask()


NULL_TRACKER: Tracker = NullTracker()
