"""`--engine ray` on a Ray cluster of two nodes: every command gives the local engine's version.

Invoked by `tests/test_reliability_ray.py::test_two_node_cluster_equals_local_engine` as
`python tests/ray_multinode.py WORKDIR` (a process of its own, so that its driver joins only the
cluster it starts here, never the test session's). It starts `ray.cluster_utils.Cluster` — a head
node and one worker node on this machine, one CPU each, so tasks must spread over both — and runs
`ingest`, `dedupe --verify`, `duplicate --near`, `subset` (of the Ray duplicate's parts) and
`stats` through the CLI with `--engine ray --address <head>` on a `file:///` store (the object
storage code path), and the same commands with the local engine on a local store. It prints one
JSON report on stdout: per command the two refs and whether the manifests' `files` (the stored
values, for `stats`) are equal, plus the nodes that ran the work; the exit code is 0 when every
command matched.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.eval.stats.compute import TYPE_TOKEN_RATIO, UNIGRAM_ENTROPY_BITS

# The corpus: big enough for several slices per command and some near duplicates, small enough
# that the whole comparison takes well under a minute on 2 cores.
STORIES = 2000


def _cli(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--json", "--quiet"])
    if result.exit_code != 0:
        raise SystemExit(f"curate {' '.join(args)} failed ({result.exit_code}): {result.output}")
    return json.loads(result.stdout)


def _manifest(root: Path, ref: str, kind: str) -> dict[str, Any]:
    name, version = ref.split("@")
    data: dict[str, Any] = json.loads((root / kind / name / version / "manifest.json").read_text())
    return data


def _same_stats(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal values; the two float sums taken in another order on a cluster agree to 1e-12 relative."""
    if sorted(a) != sorted(b):
        return False
    for key, value in a.items():
        if key in (UNIGRAM_ENTROPY_BITS, TYPE_TOKEN_RATIO):
            if not math.isclose(value, b[key], rel_tol=1e-12, abs_tol=0.0):
                return False
        elif value != b[key]:
            return False
    return True


def _worker_pids(raylet_pid: int) -> list[int]:
    """Processes the raylet of one node started (its workers and agents)."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 2) for line in ps.splitlines()]
    return [int(r[0]) for r in rows if len(r) == 3 and int(r[1]) == raylet_pid and "Agent" not in r[2]]


def main(work: Path) -> int:
    import ray
    from ray.cluster_utils import Cluster

    local_root = work / "local"
    bucket = work / "bucket"
    uri = f"file://{bucket}"
    os.environ["DATADIET_CACHE"] = str(work / "cache")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    runner = CliRunner()
    report: dict[str, Any] = {"commands": []}
    start = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        report["cluster_start_s"] = round(time.monotonic() - start, 1)
        for store in (str(local_root), uri):
            _cli(runner, "corpus", "--stories", str(STORIES), "--val-stories", "50", "--name", "c", "--store", store)
        _cli(runner, "export", "c-train", str(work / "stories.txt"), "--store", str(local_root))
        ray_opts = ["--engine", "ray", "--address", cluster.address]
        # (label, kind, args): the Ray run of each must equal the local run of the same args.
        commands = [
            ("ingest", "datasets", ["ingest", str(work / "stories.txt"), "--name", "ing"]),
            ("dedupe --verify", "datasets", ["dedupe", "c-train", "--verify", "--name", "dd"]),
            ("duplicate --near", "datasets", ["duplicate", "c-train", "--rate", "0.5", "--near", "0.1", "-n", "dup"]),
            ("subset", "datasets", ["subset", "dup", "--fraction", "0.5", "--name", "sub"]),
            ("stats", "stats", ["stats", "dd"]),
        ]
        for label, kind, args in commands:
            t0 = time.monotonic()
            a = _cli(runner, *args, "--store", str(local_root))
            t1 = time.monotonic()
            b = _cli(runner, *args, *ray_opts, "--store", uri)
            t2 = time.monotonic()
            if kind == "stats":  # `stats --json` names the dataset; the stats version is the one of its name
                a["ref"], b["ref"] = (
                    _cli(runner, "ls", "--kind", "stats", "--store", s)[0]["ref"] for s in (str(local_root), uri)
                )
            ma, mb = _manifest(local_root, a["ref"], kind), _manifest(bucket, b["ref"], kind)
            same = _same_stats(ma["stats"], mb["stats"]) if kind == "stats" else ma["files"] == mb["files"]
            report["commands"].append(
                {
                    "command": label,
                    "local_ref": a["ref"],
                    "ray_ref": b["ref"],
                    "rows": [ma["rows"], mb["rows"]],
                    "same_content": same,
                    "up_to_date": b.get("up_to_date"),
                    "seconds": [round(t1 - t0, 2), round(t2 - t1, 2)],
                }
            )
        alive = [n for n in ray.nodes() if n["Alive"]]
        report["nodes"] = len(alive)
        report["cpus"] = ray.cluster_resources().get("CPU", 0)
        # Work reached the worker node: its raylet started worker processes (the driver is on the head).
        report["worker_node_workers"] = len(_worker_pids(worker.all_processes["raylet"][0].process.pid))
    finally:
        ray.shutdown()  # the driver leaves first: Cluster refuses to remove the node it is connected to
        cluster.shutdown()
    report["seconds"] = round(time.monotonic() - start, 1)
    ok = all(c["same_content"] and c["local_ref"] == c["ray_ref"] for c in report["commands"])
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
