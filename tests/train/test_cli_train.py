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
    # Compute on every run: 150 steps of 16 x 64 tokens, over the training set's own tokens.
    compute = listed[0]["compute"]
    train_tokens = store.resolve("c-train", "tokens").manifest.stats["tokens"]
    assert compute["tokens_seen"] == 150 * 16 * 64
    assert compute["train_set_tokens"] == train_tokens
    assert compute["epochs"] == pytest.approx(150 * 16 * 64 / train_tokens)
    assert compute["unique_train_tokens"] <= train_tokens and compute["wall_time_s"] > 0
    assert compute["flops"] == pytest.approx(compute["flops_per_token"] * compute["tokens_seen"])
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
    m = scored["metrics"]
    assert m["val_loss"] == pytest.approx(metrics["val_loss"], abs=0.35)
    assert scored["val_tokens"] == len(val_tokens)
    # Exact bits per byte: the NLL of exactly the scored targets over exactly their bytes.
    assert m["eval_tokens"] == 4096 and m["eval_bytes"] > m["eval_tokens"]
    assert m["bits_per_byte"] == pytest.approx(
        m["val_loss"] * m["eval_tokens"] / (math.log(2) * m["eval_bytes"]), rel=1e-12
    )


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
