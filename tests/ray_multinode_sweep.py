"""`curate sweep --engine ray --address <head>` on a Ray cluster of two nodes gives the local sweep.

Invoked by `tests/test_sweep_ray.py::test_two_node_sweep_with_a_lost_worker_equals_local_sweep` as
`python tests/ray_multinode_sweep.py WORKDIR STORE_KIND [KILL_STEP]` (a process of its own, so that its driver
joins only the cluster it starts here, never the test session's). It starts
`ray.cluster_utils.Cluster` — a head node and one worker node on this machine, one CPU each, so the
runs' one-CPU tasks must spread over both — and runs a tiny grid (preset `tiny`, 3 runs of
`STEPS` steps) through the CLI twice: with the local engine on a local store, and with
`--engine ray --address <head>` on a store of STORE_KIND: `folder` (a folder every node sees) or
`uri` (a `file:///` URI: the object-storage code path, where tasks stage token files and
checkpoints through the store, never the driver's cache). The nodes' workers get a cache of their
own (`$DATADIET_CACHE` set before the cluster starts, changed for the driver after), as on a real
cluster. With KILL_STEP, the Ray sweep runs with the test-only fault of `train.grid_ray`
(`DATADIET_TEST_KILL_WORKER`): the first task to finish that step kills its worker process, once;
Ray retries the task, which resumes from the run's last checkpoint (on the store, for `uri`).

It prints one JSON report on stdout: both sweeps' refs, run refs and report rows (timing columns
left out), the largest relative difference between their metrics, the nodes alive and the node
each run trained on (`curate sweep --json`'s `ray` field). `ray stop` is never used: it would end
every Ray process of the user on the machine; `Cluster.shutdown` ends the ones started here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from datadiet.cli import app

STEPS = 8
# Columns of a report row that measure speed, not results.
TIMING = ("tokens_per_s", "wall_time_s")


def _cli(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--json", "--quiet"])
    if result.exit_code != 0:
        raise SystemExit(f"curate {' '.join(args)} failed ({result.exit_code}): {result.output}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise SystemExit(f"curate {' '.join(args)} printed no JSON: {result.stdout[:2000]}") from None


def sweep_args(store: str) -> list[str]:
    """The grid both sweeps run: one size, three duplication rates, `tiny` for STEPS steps, one thread a run."""
    return [
        "sweep", "--base", "c-train", "--val", "c-val", "--sizes", "1", "--rates", "0,0.5,1",
        "--preset", "tiny", "--steps", str(STEPS), "--vocab", "300", "--set", "threads=1", "--store", store,
    ]  # fmt: skip


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in r.items() if k not in TIMING} for r in payload["runs"]), key=lambda r: r["run"])


def max_rel_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """The largest relative difference between two row lists' float values (inf when anything else differs)."""
    worst = 0.0
    if len(a) != len(b):
        return math.inf
    for ra, rb in zip(a, b, strict=True):
        if sorted(ra) != sorted(rb):
            return math.inf
        for k, va in ra.items():
            vb = rb[k]
            if isinstance(va, float) and isinstance(vb, float):
                worst = max(worst, abs(va - vb) / max(abs(va), 1e-300)) if va != vb else worst
            elif va != vb:
                return math.inf
    return worst


def main(work: Path, store_kind: str, kill_step: int | None = None) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from datadiet.train.grid_ray import KILL_ENV

    local_store = str(work / "local")
    ray_store = f"file://{work / 'bucket'}" if store_kind == "uri" else str(work / "shared")
    os.environ["DATADIET_CACHE"] = str(work / "worker-cache")  # the nodes' workers inherit this one
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    runner = CliRunner()
    report: dict[str, Any] = {"store": store_kind}
    start = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        os.environ["DATADIET_CACHE"] = str(work / "driver-cache")
        report["cluster_start_s"] = round(time.monotonic() - start, 1)
        for store in (local_store, ray_store):
            _cli(runner, "corpus", "--stories", "300", "--val-stories", "60", "--name", "c", "--store", store)
        t0 = time.monotonic()
        local = _cli(runner, *sweep_args(local_store))
        t1 = time.monotonic()
        if kill_step is not None:  # read by the driver, which hands it to the tasks
            os.environ[KILL_ENV] = f"{kill_step}:{work / 'killed'}"
        on_ray = _cli(runner, *sweep_args(ray_store), "--engine", "ray", "--address", cluster.address)
        t2 = time.monotonic()
        report["seconds"] = {"local": round(t1 - t0, 1), "ray": round(t2 - t1, 1)}
        report["refs"] = [local["ref"], on_ray["ref"]]
        report["runs"] = [sorted(r["run"] for r in p["runs"]) for p in (local, on_ray)]
        report["same_rows"] = rows(local) == rows(on_ray)
        report["max_rel_diff"] = max_rel_diff(rows(local), rows(on_ray))
        report["placement"] = on_ray.get("ray")
        report["killed"] = (work / "killed").exists()
        report["killed_node"] = (work / "killed").read_text() if report["killed"] else None
        report["alive_nodes"] = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        report["worker_cache_tokens"] = sorted(p.name for p in (work / "worker-cache").rglob("*.bin"))
        bucket_work = work / "bucket" / "work" / "runs"
        report["store_work_left"] = sorted(p.name for p in bucket_work.iterdir()) if bucket_work.is_dir() else []
    finally:
        ray.shutdown()  # the driver leaves first: Cluster refuses to remove the node it is connected to
        cluster.shutdown()
    report["total_s"] = round(time.monotonic() - start, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None))
