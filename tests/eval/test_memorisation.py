"""The memorisation probe: a model that memorised a planted document reproduces it, and only it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.errors import UsageError
from datadiet.eval.memorisation import ProbeConfig, binomial_interval, probe, training_classes
from datadiet.schema import ID, SOURCE_ID, TEXT
from datadiet.train.model import GPT, GPTConfig

EOS = 0
P, S = 8, 8


@pytest.fixture(scope="module")
def planted() -> tuple[GPT, list[int], list[list[int]]]:
    """A tiny GPT overfit on one planted document (always after the end-of-text id), and other random documents."""
    rng = np.random.default_rng(0)
    doc = rng.integers(1, 64, P + S).tolist()
    others = [rng.integers(1, 64, P + S).tolist() for _ in range(6)]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=P + S + 1, n_layer=2, n_head=2, n_embd=32))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.tensor([[EOS, *doc]])
    for _ in range(60):
        _, loss = model(x[:, :-1], x[:, 1:])
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), doc, others


def test_the_planted_document_is_memorised_and_no_other(planted: tuple[GPT, list[int], list[list[int]]]) -> None:
    model, doc, others = planted
    cfg = ProbeConfig(prefix_tokens=P, suffix_tokens=S)
    result = probe(
        model,
        {"repeated": [doc], "unique": others[:3], "validation": others[3:]},
        cfg,
        eos_id=EOS,
        counts={"repeated": [9]},
    )
    assert result["repeated"]["exact"] == 1 and result["repeated"]["exact_rate"] == 1.0
    assert result["repeated"]["token_match"] == 1.0
    assert result["unique"]["exact"] == 0 and result["validation"]["exact"] == 0
    assert result["repeated"]["mean_loss"] < 0.1 < result["validation"]["mean_loss"]
    assert result["repeated"]["by_count"] == [{"count": 9, "docs": 1, "exact_rate": 1.0}]
    # Deterministic: the same call gives the same numbers.
    again = probe(
        model,
        {"repeated": [doc], "unique": others[:3], "validation": others[3:]},
        cfg,
        eos_id=EOS,
        counts={"repeated": [9]},
    )
    assert again == result


def test_prompt_and_continuation_must_fit_the_context(planted: tuple[GPT, list[int], list[list[int]]]) -> None:
    model, doc, _ = planted
    with pytest.raises(UsageError, match="more than the model's context"):
        probe(model, {"repeated": [doc]}, ProbeConfig(prefix_tokens=P, suffix_tokens=S + 2), eos_id=EOS)
    with pytest.raises(UsageError, match="fewer than P"):
        probe(model, {"repeated": [doc[:-1]]}, ProbeConfig(prefix_tokens=P, suffix_tokens=S), eos_id=EOS)


def test_training_classes_by_source_id() -> None:
    frame = pl.DataFrame(
        {
            ID: ["a", "b", "a#dup1", "c", "a#dup2"],
            TEXT: ["A", "B", "A", "C", "A"],
            SOURCE_ID: ["a", "b", "a", "c", "a"],
        }
    )
    repeated, unique = training_classes(frame)
    assert repeated.select(TEXT, "count").rows() == [("A", 3)]
    assert unique.select(TEXT, "count").rows() == [("B", 1), ("C", 1)]


def test_binomial_interval_interval() -> None:
    interval = binomial_interval(0, 50)
    assert interval is not None
    assert interval[0] == 0.0 and interval[1] == pytest.approx(1 - 0.025 ** (1 / 50))
    assert binomial_interval(0, 0) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"prefix_tokens": 0}, "--prefix-tokens must be between 1"), ({"docs_per_class": 0}, "--docs-per-class")],
)
def test_bad_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ProbeConfig(**kwargs)


def test_curate_eval_memorisation(tmp_path: Path) -> None:
    """End to end on a tiny run: every class is reported, the result is stored and found again."""
    runner = CliRunner()
    store = str(tmp_path / "st")
    for args in (
        ["corpus", "--stories", "120", "--val-stories", "30", "--name", "c"],
        ["duplicate", "c-train", "--rate", "0.3", "--pool", "4", "--name", "d"],
        ["tokenizer", "train", "d", "--vocab", "300"],
        ["train", "d", "--val", "c-val", "--preset", "tiny", "--steps", "3", "--set", "threads=1"],
    ):
        result = runner.invoke(app, [*args, "--store", store, "--quiet"])
        assert result.exit_code == 0, result.output
    args = ["eval", "d", "--memorisation", "--prefix-tokens", "8", "--suffix-tokens", "8", "--docs-per-class", "5"]
    result = runner.invoke(app, [*args, "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    mem = json.loads(result.stdout)["memorisation"]
    assert set(mem["classes"]) == {"repeated", "unique", "validation"}
    assert mem["classes"]["repeated"]["docs"] == 4 and mem["classes"]["repeated"]["class_size"] == 4
    assert mem["classes"]["unique"]["docs"] == 5 and mem["classes"]["validation"]["docs"] == 5
    again = runner.invoke(app, [*args, "--store", store, "--json"])
    assert json.loads(again.stdout)["memorisation"] == mem


def test_binomial_interval_interval_coverage_by_simulation() -> None:
    """Seeded: the 95% Clopper–Pearson interval covers the true exact-continuation rate in >= 95% of draws."""
    rng = np.random.default_rng(7)
    for n, p in ((20, 0.05), (100, 0.3), (50, 0.9)):
        hits = rng.binomial(n, p, size=2000)
        covered = 0
        for h in hits:
            interval = binomial_interval(int(h), n)
            assert interval is not None
            covered += interval[0] <= p <= interval[1]
        assert covered / 2000 >= 0.945, (n, p, covered)  # 2,000 draws: ±0.005 around the true coverage
