"""Worker processes never outlive their command (issue 16, item 14): real processes, real signals.

`curate dedupe` (signing workers) and `curate train --nproc 2` (DDP ranks) run as subprocesses; once
their workers are up, the command is killed with SIGKILL or SIGTERM, which runs none of its
clean-up. Every process it had started (workers and multiprocessing's resource tracker) must be
gone within seconds. Linux only (/proc).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadiet.cli import app

CURATE = Path(sys.executable).parent / "curate"
PROC = Path("/proc")
GONE_WITHIN_S = 10.0

pytestmark = [
    pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="needs /proc (Linux)"),
    pytest.mark.skipif(not CURATE.is_file(), reason=f"{CURATE} is not installed (pip install -e .)"),
]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has ended)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(root: int) -> dict[int, str]:
    """Every live process below ROOT, with its command line."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                with contextlib.suppress(OSError):
                    found[child] = (PROC / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                frontier.append(child)
    return found


def _kill_when_workers_up(
    args: list[str], sig: signal.Signals, workers: int, marker: str, ready: Path | None = None
) -> dict[int, str]:
    """Start `curate ARGS`; once WORKERS descendants whose command line holds MARKER run, send SIG to it.

    Returns the descendants it had at that moment.
    """
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1"}
    with subprocess.Popen([str(CURATE), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) as proc:
        return _watch_and_kill(proc, args, sig, workers, marker, ready)


def _watch_and_kill(
    proc: subprocess.Popen[bytes], args: list[str], sig: signal.Signals, workers: int, marker: str, ready: Path | None
) -> dict[int, str]:
    existing = set(ready.iterdir()) if ready is not None and ready.is_dir() else set()
    try:
        deadline = time.monotonic() + 120
        while True:
            kids = _descendants(proc.pid)
            # READY (a folder the workers make once running): past their start-up, where a worker
            # still importing torch finishes that before it can notice its parent is gone.
            up = ready is None or (ready.is_dir() and bool(set(ready.iterdir()) - existing))
            if sum(marker in cmd for cmd in kids.values()) >= workers and up:
                break
            assert proc.poll() is None, (
                f"curate {' '.join(args)} ended before its workers started: {proc.stderr.read()!r}"
            )  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.05)
        time.sleep(0.3)  # let the rest (the resource tracker, the other ranks) appear too
        kids = _descendants(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        return kids
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_all_gone(kids: dict[int, str]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline and any(_alive(p) for p in kids):
        time.sleep(0.1)
    left = {p: cmd for p, cmd in kids.items() if _alive(p)}
    for pid in left:  # do not leave them running on the test machine either
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running {GONE_WITHIN_S:.0f} s after their parent died: {left}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 24,000 short documents: enough for dedupe to sign in worker processes."""
    root = tmp_path_factory.mktemp("workers")
    words = [
        "the",
        "cat",
        "dog",
        "sat",
        "ran",
        "on",
        "a",
        "mat",
        "hill",
        "sun",
        "moon",
        "tree",
        "river",
        "stone",
        "bird",
        "sang",
    ]
    lines = []
    for i in range(24_000):
        doc = " ".join(words[(i * k + k) % len(words)] for k in range(1, 25))
        lines.append(f"{doc} number {i}\n<|endoftext|>\n")
    (root / "docs.txt").write_text("".join(lines))
    runner = CliRunner()
    for args in (
        ["ingest", str(root / "docs.txt"), "-n", "docs"],
        ["corpus", "--stories", "300", "-n", "c"],
        ["tokenizer", "train", "c-train", "--vocab", "300"],
    ):
        result = runner.invoke(app, [*args, "--store", str(root / "store")])
        assert result.exit_code == 0, result.output
    return root / "store"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_dedupe_workers_die_with_the_command(store: Path, sig: signal.Signals) -> None:
    args = ["dedupe", "docs", "-n", f"d{int(sig)}", "--workers", "2", "--store", str(store)]
    kids = _kill_when_workers_up(args, sig, workers=1, marker="spawn_main")
    assert any("spawn_main" in cmd for cmd in kids.values())
    _assert_all_gone(kids)


@pytest.mark.slow
def test_ddp_ranks_die_with_the_command(store: Path) -> None:
    args = ["train", "c-train", "--val", "c-val", "--preset", "tiny", "--steps", "2000", "--nproc", "2"]
    args += ["--set", "threads=1", "--store", str(store)]
    kids = _kill_when_workers_up(args, signal.SIGKILL, workers=2, marker="spawn_main", ready=store / "work" / "runs")
    _assert_all_gone(kids)


@pytest.mark.slow
def test_sweep_grid_workers_die_with_the_command(store: Path) -> None:
    args = ["sweep", "--base", "c-train", "--val", "c-val", "--preset", "tiny", "--steps", "3000", "--vocab", "300"]
    args += ["--sizes", "1", "--rates", "0,1", "--parallel", "2", "--name", "k", "--store", str(store)]
    kids = _kill_when_workers_up(args, signal.SIGKILL, workers=2, marker="spawn_main", ready=store / "work" / "runs")
    _assert_all_gone(kids)
