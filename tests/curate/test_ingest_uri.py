"""Ingest from URIs (`file:///…`, an in-memory pyarrow filesystem): the same versions and rows as from local paths.

No network: `file://` goes through `pyarrow.fs` exactly as `s3://` or `gs://` would (listing,
`open_input_stream`, `open_input_file`), so these tests cover the remote code path end to end.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

import datadiet.curate.ingest.read as ingest_mod
from datadiet.cli import app
from datadiet.curate.ingest.op import IngestConfig, ingest
from datadiet.errors import InputError
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, Store
from tests.helpers import write_stories

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder of every format: text with separators, JSONL (.gz), .zst-free JSONL, 6-row-group Parquet, a subfolder."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_stories(root / "a.txt", ["  first story ", "", "second\nline two", "third"])
    with gzip.open(root / "b.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps({"text": f"jsonl story {i}"}) + "\n" for i in range(5)))
    (root / "sub" / "c.jsonl").write_text(json.dumps({"text": "nested"}) + "\n")
    texts = [f"row {i} " + "x" * (i % 37) if i % 7 else " " for i in range(600)]
    pl.DataFrame({"text": texts}).write_parquet(root / "d.parquet", row_group_size=100)
    (root / "notes.md").write_text("not an input")
    return root


def _same(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params and a.manifest.parents == b.manifest.parents
    assert a.manifest.files == b.manifest.files
    assert a.manifest.stats == b.manifest.stats
    assert a.read().equals(b.read())


def test_folder_uri_equals_local_folder(corpus: Path, tmp_path: Path) -> None:
    local = ingest(Store(tmp_path / "local"), [corpus], "web").dataset
    remote = ingest(Store(tmp_path / "uri"), [corpus.as_uri() + "/"], "web").dataset
    _same(local, remote)
    ids = remote.read()[ID].to_list()
    assert remote.rows == 3 + 5 + 600 - len(range(0, 600, 7)) + 1
    assert ids[:4] == ["a:0", "a:1", "a:2", "b:0"] and ids[-1] == "c:0"
    assert remote.read()[TEXT].to_list()[:3] == ["first story", "second\nline two", "third"]
    assert [f["path"] for f in remote.manifest.stats["files"]] == [
        str(corpus / n) for n in ("a.txt", "b.jsonl.gz", "d.parquet", "sub/c.jsonl")
    ]
    # One store: the URI of the files already ingested from disk is the same version.
    store = Store(tmp_path / "local")
    assert ingest(store, [corpus.as_uri()], "web").up_to_date


def test_glob_uri_equals_local_glob(corpus: Path, tmp_path: Path) -> None:
    local = ingest(Store(tmp_path / "local"), [str(corpus / "[abd].*")], "g").dataset
    remote = ingest(Store(tmp_path / "uri"), [corpus.as_uri() + "/[abd].*"], "g").dataset
    _same(local, remote)
    assert [f["documents"] for f in remote.manifest.stats["files"]] == [3, 5, 600 - len(range(0, 600, 7))]
    deep = ingest(Store(tmp_path / "uri"), [corpus.as_uri() + "/**/*.jsonl*"], "deep").dataset
    assert deep.read()[TEXT].to_list() == [*(f"jsonl story {i}" for i in range(5)), "nested"]


@pytest.mark.parametrize("fname", ["a.txt", "b.jsonl.gz", "d.parquet"])
def test_single_file_uri_equals_local(corpus: Path, tmp_path: Path, fname: str) -> None:
    local = ingest(Store(tmp_path / "local"), [corpus / fname], "one").dataset
    remote = ingest(Store(tmp_path / "uri"), [(corpus / fname).as_uri()], "one").dataset
    _same(local, remote)


def test_parquet_split_into_row_group_runs(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small groups: the Parquet object's footer is read through pyarrow.fs and split into runs.
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 1)  # every row group a run of its own
    monkeypatch.setattr(ingest_mod, "BATCH_BYTES", 100_000)
    src = ingest_mod.expand_inputs([(corpus / "d.parquet").as_uri()])
    groups = ingest_mod.plan(src, ["parquet"], ["d"])
    assert [g[0].row_groups for g in groups] == [(i, i + 1) for i in range(6)]
    assert groups[0][0].filesystem is not None
    local = ingest(Store(tmp_path / "local"), [corpus / "d.parquet"], "p").dataset
    remote = ingest(Store(tmp_path / "uri"), [(corpus / "d.parquet").as_uri()], "p").dataset
    _same(local, remote)
    assert len(remote.parts) == 6  # one per run: a run always ends a part


def test_uri_errors_are_one_line(corpus: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    missing = (tmp_path / "nope.jsonl").as_uri()
    with pytest.raises(InputError, match=f"^{re.escape(missing)}: no such file or folder$"):
        ingest(store, [missing], "d")
    with pytest.raises(InputError, match=r"no files match .*check the pattern"):
        ingest(store, [corpus.as_uri() + "/*.nothing"], "d")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder holds no"):
        ingest(store, [(tmp_path / "empty").as_uri()], "d")
    with pytest.raises(InputError, match=r"^zz://x/y: cannot open \(.*\); check the URI"):
        ingest(store, ["zz://x/y"], "d")
    with pytest.raises(InputError, match="wildcards go in the path"):
        ingest(store, ["s3://buck*/a.txt"], "d")
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a"}\n{"text": oops\n'))
    bad = (tmp_path / "bad.jsonl.gz").as_uri()
    with pytest.raises(InputError, match=f"^{re.escape(bad)}: line 2 is not valid JSON"):
        ingest(store, [bad], "d")
    assert store.all() == []
    result = CliRunner().invoke(app, ["ingest", missing, "--name", "d", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {missing}: no such file or folder"]


def test_in_memory_filesystem(corpus: Path, tmp_path: Path) -> None:
    fs = pafs._MockFileSystem()
    fs.create_dir("in/sub")
    for rel in ("a.txt", "b.jsonl.gz", "d.parquet", "sub/c.jsonl"):
        with fs.open_output_stream(f"in/{rel}", compression=None) as out:
            out.write((corpus / rel).read_bytes())
    mem = ingest(Store(tmp_path / "mem"), ["in"], "m", filesystem=fs).dataset
    local = ingest(Store(tmp_path / "local"), [corpus], "m").dataset
    assert mem.read().equals(local.read())
    assert mem.manifest.parents == local.manifest.parents
    # The objects are named by the filesystem's scheme, so the version differs from the local files'.
    assert [s["path"] for s in mem.manifest.params["sources"]][:2] == ["mock://in/a.txt", "mock://in/b.jsonl.gz"]
    assert mem.ref != local.ref


@pytest.mark.slow
def test_ray_engine_on_file_uris(
    ray_cluster: None, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small groups and batches (a split Parquet object, packed small files, several parts) and the
    # hashing done in Ray tasks on the URIs' objects (from 1 GiB on otherwise).
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 1_000)
    monkeypatch.setattr(ingest_mod, "BATCH_BYTES", 2_000)
    monkeypatch.setattr(ingest_mod, "HASH_LOCAL_BYTES", 0)
    local = ingest(Store(tmp_path / "local"), [corpus], "web").dataset
    remote = ingest(Store(tmp_path / "ray"), [corpus.as_uri() + "/"], "web", engine="ray").dataset
    _same(local, remote)
    assert len(remote.parts) >= 6
    missing = (tmp_path / "nope").as_uri()
    with pytest.raises(InputError, match="no such file or folder"):
        ingest(Store(tmp_path / "ray"), [missing], "web", engine="ray")
    cfg = IngestConfig(text_field="body")
    with pytest.raises(InputError, match=r"b\.jsonl\.gz: line 1 has no field 'body'"):
        ingest(Store(tmp_path / "ray"), [corpus.as_uri() + "/*.jsonl.gz"], "bad", cfg, engine="ray")


def test_a_failing_backend_is_the_inputs_one_line(tmp_path: Path) -> None:
    # Inputs are listed through the store's remote backend (store.remote.Remote), whose failures are
    # worded as the input's: the path as given, the backend's first line, exit 2 -- not the store's.
    fsspec = pytest.importorskip("fsspec")
    from fsspec.implementations.memory import MemoryFileSystem

    class Down(MemoryFileSystem):  # type: ignore[misc]
        def info(self, path: str, **kwargs: object) -> dict[str, object]:
            raise OSError("backend down\nretried 3 times\nfrom 10.0.0.1")

    assert fsspec is not None
    down = pafs.PyFileSystem(pafs.FSSpecHandler(Down()))
    with pytest.raises(InputError) as err:
        ingest(Store(tmp_path / "s"), ["/corpus"], "d", filesystem=down)
    assert str(err.value) == "/corpus: cannot read (backend down); check the URI, your credentials and the network"
    assert err.value.exit_code == 2
