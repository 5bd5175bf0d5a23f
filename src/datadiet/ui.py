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


class _ActivityTask:
    """A Task that reports into a SweepDisplay's activity line instead of drawing its own bar."""

    def __init__(self, display: SweepDisplay, description: str, total: float | None) -> None:
        self._display = display
        self.description = description
        self.total = total
        self.completed = 0.0

    def advance(self, amount: float = 1) -> None:
        self.completed += amount
        self._display.refresh()

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        self._display.refresh()

    def __enter__(self) -> _ActivityTask:
        self._display.activity.append(self)
        self._display.refresh()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self in self._display.activity:
            self._display.activity.remove(self)
        self._display.refresh()


class SweepDisplay:
    """One live view of a sweep: the size × duplication grid filling in, the current step, and ETA."""

    def __init__(
        self, console: Console, sizes: tuple[float, ...], rates: tuple[float, ...], seeds: tuple[int, ...]
    ) -> None:
        from rich.live import Live

        self.sizes, self.rates, self.seeds = sizes, rates, seeds
        self.cells: dict[tuple[float, float, int], str] = {}
        self.activity: list[_ActivityTask] = []
        self.done = 0
        self.total = 1
        self.eta: float | None = None
        self.current = ""
        self._live = Live(console=console, refresh_per_second=4, transient=False, get_renderable=self.render)

    def task(self, description: str, total: float | None = None) -> _ActivityTask:
        return _ActivityTask(self, description, total)

    def refresh(self) -> None:
        pass  # Live polls render() four times a second; nothing to push.

    def event(self, event: Any) -> None:
        node = event.node
        self.done, self.total, self.eta = event.done, event.total, event.eta_s
        self.current = node.label if node.state == "running" else ""
        if node.cell is not None:
            if node.state == "running":
                self.cells[node.cell] = "[yellow]training…[/]"
            elif node.result:
                self.cells[node.cell] = f"[green]{node.result['val_loss']:.3f}[/]"

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        grid = Table(title="validation loss (size × duplication, per seed)", caption=None)
        grid.add_column("size \\ dup")
        for r in self.rates:
            grid.add_column(f"{r:g}", justify="right")
        for s in self.sizes:
            row = []
            for r in self.rates:
                row.append(" / ".join(self.cells.get((s, r, seed), "[dim]·[/]") for seed in self.seeds))
            grid.add_row(f"{s:g}", *row)
        lines: list[Any] = [grid]
        eta = f", about {self.eta / 60:.1f} min left" if self.eta is not None else ""
        lines.append(f"[bold]{self.done}/{self.total}[/] steps done{eta}")
        if self.current:
            lines.append(f"now: {self.current}")
        for t in self.activity[-2:]:
            total = f"/{t.total:,.0f}" if t.total else ""
            lines.append(f"  {t.description} {t.completed:,.0f}{total}")
        return Group(*lines)

    def __enter__(self) -> SweepDisplay:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()
