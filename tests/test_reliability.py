"""Crash safety and concurrency of the store, through the real `curate` command (issue 8).

Commands run as subprocesses on a corpus big enough that they take about a second, and are killed
with SIGKILL at random moments (some while the version's temporary folder is being written, some
at any time at all). After each kill: `curate verify` passes, `curate ls` lists only complete
versions, `curate gc` removes exactly the debris, and rerunning the command completes it. Two
writers at once — on one version or on different ones — both end correctly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.schema import MANIFEST_FILE
from datadiet.store import KINDS, LOCK_DIR, TMP_DIR

# No `python -m datadiet.cli` (there is no __main__); the console script sits beside the interpreter.
CURATE = Path(sys.executable).parent / "curate"

pytestmark = pytest.mark.skipif(not CURATE.is_file(), reason=f"{CURATE} is not installed (pip install -e .)")


def _env() -> dict[str, str]:
    # One BPE thread and no progress bars: the timing of a kill should not depend on the machine's load more than it must.
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1"}


def _cli(runner: CliRunner, store: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--store", str(store), "--json"])
    assert result.exit_code == 0, f"curate {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a 4,000-story corpus (c-train, c-val), and that corpus as a text file beside it."""
    root = tmp_path_factory.mktemp("base")
    store = root / "store"
    runner = CliRunner()
    _cli(runner, store, "corpus", "--stories", "4000", "--val-stories", "200", "--name", "c")
    _cli(runner, store, "export", "c-train", str(root / "stories.txt"))
    # Four copies (16,000 documents, ~14 MB) so that ingest, too, spends a good part of a second writing.
    text = (root / "stories.txt").read_bytes()
    (root / "stories.txt").write_bytes(text * 4)
    return root


def _fresh(base: Path, dest: Path) -> Path:
    shutil.copytree(base / "store", dest)
    return dest


def _listed(runner: CliRunner, store: Path) -> set[str]:
    return {r["ref"] for kind in KINDS for r in _cli(runner, store, "ls", "--kind", kind)}


def _check_valid(runner: CliRunner, store: Path) -> set[str]:
    """`curate verify` passes and every listed version is a complete folder; returns the listed refs."""
    report = _cli(runner, store, "verify")
    assert report["bad"] == []
    refs = _listed(runner, store)
    for kind in KINDS:
        for r in _cli(runner, store, "ls", "--kind", kind):
            path = store / kind / r["name"] / r["version"]
            assert (path / MANIFEST_FILE).is_file()
            assert json.loads((path / MANIFEST_FILE).read_text())["rows"] == r["rows"]
    return refs


def _writing(store: Path) -> bool:
    tmp = store / TMP_DIR
    return tmp.is_dir() and any(tmp.iterdir())


def _calibrate(args: list[str], store: Path) -> tuple[float, float, str]:
    """Run `curate ARGS` to the end: (seconds until its temporary folder appeared, total seconds, ref)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(CURATE), *args, "--store", str(store), "--json", "--quiet"], env=_env(), stdout=subprocess.PIPE, text=True
    )
    seen = None
    while proc.poll() is None:
        if seen is None and _writing(store):
            seen = time.monotonic() - start
        time.sleep(0.002)
    total = time.monotonic() - start
    out, _ = proc.communicate()
    assert proc.returncode == 0
    return (seen if seen is not None else total), total, json.loads(out)["ref"]


def _kill_at_random(args: list[str], store: Path, at: float) -> bool:
    """Start `curate ARGS` and SIGKILL it AT seconds later; True if it was killed before it finished."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(CURATE), *args, "--store", str(store), "--quiet"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so worker processes die with it
    )
    try:
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        killed = proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # orphaned workers of the process we started
    return killed


