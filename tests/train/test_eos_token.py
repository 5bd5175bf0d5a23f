"""`--eos-token`: training with an external tokenizer.json that has no <|endoftext|>."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.store import Store
from datadiet.train.generate import load_run_model
from datadiet.train.pipeline import TOKENS_FILE
from tests.helpers import cli


def _external_tokenizer(path: Path) -> Path:
    """A byte-level BPE whose only special token is </s> (as many Hugging Face tokenizers are)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["Tom and Sue ran to the park with a red ball."] * 50, trainer=trainer)
    tok.save(str(path))
    return path


def test_train_with_eos_token(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    tok = str(_external_tokenizer(tmp_path / "tokenizer.json"))
    cli(runner, "corpus", "--stories", "80", "--val-stories", "20", "--name", "c")
    args = ["train", "c-train", "--val", "c-val", "--tokenizer", tok, "--steps", "3", "--set", "threads=1"]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2
    assert "has no <|endoftext|> token; name the token that ends a document" in missing.stderr
    wrong = runner.invoke(app, [*args, "--eos-token", "<eos>"])
    assert wrong.exit_code == 2 and "has no <eos> token" in wrong.stderr
    run = cli(runner, *args, "--eos-token", "</s>")
    store = Store(store_path)
    rm = load_run_model(store, run["ref"])
    assert rm.eos_token == "</s>" and rm.eos_id == 0
    # Every document of the token file ends with </s>: as many separators as documents.
    tokens = store.resolve("c-train", "tokens")
    ids = np.fromfile(tokens.file(TOKENS_FILE), dtype=np.uint16)
    assert int((ids == rm.eos_id).sum()) == 80 and ids[-1] == rm.eos_id
    assert cli(runner, "generate", run["ref"], "--max-tokens", "5")["samples"][0]["prompt"] == ""
    # Evaluating finds the run's own tokenizer copy and the same token files (no re-encoding).
    scored = cli(runner, "eval", run["ref"], "--max-tokens", "2048")
    assert scored["metrics"]["val_loss"] > 0
    assert len(store.all("tokens")) == 2
    store_tok = runner.invoke(app, [*args[:5], "c-train", "--eos-token", "</s>"])
    assert store_tok.exit_code == 2
