"""Terminal rendering: the only module (with cli/) that imports rich.

`RichTracker` implements `datadiet.progress.Tracker` with rich progress bars on stderr, so stdout
stays clean for `--json`; it is used when stderr is a terminal. Elsewhere (CI, `| tee`, a log file)
`LineTracker` prints plain timestamped lines on stderr at a steady pace. `--quiet` shows neither.

Printed data is data: every console the CLI prints on is a `SafeConsole`, which never reads markup
in a string (a document holding `[/]` or `[link=…]` prints as written) and shows every terminal
control character of a string as a visible escape (`\\x1b`), so no byte of a dataset, a path or a
ref can move the cursor, retitle the window or plant a hyperlink. Styled output is built with
`styled("[bold]{}[/] …", data, …)`, which escapes the data it is given.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
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
from rich.style import Style
from rich.text import Text

from datadiet.progress import NULL_TRACKER, Tracker

# C0 controls but tab and newline (CR too: it lets a line overwrite itself), DEL, the C1 controls
# (0x9b is an 8-bit CSI on some terminals), and the bidirectional overrides/isolates that reorder
# what is shown ("Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, *, newlines: bool = True) -> str:
    """VALUE as text whose control characters are shown as escapes (`\\x1b`) instead of being sent.

    Args:
        value: Anything; it is turned into `str` first.
        newlines: Keep newlines (a document's text); False shows them as `\\x0a` too (one-line output).
    """
    return (_CONTROL if newlines else _CONTROL_OR_NEWLINE).sub(_visible, str(value))


def safe(value: object) -> str:
    """VALUE cleaned (see `clean`) and with rich markup escaped, to interpolate into a markup template."""
    text = escape(clean(value))
    # A trailing backslash would escape the template's next tag ("…\\[/]"): double it.
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def styled(template: str, *data: object, style: str | Style = "") -> Text:
    """TEMPLATE (our own markup, e.g. `"[bold]{}[/] — {} rows"`) with each `{}` filled by DATA, escaped."""
    return Text.from_markup(template.format(*(safe(d) for d in data)), style=style)


def text(value: object, style: str | Style = "") -> Text:
    """VALUE as a rich `Text` (never read as markup), control characters shown as escapes."""
    return Text(clean(value), style=style)


class SafeConsole(Console):
    """A rich console that prints strings as written: no markup, no emoji codes, no control characters.

    Markup is off, so a string is never parsed as markup (`Table` cells, titles and `Tree` labels
    included); control characters in any string it renders are shown as escapes. Style with
    `styled(...)` or `Text`; a `Panel` title must be a `Text` (rich parses a string title as markup).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs["markup"] = False
        return super().render_str(clean(text), **kwargs)


# JSON escapes C0 controls itself; these it would pass through raw with ensure_ascii=False.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(payload: Any) -> str:
    """PAYLOAD as indented JSON that keeps UTF-8 text readable but carries no raw control character.

    Scripts and terminals read `--json` output too (`curate head x --json | less`); DEL, the C1
    controls and the bidirectional overrides become `\\u` escapes, which decode to the same data.
    """
    import json

    raw = json.dumps(payload, indent=2, default=str, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", raw)


def renderable(value: RenderableType) -> RenderableType:
    """VALUE, with a plain string turned into a cleaned `Text` (for containers that parse strings)."""
    return text(value) if isinstance(value, str) else value


class _RichTask:
    def __init__(self, progress: Progress, owner: RichTracker, description: str, total: float | None) -> None:
        self._progress = progress
        self._owner = owner
        self._id: TaskID = progress.add_task(clean(description, newlines=False), total=total)

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = clean(description, newlines=False)
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
            TextColumn("{task.description}", style="progress.description", markup=False),
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


# Off a terminal (CI, `| tee`, a log file) a long task prints a line this often, so a log never goes
# silent for long; a task that ends sooner than MIN_AGE_S prints nothing, so quick commands stay clean.
LINE_INTERVAL_S = 10.0
MIN_AGE_S = 2.0
# $DATADIET_PROGRESS_EVERY=SECONDS sets the interval (e.g. 60 for a quieter CI log).
PROGRESS_ENV = "DATADIET_PROGRESS_EVERY"
# ... and also at each 10% of a task with a known total, but never two lines within MIN_GAP_S.
LINE_FRACTION = 0.1
MIN_GAP_S = 1.0


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class _LineTask:
    def __init__(self, owner: LineTracker, description: str, total: float | None) -> None:
        self._owner = owner
        self.description = description
        self.total = total
        self.completed = 0.0
        self.started = 0.0
        self.printed = 0
        self.decile = 0  # the last tenth of the total a line was printed for

    def advance(self, amount: float = 1) -> None:
        with self._owner._lock:
            self.completed += amount
        self._owner._maybe_print(self)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        with self._owner._lock:
            if total is not None:
                self.total = total
            if description is not None:
                self.description = description

    def line(self, now: float, done: bool = False) -> str:
        elapsed = now - self.started
        if self.total:
            frac = min(1.0, self.completed / self.total)
            count = f"{self.completed:,.0f}/{self.total:,.0f} ({frac:.0%})"
            eta = ""
            if not done and 0 < self.completed < self.total:
                eta = f", ETA {_duration(elapsed / self.completed * (self.total - self.completed))}"
            progress = f"{count}, {_duration(elapsed)} elapsed{eta}"
        else:
            count = f"{self.completed:,.0f} done, " if self.completed else ""
            progress = f"{count}{_duration(elapsed)} elapsed"
        return f"{self.description}: {'done, ' if done else ''}{progress}"

    def __enter__(self) -> _LineTask:
        self._owner._open(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._owner._close(self, ok=exc_type is None)


class LineTracker:
    """Plain progress lines for logs: what runs, how far, elapsed and ETA, at a steady pace.

    A background thread wakes every half second while a task is open and prints the innermost
    task's line when LINE_INTERVAL_S have passed since the last line, so even a step that never
    advances (training a tokenizer, a global shuffle) shows it is alive. A task with a total also
    prints at each 10% it crosses. A task that printed anything prints a last "done" line.

    Args:
        write: Where lines go (default: stderr, looked up at each write).
        interval: Seconds between heartbeat lines.
        min_age: A task younger than this prints nothing.
        clock: Monotonic time source (tests pass a fake).
    """

    def __init__(
        self,
        write: Callable[[str], Any] | None = None,
        interval: float = LINE_INTERVAL_S,
        min_age: float = MIN_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = True,
    ) -> None:
        self._write = write
        self.interval, self.min_age, self._clock = interval, min_age, clock
        self._heartbeat = heartbeat
        self._tasks: list[_LineTask] = []
        self._last_line = 0.0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def task(self, description: str, total: float | None = None) -> _LineTask:
        return _LineTask(self, description, total)

    def _emit(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        # One line whatever the description holds (it may carry a dataset name): no control characters.
        clean = "".join(ch if ch.isprintable() else " " for ch in text)
        if self._write is not None:
            self._write(f"[{stamp}] {clean}")
        else:
            sys.stderr.write(f"[{stamp}] {clean}\n")
            sys.stderr.flush()
        self._last_line = self._clock()

    def _maybe_print(self, task: _LineTask) -> None:
        with self._lock:
            now = self._clock()
            if now - task.started < self.min_age:
                return
            since = now - self._last_line
            decile = int(10 * task.completed / task.total) if task.total else 0
            if since >= self.interval or (decile > task.decile and since >= MIN_GAP_S):
                task.decile = max(task.decile, decile)
                task.printed += 1
                self._emit(task.line(now))

    def tick(self) -> None:
        """Print the innermost open task's line if the log has been quiet for `interval` seconds."""
        with self._lock:
            if self._tasks:
                now = self._clock()
                task = self._tasks[-1]
                if now - task.started >= self.min_age and now - self._last_line >= self.interval:
                    task.printed += 1
                    self._emit(task.line(now))

    def event(self, event: Any) -> None:
        """A sweep's step finished (`run_sweep`'s on_event): one line with the steps done and the ETA."""
        node = event.node
        if node.state != "built":
            return  # only steps computed now; those found in the store are counted, not listed
        result = f" (val loss {node.result['val_loss']:.4f})" if node.result.get("val_loss") is not None else ""
        eta = f", about {_duration(event.eta_s)} left" if event.eta_s is not None else ""
        with self._lock:
            self._emit(
                f"sweep step {event.done}/{event.total}: {node.label}{result} in {_duration(node.seconds)}{eta}"
            )

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.tick()

    def _open(self, task: _LineTask) -> None:
        with self._lock:
            task.started = self._clock()
            if not self._tasks:
                self._last_line = max(self._last_line, task.started)
            self._tasks.append(task)
            if self._heartbeat and self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="datadiet-progress", daemon=True)
                self._thread.start()

    def _close(self, task: _LineTask, ok: bool) -> None:
        with self._lock:
            if task in self._tasks:
                self._tasks.remove(task)
            if task.printed and ok:
                self._emit(task.line(self._clock(), done=True))
            thread = self._thread if not self._tasks else None
            if thread is not None:
                self._thread = None
                self._stop.set()
        if thread is not None:
            thread.join()


def make_tracker(quiet: bool, console: Console | None = None) -> Tracker:
    """Progress on stderr: rich bars on a terminal, plain periodic lines elsewhere, nothing when quiet."""
    if quiet:
        return NULL_TRACKER
    err = console or SafeConsole(stderr=True)
    if not sys.stderr.isatty() or not err.is_terminal:
        every = os.environ.get(PROGRESS_ENV)
        try:
            interval = float(every) if every else LINE_INTERVAL_S
        except ValueError:
            interval = LINE_INTERVAL_S
        interval = interval if interval > 0 else LINE_INTERVAL_S
        return LineTracker(interval=interval, min_age=min(MIN_AGE_S, interval))
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
        self.cells: dict[tuple[float, float, int], Text] = {}
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
                self.cells[node.cell] = Text("training…", style="yellow")
            elif node.result:
                self.cells[node.cell] = Text(f"{node.result['val_loss']:.3f}", style="green")

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        grid = Table(title="validation loss (size × duplication, per seed)", caption=None)
        grid.add_column("size \\ dup")
        for r in self.rates:
            grid.add_column(f"{r:g}", justify="right")
        for s in self.sizes:
            row: list[Text] = []
            for r in self.rates:
                row.append(
                    Text(" / ").join(self.cells.get((s, r, seed), Text("·", style="dim")) for seed in self.seeds)
                )
            grid.add_row(f"{s:g}", *row)
        lines: list[Any] = [grid]
        eta = f", about {self.eta / 60:.1f} min left" if self.eta is not None else ""
        lines.append(styled("[bold]{}/{}[/] steps done{}", self.done, self.total, eta))
        if self.current:
            lines.append(text(f"now: {self.current}"))
        for t in self.activity[-2:]:
            total = f"/{t.total:,.0f}" if t.total else ""
            lines.append(text(f"  {t.description} {t.completed:,.0f}{total}"))
        return Group(*lines)

    def __enter__(self) -> SweepDisplay:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()
