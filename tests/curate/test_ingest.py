"""Ingest: every format, compression, ids, empty stories, and every bad input it must refuse cleanly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

import datadiet.curate.ingest.read as ingest_mod
from datadiet.curate.ingest.op import IngestConfig, ingest
from datadiet.errors import InputError, UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import Store
from tests.helpers import write_stories

STORIES = ["Once upon a time there was a cat.", "The dog ran.\nIt was fast.", "A bird sang."]


def _texts(store: Store, name: str = "d") -> list[str]:
    return store.resolve(name).read()[TEXT].to_list()


def test_text_strips_drops_empty_and_counts(tmp_path: Path) -> None:
    raw = "  first story \n<|endoftext|>\n\n<|endoftext|>\nsecond\nline two\n<|endoftext|>\n   \n<|endoftext|>\ntail without separator\n"
    (tmp_path / "a.txt").write_text(raw)
    store = Store(tmp_path / "s")
    commit = ingest(store, [tmp_path / "a.txt"], "d")
    assert _texts(store) == ["first story", "second\nline two", "tail without separator"]
    assert commit.dataset.manifest.stats["dropped_empty"] == 2
    assert store.resolve("d").read()[ID].to_list() == ["a:0", "a:1", "a:2"]


def test_custom_separator(tmp_path: Path) -> None:
    write_stories(tmp_path / "a.txt", STORIES, sep="-----")
    store = Store(tmp_path / "s")
    ingest(store, [tmp_path / "a.txt"], "d", IngestConfig(separator="-----"))
    assert _texts(store) == STORIES


def test_jsonl_with_ids_and_parquet_and_compression(tmp_path: Path) -> None:
    lines = [json.dumps({"body": s, "uid": i + 10}) for i, s in enumerate(STORIES)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write("\n".join(lines))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines)).encode()))
    pl.DataFrame({"body": STORIES, "uid": ["x", "y", "z"]}).write_parquet(tmp_path / "d.parquet")
    store = Store(tmp_path / "s")
    cfg = IngestConfig(text_field="body", id_field="uid")
    for i, fname in enumerate(["a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.parquet"]):
        ingest(store, [tmp_path / fname], f"d{i}", cfg)
        assert _texts(store, f"d{i}") == STORIES
    assert store.resolve("d0").read()[ID].to_list() == ["10", "11", "12"]
    assert store.resolve("d3").read()[ID].to_list() == ["x", "y", "z"]


def test_folder_and_glob_expand_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_stories(tmp_path / "in" / "b.txt", ["bee"])
    write_stories(tmp_path / "in" / "sub" / "a.txt", ["ay"])
    (tmp_path / "in" / "notes.md").write_text("ignored")
    store = Store(tmp_path / "s")
    ingest(store, [tmp_path / "in"], "folder")
    ingest(store, [str(tmp_path / "in" / "*.txt")], "glob")
    assert _texts(store, "folder") == ["bee", "ay"]
    assert _texts(store, "glob") == ["bee"]


def test_content_addressed_by_file_contents(tmp_path: Path) -> None:
    path = write_stories(tmp_path / "a.txt", STORIES)
    store = Store(tmp_path / "s")
    v1 = ingest(store, [path], "d")
    assert ingest(store, [path], "d").up_to_date
    write_stories(path, [*STORIES, "new"])
    v2 = ingest(store, [path], "d")
    assert not v2.up_to_date and v2.dataset.version != v1.dataset.version and len(store.versions("d")) == 2


@pytest.mark.parametrize(
    ("content", "fname", "cfg", "match"),
    [
        (b"", "empty.txt", IngestConfig(), "no documents found"),
        (b"ok story\n<|endoftext|>\nbad \xff\xfe here\n", "bad.txt", IngestConfig(), r"invalid UTF-8 at byte 27"),
        (b"\x00\x01\x02binary", "bin.txt", IngestConfig(), "binary data"),
        (b'{"text": "a"}\n{"text": broken\n', "a.jsonl", IngestConfig(), "line 2 is not valid JSON"),
        (b'{"text": "a"}\n{"other": "b"}\n', "a.jsonl", IngestConfig(), "line 2 has no field 'text'"),
        (b'{"text": 5}\n', "a.jsonl", IngestConfig(), "is int, expected a string"),
        (b"[1, 2]\n", "a.jsonl", IngestConfig(), "expected an object"),
        (b'{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n', "a.jsonl", IngestConfig(id_field="id"), "not unique"),
        (b"x" * 5000, "huge.txt", IngestConfig(max_doc_bytes=1000), "longer than 1000 bytes"),
        (b"hello", "a.csv", IngestConfig(), "unknown file type"),
    ],
)
def test_bad_input_is_refused_and_store_unchanged(
    tmp_path: Path, content: bytes, fname: str, cfg: IngestConfig, match: str
) -> None:
    (tmp_path / fname).write_bytes(content)
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match=match):
        ingest(store, [tmp_path / fname], "d", cfg)
    assert store.all() == []
    assert not (tmp_path / "s" / ".tmp").exists() or list((tmp_path / "s" / ".tmp").iterdir()) == []


def test_invalid_utf8_accepted_with_replace(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"bad \xff here\n<|endoftext|>\n")
    store = Store(tmp_path / "s")
    ingest(store, [tmp_path / "bad.txt"], "d", IngestConfig(errors="replace"))
    assert _texts(store) == ["bad \ufffd here"]


def test_parquet_wrong_schema(tmp_path: Path) -> None:
    pl.DataFrame({"content": ["a"]}).write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"text": [1, 2]}).write_parquet(tmp_path / "b.parquet")
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match="no column 'text'"):
        ingest(store, [tmp_path / "a.parquet"], "d")
    with pytest.raises(InputError, match="expected a string column"):
        ingest(store, [tmp_path / "b.parquet"], "d")


def test_missing_paths_and_bad_options(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match="no such file"):
        ingest(store, [tmp_path / "nope.txt"], "d")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="folder holds no"):
        ingest(store, [tmp_path / "empty_dir"], "d")
    with pytest.raises(InputError, match="no files match"):
        ingest(store, [str(tmp_path / "*.nothing")], "d")
    with pytest.raises(UsageError, match="--format"):
        IngestConfig(format="xml")
    with pytest.raises(UsageError, match="--errors"):
        IngestConfig(errors="ignore")


def test_real_tinystories_text(shared_data: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    ds = ingest(store, [shared_data / "tinystories-train-1.txt"], "ts").dataset
    # The data README: 2,316 documents, starting with Lily and the needle.
    assert ds.rows == 2316
    first = ds.read()[TEXT][0]
    assert first.startswith("One day, a little girl named Lily found a needle in her room.")
    ds3 = ingest(store, [shared_data / "tinystories-train-3.txt"], "ts3").dataset
    assert ds3.rows == 1000


def test_jsonl_with_byte_order_mark_and_id_field_on_text(tmp_path: Path) -> None:
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    store = Store(tmp_path / "s")
    ingest(store, [tmp_path / "bom.jsonl"], "d")
    assert _texts(store) == ["first", "second"]
    write_stories(tmp_path / "a.txt", STORIES)
    with pytest.raises(InputError, match="--id-field applies to JSONL and Parquet only"):
        ingest(store, [tmp_path / "a.txt"], "t", IngestConfig(id_field="uid"))
    assert [d.name for d in store.all()] == ["d"]


def test_plan_groups_split_parquet_and_keep_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stories(tmp_path / "a.txt", [f"story {i} " * 40 for i in range(60)])  # ~20 KB: a group of its own
    write_stories(tmp_path / "b.txt", ["bee"])
    write_stories(tmp_path / "c.txt", ["sea"])
    texts = [f"row {i} " + "x" * (i % 97) if i % 11 else "" for i in range(3000)]
    pl.DataFrame({"text": texts}).write_parquet(tmp_path / "d.parquet", row_group_size=500)
    paths = [tmp_path / n for n in ("a.txt", "b.txt", "c.txt", "d.parquet")]
    whole = ingest(Store(tmp_path / "whole"), paths, "d").dataset
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 5_000)
    groups = ingest_mod.plan(paths, ["text", "text", "text", "parquet"], ["a", "b", "c", "d"])
    # A file of GROUP_BYTES or more is alone, small ones are packed, the Parquet file splits into runs.
    assert [[(Path(p.path).name, p.row_groups) for p in g] for g in groups] == [
        [("a.txt", None)],
        [("b.txt", None), ("c.txt", None)],
        [("d.parquet", (0, 3))],
        [("d.parquet", (3, 6))],
    ]
    assert groups[3][0].continues and not groups[2][0].continues
    assert sum(p.bytes for g in groups for p in g) == sum(f.stat().st_size for f in paths)
    split = ingest(Store(tmp_path / "split"), paths, "d").dataset
    # The same version and rows (ids count on across the row-group runs); only where parts end differs.
    assert split.ref == whole.ref and split.read().equals(whole.read())
    assert len(whole.parts) == 1 and len(split.parts) == len(groups) == 4
    assert split.read()[ID].to_list()[-1] == f"d:{3000 - len(range(0, 3000, 11)) - 1}"
