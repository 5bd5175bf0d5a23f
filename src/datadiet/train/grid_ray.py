"""`curate sweep --engine ray [--address …]`: the grid's unfinished runs trained as Ray tasks.

    outcome = pretrain_ray(store, runs, address, tracker, on_finished=publish)   # runs: train.grid.plan_runs

Each task trains one group of runs exactly as `train.grid.pretrain` does locally (`grid.train_batch`):
on a cluster with GPUs a task is an ensemble of up to `RAY_GPU_ENSEMBLE` runs holding one GPU; on
CPUs a task is one run holding one CPU and one thread (the packing that measured fastest on CPUs,
docs/benchmarks.md "Grid speed"). The driver publishes each run as its task lands, through
`pipeline.train_run`, which finds the finished checkpoint, so ids and files are the local sweep's.

Where the runs' files live:

- **A store folder** (local, or on a filesystem every node mounts at the same path, such as NFS):
  a task reads the token files and writes checkpoints in the run's work folder at the paths the
  driver gives.
- **A store on object storage** (`s3://`, `gs://`, `hdfs://`, `file:///`): as for the curation
  commands, workers reach the store itself, never the driver's cache. A task downloads the token
  files from their published versions (checked against the manifests' sha256) into its machine's
  cache (`$DATADIET_CACHE/<store>/ray-tasks/`), trains in a local folder, and after every
  checkpoint uploads `metrics.jsonl`, then `checkpoint.pt`, to the run's durable work folder on the
  store (`<store>/work/runs/<name>-<version>/`, each file replaced whole). When the task lands the
  driver downloads that folder into its own cache's work folder, publishes the run and deletes it.

A task whose worker dies (a killed process, a lost node) is retried by Ray (`MAX_RETRIES`) and
resumes from the run's last checkpoint — in the shared folder, or the one on the store, so a retry
on another node resumes too. A run that still fails is left to `train_run`, which resumes it locally.
Each task reports the node it ran on and the step it started from; the sweep records both.

Test-only fault injection: with `DATADIET_TEST_KILL_WORKER=STEP:MARKER` in the driver's environment,
the first task to finish step STEP of a run creates the file MARKER and kills its own worker process
(SIGKILL), once per MARKER. Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Remote, Store, cache_root, first_line
from datadiet.train.checkpoint import CHECKPOINT_FILE, METRICS_FILE
from datadiet.train.grid import PlannedRun, TaskBoard, train_batch

# Runs a GPU task steps together (a `paper` run needs ~0.3 GB; 16 fill a small card's share).
RAY_GPU_ENSEMBLE = 16
# A killed worker's task is run again this many times before its runs are left to the driver.
MAX_RETRIES = 2
POLL_S = 0.5
# Test-only (see the module docstring): "STEP:MARKER" kills the first task to reach STEP, once.
KILL_ENV = "DATADIET_TEST_KILL_WORKER"
# A task's folders in its machine's cache of a remote store: token files by sha256, runs' work folders.
TASK_DIR = "ray-tasks"
WORK_PARTS = ("work", "runs")  # a run's durable work folder on a remote store, beside the kinds


@dataclass(frozen=True)
class RemoteFiles:
    """Where one run's files are on a store on object storage, for a task on any node (pickles small).

    Attributes:
        remote: The store's backend (its pyarrow filesystem travels with it).
        train_tokens: (path parts, sha256) of the published training token file.
        val_tokens: (path parts, sha256) of the validation token file.
        work: Path parts of the run's durable work folder.
    """

    remote: Remote
    train_tokens: tuple[tuple[str, ...], str]
    val_tokens: tuple[tuple[str, ...], str]
    work: tuple[str, ...]


@dataclass
class RayOutcome:
    """What the tasks did: runs that did not finish, and per run where it trained.

    Attributes:
        failures: Run name -> error message.
        placement: Run name -> {"node": the Ray node id, "start_step": the step its last (successful)
            attempt started from}: above the planned start, the run resumed after a lost worker.
    """

    failures: dict[str, str] = field(default_factory=dict)
    placement: dict[str, dict[str, Any]] = field(default_factory=dict)


def _kill_switch(spec: str | None) -> Callable[[dict[str, float]], None]:
    """The test-only fault (see `KILL_ENV`); a no-op unless SPEC is given."""
    if not spec:
        return lambda line: None
    step_text, sep, marker = spec.partition(":")
    if not sep or not step_text.isdigit() or not marker:
        raise UsageError(f"${KILL_ENV} must be STEP:MARKER_FILE (a test-only fault), not {spec!r}")

    def kill(line: dict[str, float]) -> None:
        if line.get("step", 0) < int(step_text):
            return
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # fired once already
        # The node the killed attempt ran on: a test of placement must count it, since the retry (and
        # the runs after it) may all land on the other node.
        os.write(fd, _node_id().encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    return kill


def _node_id() -> str:
    """This Ray worker's node id ("" outside a Ray task)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except ImportError:
        return ""


