"""`curate train --tensorboard`: the event files hold exactly the curves of metrics.jsonl (skipped without the extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import cli

pytest.importorskip(
    "tensorboard", reason="the tensorboard extra is not installed: pip install 'datadiet[tensorboard]'"
)


def test_train_writes_tensorboard_curves(runner: CliRunner, store_path: Path) -> None:
    import shutil

    from datadiet.train.tensorboard import read_scalars

    cli(runner, "corpus", "--stories", "150", "--val-stories", "20", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    args = ["train", "c-train", "--val", "c-val", "--steps", "12", "--set", "threads=1", "--set", "eval_every=4"]
    run = cli(runner, *args, "--tensorboard")
    curve = [json.loads(line) for line in (Path(run["path"]) / "metrics.jsonl").read_text().splitlines()]
    logdir = store_path / "tensorboard" / f"{run['name']}-{run['version']}"
    scalars = read_scalars(logdir)
    assert [s for s, _ in scalars["loss/train"]] == list(range(1, 13))
    assert [v for _, v in scalars["loss/train"]] == pytest.approx([c["train_loss"] for c in curve], rel=1e-6)
    assert [s for s, _ in scalars["loss/val"]] == [c["step"] for c in curve if "val_loss" in c] == [4, 8, 12]
    assert {"schedule/lr", "speed/tokens_per_s"} <= set(scalars)
    # Asked again for a run already trained: the curves are written from its metrics.jsonl.
    shutil.rmtree(logdir)
    again = cli(runner, *args, "--tensorboard")
    assert again["up_to_date"]
    assert read_scalars(logdir)["loss/train"] == scalars["loss/train"]


def test_sweep_events_write_each_published_run(runner: CliRunner, store_path: Path) -> None:
    """What `curate sweep --tensorboard` does as each run node is published: the run's curves, once."""
    from types import SimpleNamespace

    from datadiet.cli.study import _with_tensorboard
    from datadiet.store import Store
    from datadiet.train.tensorboard import read_scalars

    cli(runner, "corpus", "--stories", "120", "--val-stories", "20", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    run = cli(runner, "train", "c-train", "--val", "c-val", "--steps", "5", "--set", "threads=1")
    seen: list[object] = []
    event = _with_tensorboard(Store(store_path), seen.append)
    node = SimpleNamespace(kind="runs", ref=run["ref"], state="built")
    event(SimpleNamespace(node=node))
    event(SimpleNamespace(node=node))  # a second event for the same run writes nothing more
    logdir = store_path / "tensorboard" / f"{run['name']}-{run['version']}"
    assert [s for s, _ in read_scalars(logdir)["loss/train"]] == [1, 2, 3, 4, 5]
    assert len(list(logdir.glob("events.*"))) == 1 and len(seen) == 2
