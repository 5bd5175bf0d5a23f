"""`curate sweep --engine ray [--address …]`: the grid's unfinished runs trained as Ray tasks.

    failures = pretrain_ray(runs, address, tracker)     # runs from train.grid.plan_runs

Each task trains one group of runs in its work folder exactly as `train.grid.pretrain` does locally
(`grid.train_batch`): on a cluster with GPUs a task is an ensemble of up to `RAY_GPU_ENSEMBLE` runs
holding one GPU; on CPUs a task is one run holding one CPU and one thread (the packing that measured
fastest on CPUs, docs/benchmarks.md "Grid speed"). A task reads its token files and writes its
checkpoints at the paths the driver's store gives, so the workers must see the store's folder (a
local store on one machine or on a shared filesystem such as NFS); the driver publishes each run as
its task finishes, through `pipeline.train_run`, which finds the finished checkpoint, so ids and
files are the local sweep's. A task whose worker dies is retried by Ray (`max_retries`) and resumes from the run's
last checkpoint; a run that still fails is left to `train_run`, which resumes it locally.

Not done: stores on object storage (s3://, gs://) for training — checkpoints would have to be staged
on the store; they are refused with one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.train.grid import PlannedRun, TaskBoard, train_batch

# Runs a GPU task steps together (a `paper` run needs ~0.3 GB; 16 fill a small card's share).
RAY_GPU_ENSEMBLE = 16
# A killed worker's task is run again this many times before its runs are left to the driver.
MAX_RETRIES = 2
POLL_S = 0.5


def _task(batch: list[PlannedRun], threads: int) -> dict[str, str]:
    return train_batch(batch, threads, lambda name, line: None)


def pretrain_ray(
    runs: list[PlannedRun],
    address: str | None,
    remote_store: bool,
    tracker: Tracker = NULL_TRACKER,
    on_finished: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Train RUNS to their last step as Ray tasks; returns run name -> error for runs that did not finish.

    ON_FINISHED is called on the driver with each run's name as soon as its task has trained it (the
    sweep publishes the run there, while the other tasks go on).

    Raises:
        UsageError: The store is on object storage (workers could not reach the work folders).
    """
    if remote_store:
        raise UsageError(
            "curate sweep --engine ray trains in the store's work folders, which workers must share: "
            "use a store folder on a shared filesystem (object-storage stores work for the curation commands only)"
        )
    if not runs:
        return {}
    import ray

    from datadiet.engine.ray import connect

    connect(address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = RAY_GPU_ENSEMBLE if gpus else 1
    groups: dict[Any, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault((run.model_cfg, run.train_cfg.steps, run.start), []).append(run)
    batches = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    remote = ray.remote(max_retries=MAX_RETRIES)(_task)
    options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    pending = {remote.options(**options).remote(b, 0 if gpus else 1): b for b in batches}
    failures: dict[str, str] = {}
    with TaskBoard(tracker, runs) as board:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                batch = pending.pop(ref)
                try:
                    failures |= ray.get(ref)
                except Exception as exc:  # the task failed on every retry: leave its runs to the driver
                    failures |= {r.name: f"ray task failed: {type(exc).__name__}" for r in batch}
                for r in batch:
                    board.finish(r.name)
                    if on_finished is not None and r.name not in failures:
                        on_finished(r.name)
            if not done:
                time.sleep(0)
    return failures