def _checkpoint_step(work: Path) -> int:
    from datadiet.train.checkpoint import checkpoint_path, load_checkpoint

    ckpt = checkpoint_path(work)
    return int(load_checkpoint(ckpt)["step"]) if ckpt.exists() else 0


class _Staging:
    """A task's side of a remote store: token files and work folders in, new checkpoints out."""

    def __init__(self, files: dict[str, RemoteFiles]) -> None:
        self.files = files
        first = next(iter(files.values()))
        self.root = cache_root(first.remote.uri, None) / TASK_DIR
        self.synced: dict[str, int] = {}  # run name -> mtime_ns of the checkpoint last uploaded
        self.work: dict[str, Path] = {}

    def stage_in(self, run: PlannedRun) -> PlannedRun:
        """RUN with local token files and a fresh local work folder holding the store's checkpoint, if any."""
        f = self.files[run.name]
        tokens = self.root / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        local = []
        for (parts, digest), (_, dtype) in ((f.train_tokens, run.train_tokens), (f.val_tokens, run.val_tokens)):
            dest = tokens / f"{digest}.bin"
            if not dest.exists():  # content-addressed: a file another task of this machine fetched is the same
                f.remote.download(parts, dest, digest)
            local.append((str(dest), dtype))
        work = self.root / "work" / run.work.name
        shutil.rmtree(work, ignore_errors=True)  # a dead attempt's folder: the store's copy is the truth
        work.mkdir(parents=True)
        for name in (METRICS_FILE, CHECKPOINT_FILE):
            f.remote.get((*f.work, name), work / name)
        if (work / CHECKPOINT_FILE).exists():
            self.synced[run.name] = (work / CHECKPOINT_FILE).stat().st_mtime_ns
        self.work[run.name] = work
        # No tokenizer path: the driver's is not on this machine, so `train_run` evaluates each run
        # on the driver instead of an ensemble's batched final evaluation here (GPU tasks only).
        return replace(run, train_tokens=local[0], val_tokens=local[1], work=work, tokenizer="")

    def sync(self, name: str) -> None:
        """Upload run NAME's checkpoint if it changed: metrics first, so a resume never lacks a line it keeps."""
        ckpt = self.work[name] / CHECKPOINT_FILE
        if not ckpt.exists() or self.synced.get(name) == ckpt.stat().st_mtime_ns:
            return
        mtime = ckpt.stat().st_mtime_ns
        f = self.files[name]
        f.remote.put(self.work[name] / METRICS_FILE, (*f.work, METRICS_FILE))
        f.remote.put(ckpt, (*f.work, CHECKPOINT_FILE))
        self.synced[name] = mtime

    def clean(self) -> None:
        for work in self.work.values():
            shutil.rmtree(work, ignore_errors=True)


def _task(
    batch: list[PlannedRun], threads: int, files: dict[str, RemoteFiles] | None, kill_spec: str | None
) -> dict[str, Any]:
    import ray

    staging = _Staging(files) if files else None
    kill = _kill_switch(kill_spec)
    try:
        if staging is not None:
            batch = [staging.stage_in(r) for r in batch]
        starts = {r.name: _checkpoint_step(r.work) for r in batch}

        def on_line(name: str, line: dict[str, float]) -> None:
            if staging is not None:
                staging.sync(name)  # before a fault: the checkpoint of this step is on the store
            kill(line)

        failures = train_batch(batch, threads, on_line)
        if staging is not None:
            for r in batch:
                staging.sync(r.name)
    finally:
        if staging is not None:
            staging.clean()
    return {"failures": failures, "node": ray.get_runtime_context().get_node_id(), "starts": starts}


