"""`curate sweep --engine ray`: the runs trained as Ray tasks give the local sweep's runs and sweep.

- On the session's local 2-CPU Ray cluster (`ray_cluster` fixture) with a store folder: a task's
  worker is killed mid-run (the test-only `DATADIET_TEST_KILL_WORKER` fault); Ray retries the
  task, it resumes from the run's last checkpoint, and the sweep equals the local one.
- On a two-node cluster (`tests/ray_multinode_sweep.py` in a process of its own): the same through
  the CLI with `--address <head>` on a `file:///` store (the object-storage path: token files and
  checkpoints go through the store), runs on both nodes, one worker killed.

Needs the `ray` extra (installed in CI); skipped with that message without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from datadiet.curate.corpus.op import CorpusConfig, write_corpus
from datadiet.errors import UsageError
from datadiet.store import Store
from datadiet.sweep import SweepConfig, run_sweep
from datadiet.train.grid_ray import KILL_ENV, pretrain_ray

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

TESTS = Path(__file__).resolve().parent
STEPS = 10
KILL_STEP = 5  # tiny's checkpoints at --steps 10: every round(50 * 10 / 150) = 3 steps, so a resume from 3


def _sweep(tmp: Path, name: str, **kw: object) -> tuple[Store, object]:
    store = Store(tmp / name)
    train, val = write_corpus(store, CorpusConfig(stories=300, val_stories=60, seed=5), "c")
    cfg = SweepConfig(
        base=train.dataset.ref,
        val=val.dataset.ref,
        sizes=(1.0,),
        rates=(0.0, 1.0),
        preset="tiny",
        steps=STEPS,
        vocab=300,
        overrides=(("threads", "1"),),
    )
    return store, run_sweep(store, cfg, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_ray_sweep_with_a_lost_worker_equals_local(
    tmp_path: Path, ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_store, local = _sweep(tmp_path, "local", parallel=1)
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, f"{KILL_STEP}:{marker}")
    ray_store, on_ray = _sweep(tmp_path, "ray", engine="ray")
    assert marker.exists()  # a worker was killed
    assert on_ray.dataset.ref == local.dataset.ref  # type: ignore[attr-defined]
    runs = {r.ref: r.manifest.stats["metrics"] for r in local_store.all("runs")}
    assert sorted(r.ref for r in ray_store.all("runs")) == sorted(runs)
    for run in ray_store.all("runs"):
        for k, v in runs[run.ref].items():
            want = v if isinstance(v, str) or v is None else pytest.approx(v, rel=1e-6)  # eval_dtype: a name
            assert run.manifest.stats["metrics"][k] == want, k
        curve = [json.loads(x) for x in run.file("metrics.jsonl").read_text().splitlines()]
        assert [line["step"] for line in curve] == list(range(1, STEPS + 1))  # no step lost or logged twice
    placement = on_ray.dataset.manifest.stats["ray"]  # type: ignore[attr-defined]
    assert sorted(placement["runs"]) == sorted(runs)
    # Resumed, not restarted: the killed run's retry started from its checkpoint at step 3.
    assert sorted(p["start_step"] for p in placement["runs"].values()) == [0, 3]
    assert not (ray_store.root / "work" / "runs").exists() or not any((ray_store.root / "work" / "runs").iterdir())


@pytest.mark.slow
def test_two_node_sweep_with_a_lost_worker_equals_local_sweep(tmp_path: Path) -> None:
    pytest.importorskip(
        "ray", reason="the ray engine needs the ray extra: pip install 'datadiet[ray]' (CI installs it)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", KILL_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS.parent), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="ddray-", dir="/tmp") as ray_tmp:
        proc = subprocess.Popen(
            [sys.executable, str(TESTS / "ray_multinode_sweep.py"), str(tmp_path), "uri", "5"],
            env={**env, "RAY_TMPDIR": ray_tmp, "TOKENIZERS_PARALLELISM": "false"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its cluster's processes with it, so a timeout can end them all
        )
        try:
            # ~1.5 min on 2 quiet cores; 7.5 min at load 17 (docs/scaling.md)
            stdout, stderr = proc.communicate(timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # nothing left when it ended cleanly
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["refs"][0] == report["refs"][1]  # the same sweep id
    assert report["runs"][0] == report["runs"][1] and len(report["runs"][0]) == 3  # the same run ids
    assert report["same_rows"] is True, report["max_rel_diff"]  # the same report rows, metrics included
    placement = report["placement"]
    assert sorted(placement["runs"]) == report["runs"][0]
    # Tasks ran on both nodes: each node holds one CPU, so the first two one-CPU tasks start on different
    # nodes. The killed attempt counts: its retry and the third run may both land on the other node.
    assert len(report["alive_nodes"]) == 2 and report["killed"] is True
    finished_on = {p["node"] for p in placement["runs"].values()}
    assert finished_on <= set(report["alive_nodes"])
    assert finished_on | {report["killed_node"]} == set(report["alive_nodes"])
    # The killed run resumed from its checkpoint on the store (tiny at 8 steps: every 3 steps).
    assert sorted(p["start_step"] for p in placement["runs"].values()) == [0, 0, 3]
    assert len(report["worker_cache_tokens"]) == 4  # workers fetched train and val tokens from the store
    assert report["store_work_left"] == []  # each run's work folder on the store removed once published


def test_ray_sweep_kill_switch_is_inert_unless_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from datadiet.train.grid_ray import _kill_switch

    monkeypatch.delenv(KILL_ENV, raising=False)
    assert pretrain_ray(Store(tmp_path / "s"), [], None).failures == {}
    _kill_switch(None)({"step": 10**9})  # returns: nothing is killed
    monkeypatch.setenv(KILL_ENV, "five:/tmp/x")
    with pytest.raises(UsageError, match="STEP:MARKER_FILE"):
        pretrain_ray(Store(tmp_path / "s"), [], None)
