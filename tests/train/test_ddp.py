"""Training on several processes with DDP (gloo on CPU): same result as one process, rank 0 alone writes.

The equality tests start real worker processes (each imports torch, ~3 s of CPU), so they are marked
slow; they still run in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.errors import DatadietError, UsageError
from datadiet.store import Store
from datadiet.train.checkpoint import load_checkpoint
from datadiet.train.config import resolve_config
from datadiet.train.ddp import World, check_nproc, threads_per_process
from datadiet.train.distributed import prepare_processes, spawn, torchrun_world, train_processes
from datadiet.train.pipeline import RunSpec, load_token_array, resolve_run_config, resolve_tokenizer, run_identity
from datadiet.train.trainer import train
from tests.helpers import cli, store_snapshot

VOCAB = 64
# Six steps of a global batch of 8 windows in two micro-batches (grad_accum=2, so DDP's no_sync path
# runs too), evaluated at steps 3 and 6 on 512 validation tokens; one thread per process.
SETTINGS = {
    "steps": "6",
    "batch_size": "8",
    "block_size": "16",
    "grad_accum": "2",
    "warmup": "2",
    "eval_every": "3",
    "eval_tokens": "512",
    "checkpoint_every": "3",
    "threads": "1",
}
# Equality tolerance. Two processes add up the same numbers in another order: each rank averages the
# loss and sums gradients over its half of the windows, then the halves are averaged, where one process
# reduces over all of them at once. float32 rounding (2^-24 = 6e-8 relative per operation) then differs,
# so losses agree to ~1e-7 and weights, after Adam steps whose m/sqrt(v) amplifies differences in small
# gradients, to a few 1e-6 (measured: losses <= 1.2e-7, weights <= 3e-6 relative in norm, also after 60
# steps). 1e-5 leaves a margin, while a real error (a wrong slice, a missing all-reduce, a loss scaled
# by N) shows up at >= 1e-2.
RTOL = 1e-5


def tokens(n: int, seed: int) -> np.ndarray:
    """A token stream with structure to learn (a repeated phrase) and noise (30% random tokens)."""
    rng = np.random.default_rng(seed)
    phrase = rng.integers(0, VOCAB, size=200)
    stream = np.tile(phrase, n // 200)
    return np.where(rng.random(len(stream)) < 0.3, rng.integers(0, VOCAB, size=len(stream)), stream).astype(np.uint16)


def curve(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_run(single: Path, ddp: Path) -> float:
    """Both runs' metrics and final weights agree within RTOL; returns the largest relative difference seen."""
    one, two = curve(single / "metrics.jsonl"), curve(ddp / "metrics.jsonl")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3, 4, 5, 6]
    assert [sorted(r) for r in two] == [sorted(r) for r in one]  # val_loss at the same steps
    assert [r["lr"] for r in two] == [r["lr"] for r in one]
    worst = 0.0
    for a, b in zip(one, two, strict=True):
        for key in ("train_loss", "val_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=RTOL), (a["step"], key)
                worst = max(worst, abs(b[key] - a[key]) / abs(a[key]))
    w1, w2 = load_checkpoint(single / "checkpoint.pt")["model"], load_checkpoint(ddp / "checkpoint.pt")["model"]
    assert w1.keys() == w2.keys()
    for name in w1:
        rel = float(torch.linalg.vector_norm(w2[name] - w1[name]) / torch.linalg.vector_norm(w1[name]))
        assert rel <= RTOL, name
        worst = max(worst, rel)
    return worst


class Recorder:
    """A tracker that keeps every progress event, to check what the workers relay."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def task(self, description: str, total: float | None = None) -> Recorder:
        self.events.append(("task", description, total))
        return self

    def advance(self, amount: float = 1) -> None:
        self.events.append(("advance", amount))

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self.events.append(("update", total, description))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.events.append(("close",))


def train_into_rank_folder(
    model_cfg: Any, train_cfg: Any, train_tokens: np.ndarray, val_tokens: np.ndarray, base: Path, **kwargs: Any
) -> dict[str, Any]:
    """A worker: `train` with a folder of its own per rank, so any file a rank writes shows up under it."""
    rank = dist.get_rank()
    result = train(model_cfg, train_cfg, train_tokens, val_tokens, base / f"rank{rank}", **kwargs)
    return {
        "rank": rank,
        "world": dist.get_world_size(),
        "result": result,
        "memmap": isinstance(train_tokens, np.memmap),
    }


@pytest.mark.slow
def test_two_processes_match_one_and_only_rank_zero_writes(tmp_path: Path) -> None:
    model_cfg, train_cfg = resolve_config("tiny", VOCAB, SETTINGS)
    tokens(20_000, 0).tofile(tmp_path / "train.bin")
    train_tokens = np.memmap(tmp_path / "train.bin", dtype=np.uint16, mode="r")  # travels by file name
    val_tokens = tokens(4_000, 1)
    single = train(model_cfg, train_cfg, train_tokens, val_tokens, tmp_path / "single")

    rec, lines = Recorder(), []
    out = spawn(
        train_into_rank_folder,
        2,
        model_cfg,
        train_cfg,
        train_tokens,
        val_tokens,
        tmp_path / "ddp",
        tracker=rec,
        on_step=lines.append,
    )
    assert (out["rank"], out["world"], out["memmap"]) == (0, 2, True)
    assert not (tmp_path / "ddp" / "rank1").exists()  # rank 1 trained but wrote nothing, not even its folder
    rank0 = tmp_path / "ddp" / "rank0"
    assert sorted(p.name for p in rank0.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
    assert load_checkpoint(rank0 / "checkpoint.pt")["step"] == 6
    worst = assert_same_run(tmp_path / "single", rank0)
    assert worst <= RTOL
    result = out["result"]
    assert (result.steps, result.tokens, result.params) == (single.steps, single.tokens, single.params)
    assert result.val_loss == pytest.approx(single.val_loss, rel=RTOL)
    assert result.train_loss == pytest.approx(single.train_loss, rel=RTOL)
    # Rank 0's progress and step lines reach the parent's tracker and callback, in order.
    assert rec.events == [("task", "Training", 6), ("advance", 0), *[("advance", 1)] * 6, ("close",)]
    assert lines == curve(rank0 / "metrics.jsonl")


def test_nproc_must_split_the_batch() -> None:
    check_nproc(4, 16)
    for nproc, message in [(0, "--nproc must be a whole number"), (-2, "--nproc must"), (3, "does not split")]:
        with pytest.raises(UsageError, match=message):
            check_nproc(nproc, 16)
    with pytest.raises(UsageError, match=r"batch_size 16 does not split over --nproc 3 .* --set batch_size=18"):
        check_nproc(3, 16)


def test_bad_nproc_fails_before_training(tmp_path: Path) -> None:
    model_cfg, train_cfg = resolve_config("tiny", VOCAB, SETTINGS)
    data = tokens(2_000, 0)
    for nproc in (0, 3):
        with pytest.raises(UsageError, match="--nproc"):
            train_processes(model_cfg, train_cfg, data, data, tmp_path / "run", nproc=nproc)
    assert not (tmp_path / "run").exists()


def test_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert torchrun_world() is None
    assert prepare_processes(None, "cpu", 8) is None  # a single local process: nothing to set up
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert torchrun_world() == torchrun_world(4) == World(rank=3, size=4, local_rank=1, local_size=2)
    with pytest.raises(UsageError, match="--nproc 2 disagrees with torchrun's WORLD_SIZE=4"):
        torchrun_world(2)
    with pytest.raises(UsageError, match="batch_size 6 does not split over --nproc 4"):
        prepare_processes(None, "cpu", 6)  # refused before joining any process group
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UsageError, match="outside WORLD_SIZE=4"):
        torchrun_world()
    assert not dist.is_initialized()


def test_world_shards_and_threads() -> None:
    batch = np.arange(8)
    assert [World(rank=r, size=4).shard(batch).tolist() for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert World().shard(batch).tolist() == list(range(8))
    cores = len(os.sched_getaffinity(0))
    assert threads_per_process(1) == cores
    assert threads_per_process(2) == max(1, cores // 2)
    assert threads_per_process(10_000) == 1


@pytest.fixture
def small_corpus(runner: CliRunner, store_path: Path) -> Path:
    cli(runner, "corpus", "--stories", "200", "--val-stories", "40", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    return store_path


CLI_RUN = ["train", "c-train", "--val", "c-val", "--tokenizer", "c-train", "--steps", "6", "--set", "eval_every=3"]


@pytest.mark.parametrize(("nproc", "message"), [("0", "--nproc must be a whole number"), ("3", "does not split")])
def test_cli_bad_nproc(runner: CliRunner, small_corpus: Path, nproc: str, message: str) -> None:
    before = store_snapshot(small_corpus)
    result = runner.invoke(app, [*CLI_RUN, "--nproc", nproc])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert store_snapshot(small_corpus) == before  # refused before tokenizing or training anything


SPEC = RunSpec(train_ref="c-train", val_ref="c-val", tokenizer="c-train", steps=6, overrides=(("eval_every", "3"),))


def train_single_process(store: Store, out: Path) -> Path:
    """The run of `CLI_RUN` trained here in one process, straight from the trainer, into OUT."""
    model_cfg, train_cfg = resolve_run_config(SPEC, resolve_tokenizer(store, "c-train").vocab_size)
    train_tokens, val_tokens = (load_token_array(store.resolve(name, "tokens")) for name in ("c-train", "c-val"))
    train(model_cfg, train_cfg, train_tokens, val_tokens, out)
    return out


@pytest.mark.slow
def test_cli_nproc_2_is_the_same_run(runner: CliRunner, small_corpus: Path, tmp_path: Path) -> None:
    store = Store(small_corpus)
    run = cli(runner, *CLI_RUN, "--nproc", "2")
    assert run["stats"]["nproc"] == 2 and not run["up_to_date"]
    _, params, parents = run_identity(store, SPEC)
    assert run["version"] == store.version_id(operation="train", params=params, parents=parents, kind="runs")
    again = cli(runner, *CLI_RUN)  # one process: the same run id, so nothing to do
    assert again["up_to_date"] and again["ref"] == run["ref"]
    assert assert_same_run(train_single_process(store, tmp_path / "single"), Path(run["path"])) <= RTOL
    assert not any((small_corpus / "work" / "runs").glob("*"))  # the private work folder is gone


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(sys.executable).with_name("curate").is_file(), reason="the curate script is not installed"
)
def test_torchrun_launch(small_corpus: Path, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 curate train ...`: rank 0 publishes, both ranks return the run, one report."""
    env = {**os.environ, "DATADIET_STORE": str(small_corpus), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(Path(sys.executable).with_name("curate")),
        *CLI_RUN,
        "--set",
        "threads=1",
        "--json",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # one JSON document: only rank 0 reports
    assert report["stats"]["nproc"] == 2 and not report["up_to_date"]
    store = Store(small_corpus)
    assert [d.ref for d in store.all("runs")] == [report["ref"]]
    assert assert_same_run(train_single_process(store, tmp_path / "single"), Path(report["path"])) <= RTOL


def test_torchrun_ranks_agree_on_what_to_do(small_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocol of `train_run` under torchrun, played in one process with the collectives recorded.

    Rank 0 tells the others whether the run trains (False: fresh, True: resume) or is up to date
    (None), and everyone meets at a barrier once it is published; a rank that skipped either would hang.
    """
    import datadiet.train.distributed as ddist
    from datadiet.train.pipeline import train_run

    calls: list[Any] = []
    rank = 0
    replies: list[Any] = []

    def broadcast(value: Any, world: World) -> Any:
        assert world.rank == rank
        calls.append(("broadcast", value))
        return value if world.is_main else replies.pop(0)

    monkeypatch.setattr(ddist, "prepare_processes", lambda nproc, device, batch: World(rank, 2, rank))
    monkeypatch.setattr(ddist, "broadcast", broadcast)
    monkeypatch.setattr(ddist, "barrier", lambda world: calls.append("barrier"))
    store = Store(small_corpus)
    spec = dataclasses.replace(SPEC, overrides=(*SPEC.overrides, ("threads", "1")))

    first = train_run(store, spec)  # rank 0, fresh: announces "train from scratch", trains, publishes
    assert calls == [("broadcast", False), "barrier"] and not first.up_to_date
    calls.clear()
    again = train_run(store, spec)  # rank 0, already published: announces "nothing to do"
    assert calls == [("broadcast", None), "barrier"] and again.up_to_date
    calls.clear()
    rank, replies = 1, [None]  # rank 1 hears "nothing to do": it only waits, then returns the run
    before = store_snapshot(small_corpus)
    follower = train_run(store, spec)
    assert calls == [("broadcast", None), "barrier"]
    assert follower.up_to_date and follower.dataset.ref == first.dataset.ref
    assert store_snapshot(small_corpus) == before


def fail_on_rank_1(*, tracker: Any, on_step: Any) -> None:
    """A worker whose rank 1 fails with a user-facing error while rank 0 waits for it."""
    if dist.get_rank() == 1:
        raise DatadietError("rank 1 cannot go on; fix the input")
    dist.barrier()


@pytest.mark.slow
def test_worker_error_reaches_the_caller() -> None:
    with pytest.raises(DatadietError, match=r"^rank 1 cannot go on; fix the input$"):
        spawn(fail_on_rank_1, 2)