def remote_files(store: Store, runs: Sequence[PlannedRun]) -> dict[str, RemoteFiles]:
    """Where each run's files are on STORE's remote (empty for a store folder)."""
    from datadiet.train.pipeline import TOKENS_FILE

    remote = store.remote
    if remote is None:
        return {}

    def published(path: str) -> tuple[tuple[str, ...], str]:
        kind, name, version, rel = Path(path).relative_to(store.root).parts
        ds = store.resolve(f"{name}@{version}", kind)
        return (kind, name, version, rel), ds.manifest.files[TOKENS_FILE]

    return {
        r.name: RemoteFiles(
            remote, published(r.train_tokens[0]), published(r.val_tokens[0]), (*WORK_PARTS, r.work.name)
        )
        for r in runs
    }


def _seed_remote(files: RemoteFiles, work: Path) -> None:
    """Upload a checkpoint the driver holds (a run interrupted here) when the store has none, so tasks resume it."""
    from datadiet.store import is_file

    ckpt = work / CHECKPOINT_FILE
    if ckpt.exists() and not is_file(files.remote.info(*files.work, CHECKPOINT_FILE)):
        if (work / METRICS_FILE).exists():
            files.remote.put(work / METRICS_FILE, (*files.work, METRICS_FILE))
        files.remote.put(ckpt, (*files.work, CHECKPOINT_FILE))


def _fetch_work(files: RemoteFiles, work: Path) -> None:
    """The run's durable work folder into the driver's work folder (where `train_run` finds it)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, CHECKPOINT_FILE):
        files.remote.get((*files.work, name), work / name)


def pretrain_ray(
    store: Store,
    runs: list[PlannedRun],
    address: str | None,
    tracker: Tracker = NULL_TRACKER,
    on_finished: Callable[[str], None] | None = None,
) -> RayOutcome:
    """Train RUNS to their last step as Ray tasks.

    ON_FINISHED is called on the driver with each run's name as soon as its task has trained it (the
    sweep publishes the run there, while the other tasks go on).

    Raises:
        UsageError: `$DATADIET_TEST_KILL_WORKER` is set but malformed.
    """
    kill_spec = os.environ.get(KILL_ENV) or None
    _kill_switch(kill_spec)  # a malformed value fails here, not in every task
    if not runs:
        return RayOutcome()
    import ray

    from datadiet.engine.ray import connect

    connect(address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = RAY_GPU_ENSEMBLE if gpus else 1
    groups: dict[Any, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault((run.model_cfg, run.train_cfg.steps, run.start), []).append(run)
    batches = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    files = remote_files(store, runs)
    for run in runs:
        if run.name in files:
            _seed_remote(files[run.name], run.work)
    remote = ray.remote(max_retries=MAX_RETRIES)(_task)
    options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    pending = {}
    for b in batches:
        mine = {r.name: files[r.name] for r in b} if files else None
        pending[remote.options(**options).remote(b, 0 if gpus else 1, mine, kill_spec)] = b
    outcome = RayOutcome()
    with TaskBoard(tracker, runs) as board:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                _landed(ref, pending.pop(ref), files, outcome, board, on_finished)
            if not done:
                time.sleep(0)
    return outcome


def _landed(
    ref: Any,
    batch: list[PlannedRun],
    files: dict[str, RemoteFiles],
    outcome: RayOutcome,
    board: TaskBoard,
    on_finished: Callable[[str], None] | None,
) -> None:
    """A task ended: record where it ran, bring a remote store's work folders here, publish its finished runs."""
    import ray

    try:
        result = ray.get(ref)
        outcome.failures |= result["failures"]
        for r in batch:
            outcome.placement[r.name] = {"node": result["node"], "start_step": result["starts"][r.name]}
    except Exception as exc:  # the task failed on every retry: leave its runs to the driver
        cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's own exception
        outcome.failures |= {r.name: f"ray task failed: {first_line(cause, 300)}" for r in batch}
    for r in batch:
        if r.name in files:
            _fetch_work(files[r.name], r.work)  # finished or not: the driver resumes a failed run from it
        board.finish(r.name)
        if on_finished is not None and r.name not in outcome.failures:
            on_finished(r.name)
        if r.name in files:
            files[r.name].remote.delete(files[r.name].work, folder=True)
