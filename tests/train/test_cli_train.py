"""`curate tokenizer train`, `curate train`, `curate runs`, `curate eval` end to end on the built-in corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.store import Store
from datadiet.train.pipeline import TOKENS_FILE
from tests.helpers import cli, store_snapshot


def _unigram_entropy_nats(tokens: np.ndarray) -> float:
    counts = np.bincount(tokens.astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.slow
def test_train_tiny_on_builtin_corpus(runner: CliRunner, store_path: Path) -> None:
    cli(runner, "corpus", "--stories", "1500", "--val-stories", "150", "--name", "c")
    tok = cli(runner, "tokenizer", "train", "c-train", "--vocab", "512")
    assert tok["kind"] == "tokenizers" and tok["stats"]["vocab_size"] == 512
    run = cli(runner, "train", "c-train", "--val", "c-val", "--tokenizer", "c-train", "--set", "threads=1")
    metrics = run["stats"]["metrics"]
    assert run["stats"]["train"]["steps"] == 150
    # The model learned the stories' structure: validation loss far below a unigram model's.
    store = Store(store_path)
    val_tokens = np.fromfile(store.resolve("c-val", "tokens").path / TOKENS_FILE, dtype=np.uint16)
    assert metrics["val_loss"] < _unigram_entropy_nats(val_tokens) - 1.0
    assert math.isclose(metrics["perplexity"], math.exp(metrics["val_loss"]), rel_tol=1e-6)
    assert 0.0 < metrics["accuracy"] < 1.0

    again = cli(runner, "train", "c-train", "--val", "c-val", "--tokenizer", "c-train", "--set", "threads=2")
    assert again["up_to_date"] and again["ref"] == run["ref"]  # threads never change the result
    listed = cli(runner, "runs")
    assert [r["ref"] for r in listed] == [run["ref"]]
    run_dir = Path(run["path"])
    assert {p.name for p in run_dir.iterdir()} >= {
        "checkpoint.pt",
        "metrics.jsonl",
        "config.json",
        "result.json",
        "manifest.json",
    }
    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == list(range(1, 151))

    scored = cli(runner, "eval", run["ref"], "--max-tokens", "4096")
    assert scored["metrics"]["val_loss"] == pytest.approx(metrics["val_loss"], abs=0.35)
    assert scored["val_tokens"] == len(val_tokens)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps"),
        (["--set", "colour=1"], "unknown setting 'colour'"),
        (["--set", "lr=abc"], "lr"),
        (["--set", "lr"], "is not KEY=VALUE"),
        (["--preset", "huge"], "unknown preset"),
        (["--tokenizer", "nope"], "no tokenizer named 'nope'"),
    ],
)
def test_train_bad_options(runner: CliRunner, store_path: Path, args: list[str], message: str) -> None:
    cli(runner, "corpus", "--stories", "100", "--val-stories", "20", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    before = store_snapshot(store_path)
    result = runner.invoke(app, ["train", "c-train", "--val", "c-val", "--tokenizer", "c-train", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert store_snapshot(store_path) == before
