"""Ingest keeps extra source columns: JSON Lines fields and Parquet columns, one schema per version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import datadiet.curate.ingest.read as ingest_mod
from datadiet.cli import app
from datadiet.curate.ingest.op import IngestConfig, ingest
from datadiet.errors import InputError
from datadiet.schema import ID, REQUIRED_COLUMNS, TEXT
from datadiet.store import Store
from tests.helpers import cli, write_stories


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


RECORDS = [
    {"text": "one", "lang": "en", "score": 1, "meta": {"url": "a"}, "tags": ["x"]},
    {"text": "two", "score": 2.5, "meta": {"year": 2020}, "tags": [], "id": 9},
    {"text": "  ", "lang": "fr"},  # empty: dropped, but its field still counts
    {"text": "three", "lang": None},
]


def test_jsonl_fields_pass_through_with_merged_types(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    ds = ingest(store, [_jsonl(tmp_path / "a.jsonl", RECORDS)], "d").dataset
    frame = ds.read()
    # Declared columns first, then the extras in order of first appearance; `id` is never an extra.
    assert frame.columns == [*REQUIRED_COLUMNS, "lang", "score", "meta", "tags"]
    assert frame[ID].to_list() == ["a:0", "a:1", "a:2"]
    assert frame["lang"].to_list() == ["en", None, None]
    assert frame["score"].dtype == pl.Float64 and frame["score"].to_list() == [1.0, 2.5, None]
    # Nested values stay nested (as `datasets` reads them): a struct with the union of the keys.
    assert frame["meta"].to_list() == [{"url": "a", "year": None}, {"url": None, "year": 2020}, None]
    assert frame["tags"].to_list() == [["x"], [], None]
    assert [c["name"] for c in ds.manifest.params["extra_columns"]] == ["lang", "score", "meta", "tags"]


def test_ids_change_only_when_extras_exist(tmp_path: Path) -> None:
    plain = _jsonl(tmp_path / "p.jsonl", [{"text": "one", "id": 1}, {"text": "two"}])
    ds = ingest(Store(tmp_path / "s"), [plain], "d").dataset
    assert "extra_columns" not in ds.manifest.params and ds.read().columns == list(REQUIRED_COLUMNS)
    rich = _jsonl(tmp_path / "r.jsonl", [{"text": "one", "n": 1}, {"text": "two"}])
    base = ingest(Store(tmp_path / "s2"), [rich], "d").dataset
    # The same files read without their extras (an older release) would have had this id.
    store = Store(tmp_path / "s3")
    params = {k: v for k, v in base.manifest.params.items() if k != "extra_columns"}
    old = store.commit("d", operation="ingest", params=params, parents=base.manifest.parents, build=_texts_only(rich))
    assert old.dataset.ref != base.ref
    again = ingest(store, [rich], "d")  # so a store holding the old rows builds the new version
    assert again.dataset.ref == base.ref and not again.up_to_date


def _texts_only(path: Path) -> Any:
    def build(writer: Any) -> dict[str, Any]:
        texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        writer.write(pl.DataFrame({ID: [f"r:{i}" for i in range(len(texts))], TEXT: texts}))
        return {"documents": len(texts)}

    return build


def test_parquet_columns_and_mixed_inputs_share_one_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 1)  # every row group a piece: parts from many readers
    monkeypatch.setattr(ingest_mod, "BATCH_BYTES", 10)
    table = pa.table(
        {
            "body": [f"doc {i}" for i in range(40)],
            "lang": pa.array(["en", "de"] * 20).dictionary_encode(),
            "score": list(range(40)),
            "__index_level_0__": list(range(40)),
        }
    )
    pq.write_table(table, tmp_path / "b.parquet", row_group_size=10)
    _jsonl(tmp_path / "a.jsonl", [{"body": "json doc", "score": 0.5, "extra": True}])
    write_stories(tmp_path / "c.txt", ["plain story"])
    cfg = IngestConfig(text_field="body")
    ds = ingest(Store(tmp_path / "s"), [tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "c.txt"], "m", cfg)
    ds = ds.dataset
    assert len(ds.parts) > 3
    schemas = {str(pq.read_schema(p)) for p in ds.parts}
    assert len(schemas) == 1  # every part has the same columns and types
    frame = ds.read()
    assert frame.columns == [*REQUIRED_COLUMNS, "score", "extra", "lang"]
    assert frame["score"].dtype == pl.Float64 and frame["score"].to_list() == [0.5, *map(float, range(40)), None]
    assert frame["lang"].to_list() == [None, *(["en", "de"] * 20), None]
    assert frame["extra"].to_list() == [True, *([None] * 41)]


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"a.jsonl": [{"text": "x", "n": 1}], "b.jsonl": [{"text": "y", "n": "one"}]}, "int64 in "),
        ({"a.jsonl": [{"text": "x", "n": 1}, {"text": "y", "n": "one"}]}, "mixes them"),
        ({"a.jsonl": [{"text": "x", "n": {"k": 1}}], "b.jsonl": [{"text": "y", "n": [1]}]}, "struct<k: int64> in "),
    ],
)
def test_type_conflict_is_one_clear_error(tmp_path: Path, files: dict[str, list[dict[str, Any]]], where: str) -> None:
    paths = [_jsonl(tmp_path / name, records) for name, records in files.items()]
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match="field 'n' has incompatible types across the inputs") as info:
        ingest(store, paths, "d")
    assert where in str(info.value) and "\n" not in str(info.value)
    assert store.versions("d") == []


def test_parquet_type_conflict_names_both_files(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["a"], "n": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": ["b"], "n": ["one"]}), tmp_path / "b.parquet")
    with pytest.raises(
        InputError, match=r"'n' has incompatible types .*: int64 in .*a\.parquet, string in .*b\.parquet"
    ):
        ingest(Store(tmp_path / "s"), [tmp_path / "a.parquet", tmp_path / "b.parquet"], "d")


def test_round_trip_through_hf_export(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the hf extra is not installed: pip install 'datadiet[hf]'")
    path = _jsonl(tmp_path / "a.jsonl", RECORDS)
    cli(runner, "ingest", str(path), "-n", "rich")
    cli(runner, "export", "rich", str(tmp_path / "hf"), "--format", "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded["lang"] == ["en", None, None]
    assert loaded["meta"] == [{"url": "a", "year": None}, {"url": None, "year": 2020}, None]
    assert loaded["tags"] == [["x"], [], None]
    # ...and `datasets`' own reading of the source gives the same features (up to large_string
    # and LargeList: the parts are written by polars, which uses those). `meta`'s objects have
    # different keys, which datasets 5 reads as a `Json` feature; we keep the struct of all keys.
    source = datasets.load_dataset("json", data_files=str(path), split="train")
    for name in ("lang", "score", "tags"):
        ours = str(loaded.features[name]).replace("large_string", "string").replace("LargeList", "List")
        assert ours == str(source.features[name]), name


def test_cli_type_conflict(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "n": 1}])
    b = _jsonl(tmp_path / "b.jsonl", [{"text": "y", "n": "one"}])
    result = runner.invoke(app, ["ingest", str(a), str(b), "-n", "d"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: field 'n' has incompatible types across the inputs")
