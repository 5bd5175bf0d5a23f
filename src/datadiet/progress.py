"""Progress reporting that library code can use without depending on a terminal.

Library functions take a `Tracker`; the CLI passes one that draws rich progress bars
(`datadiet.ui`), tests and scripts get `NULL_TRACKER`, which does nothing. This is the
null-object pattern, so no library code branches on whether progress is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def step_status(line: Mapping[str, float], last_val: float | None = None) -> str:
    """One training step's metrics line as a short status: loss, validation loss, lr, tokens/s."""
    parts = [f"loss {line['train_loss']:.4f}"] if "train_loss" in line else []
    val = line.get("val_loss", last_val)
    if val is not None:
        parts.append(f"val {val:.4f}")
    if "lr" in line:
        parts.append(f"lr {line['lr']:.2e}")
    if "tokens_per_s" in line:
        parts.append(f"{line['tokens_per_s']:,.0f} tok/s")
    return " · ".join(parts)


class _StatusTask:
    def __init__(self, owner: StepStatusTracker, inner: Task, description: str) -> None:
        self._owner, self._inner, self.description = owner, inner, description

    def advance(self, amount: float = 1) -> None:
        self._inner.advance(amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if description is not None:
            self.description = description
        self._inner.update(total=total, description=description)

    def __enter__(self) -> _StatusTask:
        self._inner.__enter__()
        self._owner._open.append(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self in self._owner._open:
            self._owner._open.remove(self)
        self._inner.__exit__(exc_type, exc, tb)


class StepStatusTracker:
    """A tracker that shows each training step's metrics beside the task that is running.

    The trainer reports steps through `on_step(line)` and progress through a task; this joins the
    two, so every display (rich bar, plain log lines, the sweep's grid, a DDP worker's relay) shows
    "Training · loss 3.2100 · val 3.3000 · lr 1.00e-03 · 12,345 tok/s" with its own step count and ETA.

    Args:
        inner: The tracker that draws.
        on_step: Also called with every step's line (e.g. the caller's own callback).
    """

    def __init__(self, inner: Tracker, on_step: Callable[[dict[str, float]], None] | None = None) -> None:
        self._inner, self._on_step = inner, on_step
        self._open: list[_StatusTask] = []
        self._last_val: float | None = None

    def task(self, description: str, total: float | None = None) -> Task:
        return _StatusTask(self, self._inner.task(description, total=total), description)

    def on_step(self, line: dict[str, float]) -> None:
        if "val_loss" in line:
            self._last_val = line["val_loss"]
        if self._open:
            task = self._open[-1]
            base = task.description.split(" · ", 1)[0]
            task.update(description=f"{base} · {step_status(line, self._last_val)}")
        if self._on_step is not None:
            self._on_step(line)
