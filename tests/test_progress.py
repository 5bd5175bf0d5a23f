"""Progress off a terminal (`LineTracker`), the training status line, and a long command piped into a file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.progress import NULL_TRACKER, StepStatusTracker, step_status
from datadiet.ui import LineTracker, RichTracker, make_tracker
from tests.helpers import cli


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _tracker(clock: Clock) -> tuple[LineTracker, list[str]]:
    lines: list[str] = []
    return LineTracker(write=lines.append, interval=10, min_age=2, clock=clock, heartbeat=False), lines


def test_a_quick_task_prints_nothing() -> None:
    clock = Clock()
    tracker, lines = _tracker(clock)
    with tracker.task("Hashing", total=100) as task:
        for _ in range(100):
            task.advance(1)
            clock.t += 0.01  # one second in all: under min_age
    assert lines == []


def test_lines_at_each_tenth_and_a_done_line() -> None:
    clock = Clock()
    tracker, lines = _tracker(clock)
    with tracker.task("Ingesting", total=1000) as task:
        for _ in range(1000):
            clock.t += 0.05  # 50 s in all
            task.advance(1)
    # Past min_age (2 s = 4%) a line at each decile from 10% to 100%, then the done line.
    assert len(lines) == 11
    percents = [int(m.group(1)) for line in lines[:-1] if (m := re.search(r"\((\d+)%\)", line))]
    assert percents == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] Ingesting: 100/1,000 \(10%\), 5s elapsed, ETA 45s", lines[0])
    assert "done, 1,000/1,000 (100%), 50s elapsed" in lines[-1] and "ETA" not in lines[-1]


def test_heartbeat_keeps_a_silent_step_visible() -> None:
    clock = Clock()
    tracker, lines = _tracker(clock)
    with tracker.task("Training tokenizer on ts", total=None):
        for _ in range(35):
            clock.t += 1
            tracker.tick()  # what the background thread does twice a second
    assert [line.split("] ", 1)[1] for line in lines] == [
        "Training tokenizer on ts: 10s elapsed",
        "Training tokenizer on ts: 20s elapsed",
        "Training tokenizer on ts: 30s elapsed",
        "Training tokenizer on ts: done, 35s elapsed",
    ]


def test_heartbeat_thread_prints_and_stops() -> None:
    lines: list[str] = []
    tracker = LineTracker(write=lines.append, interval=0.2, min_age=0)
    import time

    with tracker.task("Waiting", total=None):
        time.sleep(1.3)
    assert 3 <= len(lines) <= 8 and lines[-1].endswith("elapsed") and "done" in lines[-1]
    assert tracker._thread is None


def test_control_characters_never_reach_the_log() -> None:
    clock = Clock()
    tracker, lines = _tracker(clock)
    with tracker.task("Reading evil\x1b[2J\nname", total=None):
        clock.t += 11
        tracker.tick()
    assert "\x1b" not in lines[0] and "\n" not in lines[0]


def test_training_status_joins_steps_and_the_task() -> None:
    clock = Clock()
    inner, lines = _tracker(clock)
    seen: list[dict[str, float]] = []
    status = StepStatusTracker(inner, seen.append)
    with status.task("Training", total=4) as task:
        for step in range(1, 5):
            clock.t += 3
            task.advance(1)
            line = {"step": step, "train_loss": 3.0 / step, "lr": 1e-3, "tokens_per_s": 12345.0}
            if step == 2:
                line["val_loss"] = 2.5
            status.on_step(line)
    assert len(seen) == 4
    assert lines[-1].split("] ", 1)[1] == (
        "Training · loss 0.7500 · val 2.5000 · lr 1.00e-03 · 12,345 tok/s: done, 4/4 (100%), 12s elapsed"
    )
    assert "ETA" in lines[1]
    assert step_status({"train_loss": 1.0}) == "loss 1.0000"


def test_make_tracker_modes() -> None:
    assert make_tracker(True) is NULL_TRACKER
    # Under pytest stderr is captured, not a terminal: plain lines.
    assert isinstance(make_tracker(False), LineTracker)
    assert RichTracker  # on a terminal (checked by hand): rich bars


def test_training_off_a_terminal_prints_progress_lines(
    runner: CliRunner, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long command off a terminal (CliRunner's stderr is not one, like a file or a pipe) is not silent."""
    monkeypatch.setenv("DATADIET_PROGRESS_EVERY", "0.3")  # several lines even for a short run on a fast machine
    cli(runner, "corpus", "--stories", "200", "--val-stories", "20", "--name", "c", "-q")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300", "-q")
    result = runner.invoke(
        app, ["train", "c-train", "--val", "c-val", "--steps", "60", "--set", "threads=1", "--json"]
    )
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout is still only the JSON
    training = [line for line in result.stderr.splitlines() if "Training · loss" in line]
    assert training, result.stderr
    assert all(re.search(r"lr \d\.\d\de-\d\d · [\d,]+ tok/s: (done, )?\d+/60 \(\d+%\)", line) for line in training)
    assert "done, 60/60 (100%)" in training[-1]
