"""Hugging Face datasets interop, with the real `datasets` package (skipped without the hf extra)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.hf.arrow import commit_table, read_arrow, table_sha256
from datadiet.errors import InputError
from datadiet.schema import ID, TEXT
from datadiet.store import Store
from tests.helpers import cli

# Tests never use the network: set before huggingface_hub is first imported (it reads this once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets = pytest.importorskip("datasets", reason="the hf extra is not installed: pip install 'datadiet[hf]'")

ROWS = {
    "text": ["Tom had a red ball.", "Sue saw a big dog.", "   ", "The cat sat."],
    "label": [1, 0, 0, 1],
    "lang": ["en", "en", "fr", "en"],
}


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_round_trip_through_datasets(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    hf = datasets.Dataset.from_dict(ROWS)
    from datadiet.curate.hf.convert import from_hf, to_hf

    commit = from_hf(store, hf, "hfdata")
    ds = commit.dataset
    frame = ds.read()
    # Extra columns are kept; the blank document is dropped and counted; ids are <name>:<row>.
    assert frame[TEXT].to_list() == ["Tom had a red ball.", "Sue saw a big dog.", "The cat sat."]
    assert frame["label"].to_list() == [1, 0, 1] and frame["lang"].to_list() == ["en", "en", "en"]
    assert frame[ID].to_list() == ["hfdata:0", "hfdata:1", "hfdata:3"]
    assert ds.manifest.stats["dropped_empty"] == 1
    # The data is the id: the same rows again are found; a shuffled select is new data.
    assert from_hf(store, datasets.Dataset.from_dict(ROWS), "hfdata").up_to_date
    assert not from_hf(store, hf.select([1, 0, 2, 3]), "hfdata").up_to_date
    back = to_hf(ds)
    assert isinstance(back, datasets.Dataset)
    assert back.column_names[:2] == [ID, TEXT] and back["label"] == [1, 0, 1]
    with pytest.raises(Exception, match="one split"):
        from_hf(store, datasets.DatasetDict({"train": hf}), "x")


def test_ingest_reads_save_to_disk_and_arrow_files(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({**ROWS, "doc": ["a", "b", "c", "d"]}).save_to_disk(str(saved))
    out = cli(runner, "ingest", str(saved), "-n", "sv", "--id-field", "doc")
    assert out["rows"] == 3
    frame = Store(store_path).resolve("sv").read()
    assert frame[ID].to_list() == ["a", "b", "d"] and "lang" in frame.columns and "doc" not in frame.columns
    arrow_files = sorted(saved.glob("*.arrow"))
    again = cli(runner, "ingest", *map(str, arrow_files), "-n", "sv", "--id-field", "doc")
    assert again["up_to_date"]  # the same table from its .arrow file is the same version
    bad = runner.invoke(app, ["ingest", str(saved), "-n", "x", "--text-field", "body"])
    assert bad.exit_code == 2 and "has no column 'body'" in bad.stderr
    mixed = runner.invoke(app, ["ingest", str(saved), str(arrow_files[0].with_suffix(".txt")), "-n", "x"])
    assert mixed.exit_code == 2


def test_export_hf_opens_with_load_from_disk(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    cli(runner, "corpus", "--stories", "50", "--val-stories", "10", "--name", "c")
    out = cli(runner, "export", "c-train", str(tmp_path / "c-hf"), "--format", "hf")
    assert out["rows"] == 50
    loaded = datasets.load_from_disk(str(tmp_path / "c-hf"))
    expected = Store(store_path).resolve("c-train").read()
    assert loaded["text"] == expected[TEXT].to_list() and loaded["id"] == expected[ID].to_list()
    again = runner.invoke(app, ["export", "c-train", str(tmp_path / "c-hf"), "--format", "hf"])
    assert again.exit_code == 2 and "is not an empty folder" in again.stderr
    # ...and what was exported comes back as the same rows.
    back = cli(runner, "ingest", str(tmp_path / "c-hf"), "-n", "back", "--id-field", "id")
    assert Store(store_path).resolve("back").read().select(ID, TEXT).equals(expected.select(ID, TEXT))
    assert back["rows"] == 50


def test_arrow_helpers_without_datasets(tmp_path: Path) -> None:
    table = pa.table({"text": ["a b", "c"], "n": [1, 2]})
    assert table_sha256(table) == table_sha256(pa.table({"text": ["a b", "c"], "n": [1, 2]}))
    assert table_sha256(table) != table_sha256(pa.table({"text": ["a b", "d"], "n": [1, 2]}))
    path = tmp_path / "t.arrow"
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:  # the random-access format
        w.write_table(table)
    assert read_arrow([path]).equals(table)
    with pytest.raises(InputError, match="must hold a unique"):
        commit_table(Store(tmp_path / "s"), pa.table({"text": ["a", "b"], "k": [1, 1]}), "x", id_field="k")
    (tmp_path / "junk.arrow").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable Arrow file"):
        read_arrow([tmp_path / "junk.arrow"])
    assert pl.DataFrame(table).height == 2


def test_hf_uri_offline_is_one_line(runner: CliRunner, store_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "hf://datasets/roneneldan/TinyStories/TinyStories-valid.txt", "-n", "ts"])
    assert result.exit_code in (1, 2)
    lines = result.stderr.strip().splitlines()
    # Offline mode (when huggingface_hub reads HF_HUB_OFFLINE at its import) or no network at all.
    assert len(lines) == 1 and ("offline mode is enabled" in lines[0] or "network error" in lines[0]), lines