# (name, args) — each writes one new version of the base corpus (or of the stories file).
COMMANDS: list[tuple[str, list[str]]] = [
    ("ingest", ["ingest", "{base}/stories.txt", "--name", "ingested"]),
    ("dedupe", ["dedupe", "c-train", "--name", "deduped"]),
    ("duplicate", ["duplicate", "c-train", "--rate", "0.5", "--near", "0.1", "--name", "duplicated"]),
    ("subset", ["subset", "c-train", "--fraction", "0.5", "--name", "half"]),
    ("tokenizer", ["tokenizer", "train", "c-train", "--vocab", "512"]),
]
# Two kills per command always (one while writing, one anywhere); six more in the slow run.
SEED_SETS = [
    pytest.param(range(2), id="2-seeds"),
    pytest.param(range(2, 8), id="6-more-seeds", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("seeds", SEED_SETS)
@pytest.mark.parametrize(("label", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_kill_at_random_points_then_verify_gc_and_rerun(
    base: Path, tmp_path: Path, runner: CliRunner, label: str, args: list[str], seeds: range
) -> None:
    args = [a.replace("{base}", str(base)) for a in args]
    start = _listed(runner, base / "store")
    # One whole run first: when the version starts being written, how long it all takes, and what it makes.
    t_write, t_total, expected = _calibrate(args, _fresh(base, tmp_path / "whole"))
    made: set[str] = set()
    kills = 0
    for seed in seeds:
        rng = random.Random(f"{label}-{seed}")
        # Even seeds: while the version is being written; odd seeds: at any moment at all.
        lo = t_write if seed % 2 == 0 else 0.0
        at = rng.uniform(lo, t_total)
        for attempt in range(3):
            store = _fresh(base, tmp_path / f"s{seed}-{attempt}")
            if _kill_at_random(args, store, at):
                kills += 1
                break
            at = lo + (at - lo) / 2  # this run was faster than the calibration (a busy machine): earlier
        after_kill = _check_valid(runner, store)
        # At most the one version the command makes is new (if the kill came after its publication).
        assert start <= after_kill and len(after_kill - start) <= 1
        # Whatever the kill left is only ever in .tmp, and gc removes exactly that.
        debris = sorted(str(p) for p in (store / TMP_DIR).iterdir()) if (store / TMP_DIR).is_dir() else []
        gc = _cli(runner, store, "gc")
        assert sorted(gc["removed_tmp"]) == debris and gc["removed_versions"] == []
        assert not (store / TMP_DIR).is_dir() or list((store / TMP_DIR).iterdir()) == []
        # The rerun completes it (or finds the version the killed run had already published).
        again = _cli(runner, store, *args)
        assert after_kill - start in (set(), {again["ref"]})
        assert again["up_to_date"] == (again["ref"] in after_kill)
        made.add(again["ref"])
        assert _check_valid(runner, store) == start | {again["ref"]}
        assert _cli(runner, store, "verify", again["ref"])["bad"] == []
    # Content addressing: every rerun, whatever was killed before it, made the same version.
    assert made == {expected}
    assert kills >= 1, "the command always finished before the kill; make the corpus larger"


def test_gc_never_removes_a_live_writers_folder(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    store = _fresh(base, tmp_path / "s")
    key = "datasets-half-0123456789abcdef"
    live = store / TMP_DIR / f"{key}-{os.getpid()}-deadbeef"
    dead = store / TMP_DIR / "datasets-gone-fedcba9876543210-1-cafef00d"
    for folder in (live, dead):
        folder.mkdir(parents=True)
        (folder / "part-00000.parquet").write_bytes(b"half a part")
    (store / LOCK_DIR).mkdir(exist_ok=True)
    # Hold the version lock as a live writer does (a separate open file description, as another process would).
    fd = os.open(store / LOCK_DIR / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        gc = _cli(runner, store, "gc")
        assert gc["removed_tmp"] == [str(dead)]
        assert (live / "part-00000.parquet").read_bytes() == b"half a part" and not dead.exists()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert _cli(runner, store, "gc")["removed_tmp"] == [str(live)]
    assert list((store / TMP_DIR).iterdir()) == []


def test_gc_while_a_real_writer_runs(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    store = _fresh(base, tmp_path / "s")
    proc = subprocess.Popen(
        [str(CURATE), "dedupe", "c-train", "--name", "deduped", "--store", str(store), "--json", "--quiet"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tmp = store / TMP_DIR
    deadline = time.monotonic() + 30
    while proc.poll() is None and not (tmp.is_dir() and any(tmp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.002)
    removed = []
    while proc.poll() is None:  # collect garbage over and over while the writer writes
        removed += _cli(runner, store, "gc")["removed_tmp"]
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert removed == []
    made = json.loads(out)
    assert made["up_to_date"] is False and made["rows"] == _cli(runner, store, "show", made["ref"])["rows"]
    assert _cli(runner, store, "verify")["bad"] == []


def _start(store: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CURATE), *args, "--store", str(store), "--json", "--quiet"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    return json.loads(out)


def test_two_writers_of_the_same_version(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    store = _fresh(base, tmp_path / "s")
    before = _listed(runner, store)
    procs = [_start(store, "dedupe", "c-train", "--name", "deduped") for _ in range(2)]
    a, b = (_finish(p) for p in procs)
    assert a["ref"] == b["ref"] and a["rows"] == b["rows"]
    # One built it; the other waited on the lock and found it (or started after it was published).
    assert sorted([a["up_to_date"], b["up_to_date"]]) == [False, True]
    assert _listed(runner, store) == before | {a["ref"]}
    assert len(list((store / "datasets" / "deduped").iterdir())) == 1
    assert _cli(runner, store, "verify")["bad"] == []
    assert _cli(runner, store, "gc")["removed_tmp"] == []


def test_two_writers_of_different_versions(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    store = _fresh(base, tmp_path / "s")
    before = _listed(runner, store)
    procs = [
        _start(store, "subset", "c-train", "--fraction", "0.5", "--name", "part"),
        _start(store, "subset", "c-train", "--fraction", "0.25", "--name", "part"),
        _start(store, "ingest", str(base / "stories.txt"), "--name", "part"),
    ]
    made = [_finish(p) for p in procs]
    assert [m["up_to_date"] for m in made] == [False, False, False]
    assert [m["rows"] for m in made] == [2000, 1000, 16000]
    assert _listed(runner, store) == before | {m["ref"] for m in made}
    assert _cli(runner, store, "verify")["bad"] == []
    # The newest of the three is what `part` resolves to; all three stay addressable.
    assert _cli(runner, store, "show", "part")["ref"] in {m["ref"] for m in made}
    for m in made:
        assert _cli(runner, store, "show", m["ref"])["rows"] == m["rows"]


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_result(base: Path, tmp_path: Path, runner: CliRunner) -> None:
    store = _fresh(base, tmp_path / "s")
    _cli(runner, store, "subset", "c-train", "--docs", "1000", "--name", "t")
    _cli(runner, store, "tokenizer", "train", "t", "--vocab", "512")
    args = ["train", "t", "--val", "c-val", "--steps", "120", "--set", "threads=1", "--set", "checkpoint_every=10"]
    reference = shutil.copytree(store, tmp_path / "ref")
    proc = subprocess.Popen(
        [str(CURATE), *args, "--store", str(store), "--quiet"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once it has written a checkpoint past step 10, i.e. in the middle of training.
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        metrics = list((store / "work" / "runs").glob("*/metrics.jsonl")) if (store / "work").is_dir() else []
        if metrics and len(metrics[0].read_text().splitlines()) >= 25:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.kill()
    proc.wait(timeout=30)
    assert _cli(runner, store, "verify")["bad"] == []
    assert _cli(runner, store, "ls", "--kind", "runs") == []
    checkpoint = next((store / "work" / "runs").glob("*/checkpoint.pt"))
    assert checkpoint.is_file()
    resumed = _cli(runner, store, *args, "--resume")
    whole = _cli(runner, reference, *args)
    assert resumed["ref"] == whole["ref"] and resumed["up_to_date"] is False
    assert resumed["stats"]["metrics"] == whole["stats"]["metrics"]
    assert resumed["stats"]["train"]["train_loss"] == whole["stats"]["train"]["train_loss"]
    assert resumed["stats"]["train"]["steps"] == 120
    assert _cli(runner, store, "verify")["bad"] == []
    assert not any((store / "work" / "runs").iterdir())  # the private work folder is cleaned up


@pytest.mark.slow
def test_killed_sweep_reruns_only_what_is_missing(tmp_path: Path, runner: CliRunner) -> None:
    store = tmp_path / "s"
    _cli(runner, store, "corpus", "--stories", "400", "--val-stories", "60", "--name", "k")
    args = [
        "sweep", "--base", "k-train", "--val", "k-val", "--sizes", "0.5,1", "--rates", "0,1", "--preset", "tiny",
        "--steps", "10", "--vocab", "300", "--set", "threads=1", "--name", "ks",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [str(CURATE), *args, "--store", str(store), "--quiet"], env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # Kill it with SIGKILL once the first training run is published: some steps done, others not.
    deadline = time.monotonic() + 240
    while not any((store / "runs").glob("*/*/manifest.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = {r: _cli(runner, store, "show", r)["created"] for r in _check_valid(runner, store)}
    plan = _cli(runner, store, *args, "--dry-run")
    todo = {n["key"] for n in plan["nodes"] if n["state"] != "done"}
    assert todo and any(k.startswith("run:") for k in todo)
    _cli(runner, store, "gc")
    done = _cli(runner, store, *args)
    assert len(done["runs"]) == 4
    after = _check_valid(runner, store)
    # Everything that existed before the rerun is untouched (same creation time): only missing steps ran.
    assert {r: _cli(runner, store, "show", r)["created"] for r in before} == before
    assert all(n["state"] == "done" for n in _cli(runner, store, *args, "--dry-run")["nodes"])
    assert len(after - set(before)) >= len(todo)
