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
