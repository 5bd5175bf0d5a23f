"""Crash safety of `--engine ray` (issue 8 on the issue 9 engines), and the engines on a two-node cluster.

Kill tests: `dedupe --verify`, `duplicate --near 0.1` and `stats` run with `--engine ray` as real
`curate` subprocesses that start their own local Ray cluster (no `--address`), on a local store and
on a `file:///` store (the object-storage path: workers stage parts into the remote version
folder). Each is killed with SIGKILL once, either when the first staged part appears (in the
version's temporary folder, or in its manifest-less folder on the remote) or at a seeded random
moment after it started. Then:

- Ray's processes of that driver (found by session id: the driver was started in a session of its
  own) go away: the GCS, the raylet and every worker running a task within seconds. Idle ones may
  linger: Ray's two node agents (DashboardAgent, RuntimeEnvAgent), and workers that were starting
  up or idle, notice the raylet is gone but wait for the dead GCS (up to ~60 s) before exiting.
  None can run a task any more; the test ends them itself, and one case reruns the command from
  the CLI, with a new local cluster, while they still linger.
- `curate ls` lists no new version (a kill at a random moment may come after the publication: then
  the one complete version), `curate verify` is clean, `curate gc` removes exactly the
  debris: local `.tmp/` folders, and on the remote the manifest-less version folder. A machine
  without this machine's `.uploads/` marker keeps that folder (`kept_recent_uploads`: it cannot
  tell it from an upload running elsewhere); this machine removes it at once.
- A rerun publishes the uninterrupted version: the same ref and the same manifest `files` (the same
  stored values, for `stats`) as an uninterrupted run with the local engine, which other tests show
  equals the Ray engine's. One remote case reruns before any gc: publishing clears the debris.

Two-node test: `tests/ray_multinode.py` in a process of its own (so that its driver joins only the
cluster it starts) runs every Ray command on `ray.cluster_utils.Cluster` with a head and a worker
node of one CPU each and compares each version with the local engine's.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.eval.stats.compute import TYPE_TOKEN_RATIO, UNIGRAM_ENTROPY_BITS
from datadiet.schema import MANIFEST_FILE
from datadiet.store import KINDS, STAGE_PREFIX, TMP_DIR, UPLOAD_DIR, PartWriter, Store

pytest.importorskip("ray", reason="the ray engine needs the ray extra: pip install 'datadiet[ray]' (CI installs it)")

CURATE = Path(sys.executable).parent / "curate"
TESTS = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.skipif(not CURATE.is_file(), reason=f"{CURATE} is not installed (pip install -e .)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.slow,
]

# Processes of a dead local cluster that may outlive it for a while: Ray's node agents, and workers
# still starting up (or idle) when it died, wait for the dead GCS (up to ~60 s), then exit. None of
# them can run a task: the raylet that would hand them one is gone.
IDLE = ("ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::IDLE")
# Summed in another order on a cluster: equal to ~1e-15 relative, not bit for bit.
REORDERED_SUMS = (UNIGRAM_ENTROPY_BITS, TYPE_TOKEN_RATIO)

PARTS = 8
COMMANDS = {
    "dedupe": ("datasets", "dd", ["dedupe", "docs", "--verify", "--name", "dd"]),
    "duplicate": ("datasets", "dup", ["duplicate", "docs", "--rate", "0.5", "--near", "0.1", "--name", "dup"]),
    "stats": ("stats", "docs", ["stats", "docs"]),
}


def _cli(runner: CliRunner, store: str, *args: str, cache: Path | None = None) -> Any:
    env = {"DATADIET_CACHE": str(cache)} if cache is not None else None
    result = runner.invoke(app, [*args, "--store", store, "--json"], env=env)
    assert result.exit_code == 0, f"curate {' '.join(args)}: {result.output}"
    return json.loads(result.stdout)


def _listed(runner: CliRunner, store: str, cache: Path | None) -> set[str]:
    return {r["ref"] for kind in KINDS for r in _cli(runner, store, "ls", "--kind", kind, cache=cache)}


def _values_match(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        if key in REORDERED_SUMS:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert got[key] == value, key


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local store and a `file:///` bucket, each holding `docs`: 4,000 generated stories in 8 parts.

    Eight parts make eight write tasks, so staged parts wait a while for their adoption and the
    kill "at the first staged part" finds the run mid-write (with one part, the driver renames the
    only staged file within milliseconds).
    """
    root = tmp_path_factory.mktemp("base")
    _cli(CliRunner(), str(root / "gen"), "corpus", "--stories", "4000", "--val-stories", "10", "--name", "c")
    frame = Store(root / "gen").resolve("c-train").read()

    def build(writer: PartWriter) -> None:
        for offset in range(0, frame.height, frame.height // PARTS):
            writer.write(frame.slice(offset, frame.height // PARTS))

    for store in (Store(root / "store"), Store(f"file://{root}/bucket", cache=root / "seed-cache")):
        store.commit("docs", operation="test-input", params={"parts": PARTS}, parents=[], build=build)
    return root


@pytest.fixture(scope="module")
def expected(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each command's uninterrupted result with the local engine: ref, and manifest `files` (stored values for stats)."""
    store = shutil.copytree(base / "store", tmp_path_factory.mktemp("expected") / "store")
    runner = CliRunner()
    out: dict[str, dict[str, Any]] = {}
    for label, (kind, name, args) in COMMANDS.items():
        _cli(runner, str(store), *args)
        (ref,) = (r["ref"] for r in _cli(runner, str(store), "ls", "--kind", kind) if r["name"] == name)
        version = ref.split("@")[1]
        manifest = json.loads((store / kind / name / version / MANIFEST_FILE).read_text())
        out[label] = {"ref": ref, "files": manifest["files"], "stats": manifest["stats"]}
    return out


def _session_processes(sid: int) -> list[tuple[int, str]]:
    """Live processes (pid, command) of session SID: the killed driver's Ray cluster, whatever re-parented them."""
    ps = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in ps.splitlines()]
    return [(int(r[0]), r[3]) for r in rows if len(r) == 4 and int(r[1]) == sid and not r[2].startswith("Z")]


def _is_core(command: str) -> bool:
    """The cluster itself (GCS, raylet) or a worker running a task or an actor (`ray::<name>`)."""
    exe = command.split()[0]
    return exe.endswith(("/raylet", "/gcs_server")) or (exe.startswith("ray::") and exe not in IDLE)


def _wait_for_teardown(sid: int, timeout_s: float = 20.0) -> list[tuple[int, str]]:
    """Wait until no GCS, raylet or busy worker of session SID is left; return the idle stragglers."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = _session_processes(sid)
        core = [p for p in left if _is_core(p[1])]
        if not core:
            return left
        if time.monotonic() > deadline:
            raise AssertionError(f"Ray processes of the killed driver still run after {timeout_s:.0f} s: {core}")
        time.sleep(0.2)


def _end(processes: list[tuple[int, str]]) -> None:
    for pid, _ in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _staged(folder: Path) -> bool:
    return any(f.startswith(STAGE_PREFIX) for _, _, files in os.walk(folder) for f in files)


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short Ray temp dir for the subprocess's cluster (Unix socket paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ddray-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(ray_tmp: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # start a cluster of its own
    return {**env, "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1", "RAY_TMPDIR": str(ray_tmp),
            "DATADIET_CACHE": str(cache)}  # fmt: skip


# (command, store, kill point, when to collect garbage): kill "staged" = as soon as the first staged
# part appears; a number = that many seconds after the start, seeded-random within (lo, hi).
CASES = [
    pytest.param("dedupe", "local", (2.0, 6.0), "gc-first", id="dedupe-local-random"),
    pytest.param("dedupe", "remote", "staged", "gc-first", id="dedupe-remote-staged"),
    pytest.param("duplicate", "local", "staged", "gc-first", id="duplicate-local-staged"),
    pytest.param("duplicate", "remote", "staged", "rerun-first", id="duplicate-remote-staged"),
    pytest.param("stats", "local", (4.0, 10.0), "gc-first", id="stats-local-random"),
    pytest.param("stats", "remote", (4.0, 10.0), "gc-first", id="stats-remote-random"),
]


@pytest.mark.parametrize(("label", "where", "kill_at", "order"), CASES)
def test_killed_ray_driver_leaves_the_store_as_it_was(
    ray_cluster: None,
    base: Path,
    expected: dict[str, dict[str, Any]],
    tmp_path: Path,
    ray_tmp: Path,
    runner: CliRunner,
    label: str,
    where: str,
    kill_at: str | tuple[float, float],
    order: str,
) -> None:
    kind, name, args = COMMANDS[label]
    at = random.Random(f"{label}-{where}").uniform(*kill_at) if isinstance(kill_at, tuple) else None
    sessions: list[int] = []  # the killed drivers' session ids: their stragglers are ended at the end
    try:
        for attempt in range(3):
            cache = tmp_path / f"cache{attempt}"  # $DATADIET_CACHE of this machine
            if where == "local":
                local = shutil.copytree(base / "store", tmp_path / f"store{attempt}")
                store, watch = str(local), local / TMP_DIR
            else:
                bucket = shutil.copytree(base / "bucket", tmp_path / f"bucket{attempt}")
                store, watch = f"file://{bucket}", bucket / kind / name
            before = _listed(runner, store, cache)
            # A remote store's .tmp, .locks and .uploads live in its folder of the cache.
            tmp_dir = (local if where == "local" else next(cache.iterdir())) / TMP_DIR
            proc = subprocess.Popen(
                [str(CURATE), *args, "--engine", "ray", "--store", store, "--quiet"],
                env=_env(ray_tmp, cache),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its session id names every process of its Ray cluster
            )
            sessions.append(proc.pid)
            start = time.monotonic()
            if at is None:
                while proc.poll() is None and not _staged(watch) and time.monotonic() - start < 120:
                    time.sleep(0.01)
            else:
                time.sleep(at)
            killed_after = time.monotonic() - start
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            if proc.wait(timeout=30) == -signal.SIGKILL:
                break
            # It finished first (a faster machine than this one): try again, earlier.
            assert at is not None, f"curate {label} finished before a staged part was seen"
            at /= 2
        else:
            raise AssertionError(f"curate {label} always finished before it was killed")
        # Ray tears the dead driver's cluster down: the GCS, the raylet and every busy worker go at once.
        _wait_for_teardown(proc.pid)

        # Nothing new is visible (a kill at a random moment may come after the publication: then the
        # one complete version), and every listed version is complete.
        after_kill = _listed(runner, store, cache)
        assert after_kill == before if at is None else before <= after_kill and len(after_kill - before) <= 1, (
            f"killed after {killed_after:.1f} s"
        )
        assert _cli(runner, store, "verify", cache=cache)["bad"] == []
        debris = sorted(str(p) for p in tmp_dir.iterdir()) if tmp_dir.is_dir() else []
        remote_debris: list[str] = []
        if where == "remote":
            folders = sorted(p for p in watch.iterdir()) if watch.is_dir() else []
            assert all(not (f / MANIFEST_FILE).exists() for f in folders)
            remote_debris = [f"{store}/{kind}/{name}/{f.name}" for f in folders]
            if kill_at == "staged":
                # The driver marked the upload as this machine's before any worker wrote to the remote.
                assert (
                    len(remote_debris) == 1
                    and (tmp_dir.parent / UPLOAD_DIR / f"{kind}-{name}-{folders[0].name}").exists()
                )
            # Another machine cannot tell this debris from an upload running here: it keeps it (24 h).
            other = _cli(runner, store, "gc", cache=tmp_path / "other-machine")
            assert other["removed_tmp"] == [] and other["kept_recent_uploads"] == remote_debris
            assert (sorted(watch.iterdir()) if watch.is_dir() else []) == folders  # left alone

        if order == "rerun-first":
            # No gc: publishing the rerun deletes the killed run's staged files from the version folder.
            again = _rerun(runner, store, args, cache, where, label)
            gc = _cli(runner, store, "gc", cache=cache)
            assert gc["removed_tmp"] == debris  # only this machine's local .tmp folder is left to remove
            assert gc.get("kept_recent_uploads", []) == []
        else:
            gc = _cli(runner, store, "gc", cache=cache)
            assert sorted(gc["removed_tmp"]) == sorted(debris + remote_debris)
            assert gc.get("kept_recent_uploads", []) == [] and gc["removed_versions"] == []
            if where == "remote":
                assert not watch.is_dir() or list(watch.iterdir()) == []
            again = _rerun(runner, store, args, cache, where, label)
        assert not tmp_dir.is_dir() or list(tmp_dir.iterdir()) == []

        # The rerun made exactly the uninterrupted version.
        want = expected[label]
        (ref,) = (r["ref"] for r in _cli(runner, store, "ls", "--kind", kind, cache=cache) if r["name"] == name)
        assert ref == want["ref"] and after_kill - before in (set(), {ref})
        if kind == "datasets":  # (`stats --json` shows the values, not whether they were computed now)
            assert again["up_to_date"] is (ref in after_kill)
        manifest = json.loads(_manifest_text(store, kind, ref))
        if kind == "stats":
            _values_match(manifest["stats"], want["stats"])
        else:
            assert manifest["files"] == want["files"]
        assert _listed(runner, store, cache) == before | {ref}
        assert _cli(runner, store, "verify", cache=cache)["bad"] == []
        if where == "remote":
            assert sorted(p.name for p in (watch / ref.split("@")[1]).iterdir()) == sorted(
                [*want["files"], MANIFEST_FILE]
            )
            uploads = tmp_dir.parent / UPLOAD_DIR
            assert not uploads.is_dir() or list(uploads.iterdir()) == []
    finally:
        for sid in sessions:
            _end(_session_processes(sid))  # the idle stragglers, which would exit on their own within ~60 s


def _manifest_text(store: str, kind: str, ref: str) -> str:
    name, version = ref.split("@")
    return (Path(store.removeprefix("file://")) / kind / name / version / MANIFEST_FILE).read_text()


def _rerun(
    runner: CliRunner,
    store: str,
    args: list[str],
    cache: Path,
    where: str,
    label: str,
) -> Any:
    """Rerun the command with `--engine ray`: in this process on the session's cluster, or (one case) from the CLI.

    The CLI case starts a new local cluster while the killed driver's idle processes still linger.
    """
    if label == "duplicate" and where == "local":
        with tempfile.TemporaryDirectory(prefix="ddray-", dir="/tmp") as ray_tmp:
            done = subprocess.run(
                [str(CURATE), *args, "--engine", "ray", "--store", store, "--json", "--quiet"],
                env=_env(Path(ray_tmp), cache),
                capture_output=True,
                text=True,
                timeout=120,
                start_new_session=True,
            )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return _cli(runner, store, *args, "--engine", "ray", cache=cache)


def test_two_node_cluster_equals_local_engine(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS.parent), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="ddray-", dir="/tmp") as ray_tmp:
        done = subprocess.run(
            [sys.executable, str(TESTS / "ray_multinode.py"), str(tmp_path)],
            env={**env, "RAY_TMPDIR": ray_tmp, "TOKENIZERS_PARALLELISM": "false"},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["nodes"] == 2 and report["cpus"] == 2
    assert report["worker_node_workers"] >= 1  # tasks ran on the worker node, not only beside the driver
    assert [c["command"] for c in report["commands"]] == [
        "ingest", "dedupe --verify", "duplicate --near", "subset", "stats",
    ]  # fmt: skip
    for c in report["commands"]:
        assert c["ray_ref"] == c["local_ref"], c
        assert c["same_content"] is True, c
        assert c["rows"][0] == c["rows"][1], c
        assert c["up_to_date"] is not True, c  # built on the cluster, not found already there
    assert done.returncode == 0
