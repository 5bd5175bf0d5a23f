"""`curate export-model --format hf`: transformers loads the folder, its logits equal ours, greedy text too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.store import Store
from datadiet.train.generate import SampleConfig, generate, load_run_model
from tests.helpers import cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers", reason="the transformers extra is not installed")


def test_export_model_matches_our_logits(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    cli(runner, "corpus", "--stories", "150", "--val-stories", "20", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")  # 300: the embedding is padded to 320
    run = cli(runner, "train", "c-train", "--val", "c-val", "--steps", "15", "--set", "threads=1")
    out = tmp_path / "gpt2"
    summary = cli(runner, "export-model", run["ref"], str(out))
    assert summary["architecture"] == "GPT2LMHeadModel" and "model.safetensors" in summary["files"]

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ours = load_run_model(Store(store_path), run["ref"])
    idx = torch.randint(0, 300, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine, _ = ours.model(idx)
    assert theirs.shape == mine.shape == (3, 40, 300)
    assert torch.allclose(theirs, mine, atol=1e-4, rtol=1e-4)

    text = "Once upon a time"
    assert tok(text)["input_ids"] == ours.tokenizer.encode(text, add_special_tokens=False).ids
    prompt = ours.encode(text)
    greedy = generate(ours.model, [prompt], SampleConfig(max_new_tokens=12, temperature=0))[0]
    with torch.no_grad():
        gen = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None)
    assert gen[0, len(prompt) :].tolist() == greedy

    again = runner.invoke(app, ["export-model", run["ref"], str(out)])
    assert again.exit_code == 2 and "is not an empty folder" in again.stderr
    bad = runner.invoke(app, ["export-model", run["ref"], str(tmp_path / "x"), "--format", "onnx"])
    assert bad.exit_code == 2 and "--format must be one of hf" in bad.stderr
