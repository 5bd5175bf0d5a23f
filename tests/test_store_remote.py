"""A store on a pyarrow filesystem (object storage): publish order, read-through cache, debris, corruption, CLI.

No network: pyarrow's in-memory `_MockFileSystem` (through `Store(..., filesystem=)`, optionally behind a
wrapper that records or fails writes) and `file:///` URIs (through `FileSystem.from_uri`, the code path
`s3://` and `gs://` take).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.errors import DatadietError, UsageError
from datadiet.schema import ID, MANIFEST_FILE, TEXT
from datadiet.store import (
    UPLOAD_DIR,
    PartWriter,
    Store,
    is_uri,
    lineage,
    remote_debris,
    remove,
    stale_cache,
    unreferenced,
    verify,
)
from tests.helpers import cli, write_stories

BASE = "bucket/store"


class Recording(pafs.FileSystemHandler):
    """Delegates to an in-memory filesystem, recording writes and reads; optionally fails the Nth write."""

    def __init__(self, inner: pafs.FileSystem, fail_at: int | None = None) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.writes: list[str] = []
        self.moves: list[tuple[str, str]] = []
        self.reads: list[str] = []

    def get_type_name(self) -> str:
        return "recording"

    def normalize_path(self, path: str) -> str:
        return str(self.inner.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        self.inner.delete_dir_contents("", accept_root_dir=True)

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.moves.append((src, dest))
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        self.reads.append(path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        self.reads.append(path)
        return self.inner.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        self.writes.append(path)
        if self.fail_at is not None and len(self.writes) >= self.fail_at:
            raise OSError(f"injected failure writing {path}")
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.inner.open_append_stream(path, metadata=metadata)


def _frame(n: int, prefix: str = "d") -> pl.DataFrame:
    return pl.DataFrame({ID: [f"{prefix}{i}" for i in range(n)], TEXT: [f"story number {i}" for i in range(n)]})


def _build(n: int = 5, extra: bytes = b"side file") -> Any:
    def build(w: PartWriter) -> dict[str, int]:
        w.write(_frame(n))
        w.write_file("extra/side.bin", extra)
        return {"written": n}

    return build


def _commit(store: Store, name: str = "a", seed: int = 1, n: int = 5, parents: list[str] | None = None) -> Any:
    return store.commit(
        name, operation="test", params={"seed": seed}, parents=parents or ["file:sha256:00"], build=_build(n)
    )


def _remote_files(fs: pafs.FileSystem, base: str = BASE) -> list[str]:
    found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(i.path[len(base) + 1 :] for i in found if i.type == pafs.FileType.File)


@pytest.fixture
def mock() -> pafs.FileSystem:
    return pafs._MockFileSystem()


def test_uri_detection() -> None:
    assert [is_uri(u) for u in ("s3://b/p", "gs://b", "hdfs://h/p", "file:///x", "abfs://c/p")] == [True] * 5
    assert [is_uri(u) for u in ("C://x", "/abs/dir", "rel/dir", "file:rel", Path("s3://b"))] == [False] * 5


def test_commit_publishes_files_then_manifest_last(mock: pafs.FileSystem, tmp_path: Path) -> None:
    rec = Recording(mock)
    store = Store(BASE, filesystem=pafs.PyFileSystem(rec), cache=tmp_path / "cache")
    ds = _commit(store).dataset
    key = f"{BASE}/datasets/a/{ds.version}"
    # Not an object store, so the manifest goes to a temporary name and is moved into place: last of all.
    assert sorted(rec.writes[:-1]) == [f"{key}/extra/side.bin", f"{key}/part-00000.parquet"]
    assert rec.writes[-1].startswith(f"{key}/{MANIFEST_FILE}.") and rec.moves == [
        (rec.writes[-1], f"{key}/{MANIFEST_FILE}")
    ]
    assert _remote_files(mock) == [
        f"datasets/a/{ds.version}/{f}" for f in ("extra/side.bin", MANIFEST_FILE, "part-00000.parquet")
    ]
    remote_manifest = json.loads(mock.open_input_stream(f"{key}/{MANIFEST_FILE}").read())
    assert remote_manifest == ds.manifest.to_dict() and remote_manifest["stats"] == {"written": 5}
    assert ds.location == f"recording://{key}" and store.location == f"recording://{BASE}"
    # The builder's files became this machine's cached copy: nothing is downloaded to read them.
    assert ds.read()[ID].to_list() == [f"d{i}" for i in range(5)]
    assert [p for p in rec.reads if not p.endswith(MANIFEST_FILE)] == []
    assert sorted(p.relative_to(ds.folder).as_posix() for p in ds.folder.rglob("*") if p.is_file()) == [
        "extra/side.bin",
        MANIFEST_FILE,
        "part-00000.parquet",
    ]
    assert not list((tmp_path / "cache" / ".tmp").iterdir()) and not list((tmp_path / "cache" / UPLOAD_DIR).iterdir())


def test_round_trip_refs_lineage_verify_and_up_to_date(mock: pafs.FileSystem, tmp_path: Path) -> None:
    store = Store(BASE, filesystem=mock, cache=tmp_path / "c")
    first = _commit(store)
    child = _commit(store, "b", parents=[first.dataset.ref])
    calls: list[int] = []
    again = store.commit(
        "a", operation="test", params={"seed": 1}, parents=["file:sha256:00"], build=lambda w: calls.append(1)
    )
    assert again.up_to_date and again.dataset.ref == first.dataset.ref and calls == []
    assert store.names() == ["a", "b"] and [d.ref for d in store.versions("a")] == [first.dataset.ref]
    assert store.resolve(f"a@{first.dataset.version[:6]}").ref == first.dataset.ref
    assert [e["ref"] for e in lineage(store, "b")] == [child.dataset.ref, first.dataset.ref, "file:sha256:00"]
    assert [r["ok"] for r in verify(store)] == [True, True]
    assert store.children(first.dataset.ref) == [child.dataset]
    with pytest.raises(DatadietError, match=f"no dataset named 'zz' in store mock://{BASE}"):
        store.resolve("zz")


def test_fresh_cache_sees_versions_and_fetches_only_what_is_read(mock: pafs.FileSystem, tmp_path: Path) -> None:
    writer = Store(BASE, filesystem=mock, cache=tmp_path / "c1")
    made = _commit(writer, n=7).dataset
    rec = Recording(mock)
    reader = Store(BASE, filesystem=pafs.PyFileSystem(rec), cache=tmp_path / "c2")
    ds = reader.resolve("a")
    assert ds.ref == made.ref and ds.manifest == made.manifest
    assert ds.read().equals(made.read()) and ds.read()[ID].to_list() == [f"d{i}" for i in range(7)]
    data_reads = [p.rsplit("/", 1)[1] for p in rec.reads if not p.endswith(MANIFEST_FILE)]
    assert data_reads == ["part-00000.parquet"]  # the side file is not needed to scan rows
    assert not (ds.folder / "extra" / "side.bin").exists()
    assert ds.file("extra/side.bin").read_bytes() == b"side file"
    assert ds.file("not-in-manifest.txt") == ds.folder / "not-in-manifest.txt"
    assert {p.name for p in ds.path.rglob("*") if p.is_file()} == {"side.bin", MANIFEST_FILE, "part-00000.parquet"}
    # A second resolve uses the cached manifest (same size and mtime as the remote one): no download at all.
    rec.reads.clear()
    assert reader.resolve("a").read().equals(made.read()) and rec.reads == []


def test_republished_version_refreshes_cached_manifest_and_files(tmp_path: Path) -> None:
    # file:// rather than the mock, whose clock stands still: the cached manifest is keyed by mtime and size.
    a = Store(f"file://{tmp_path}/remote", cache=tmp_path / "ca")
    b = Store(f"file://{tmp_path}/remote", cache=tmp_path / "cb")
    old = _commit(a, n=3).dataset
    assert a.resolve("a").read().height == 3
    remove(b, [b.resolve("a")])
    assert a.versions("a") == []
    # Same id, other content (a non-deterministic build): the reader must not serve its stale copy.
    new = b.commit("a", operation="test", params={"seed": 1}, parents=["file:sha256:00"], build=_build(4)).dataset
    assert new.ref == old.ref
    assert a.resolve("a").read()[ID].to_list() == ["d0", "d1", "d2", "d3"]


def test_interrupted_upload_is_never_a_version_and_gc_removes_it(mock: pafs.FileSystem, tmp_path: Path) -> None:
    flaky = Store(BASE, filesystem=pafs.PyFileSystem(Recording(mock, fail_at=2)), cache=tmp_path / "c")
    with pytest.raises(
        DatadietError, match=r"cannot upload to recording://bucket/store/datasets/a/.*injected failure"
    ):
        _commit(flaky)
    debris = _remote_files(mock)
    assert len(debris) == 1 and MANIFEST_FILE not in debris[0]  # one data file landed, no manifest
    version = debris[0].split("/")[2]
    assert flaky.versions("a") == [] and flaky.names() == []
    other = Store(BASE, filesystem=mock, cache=tmp_path / "other")
    assert other.versions("a") == [] and verify(other) == []
    # Another machine cannot tell a dead upload from a running one: it waits a day before deleting.
    url = f"mock://{BASE}/datasets/a/{version}"
    assert remote_debris(other) == ([], [url]) and remote_debris(other, older_than_s=0) == ([url], [])
    # This machine knows its upload died (marker left, lock free): gc may delete it now.
    assert (tmp_path / "c" / UPLOAD_DIR / f"datasets-a-{version}").exists()
    mine = Store(BASE, filesystem=mock, cache=tmp_path / "c")
    stale, recent = remote_debris(mine)
    assert stale == [url] and recent == []
    remove(mine, stale)
    assert _remote_files(mock) == [] and list((tmp_path / "c" / UPLOAD_DIR).iterdir()) == []
    assert not _commit(mine).up_to_date and [r["ok"] for r in verify(mine)] == [True]


def test_retry_after_interrupted_upload_replaces_the_debris(mock: pafs.FileSystem, tmp_path: Path) -> None:
    flaky = Store(BASE, filesystem=pafs.PyFileSystem(Recording(mock, fail_at=2)), cache=tmp_path / "c")
    with pytest.raises(DatadietError):
        _commit(flaky)
    version = _remote_files(mock)[0].split("/")[2]
    # An unrelated leftover file in the folder (never a version) is removed before the retry uploads.
    with mock.open_output_stream(f"{BASE}/datasets/a/{version}/part-00009.parquet") as f:
        f.write(b"junk")
    store = Store(BASE, filesystem=mock, cache=tmp_path / "c")
    ds = _commit(store).dataset
    assert ds.version == version and [r["problems"] for r in verify(store)] == [[]]
    assert remote_debris(store) == ([], []) and stale_cache(store) == []  # the marker went with the upload


def test_corrupted_remote_file_is_caught_by_verify_and_by_download(mock: pafs.FileSystem, tmp_path: Path) -> None:
    ds = _commit(Store(BASE, filesystem=mock, cache=tmp_path / "c1")).dataset
    part = f"{BASE}/datasets/a/{ds.version}/part-00000.parquet"
    good = mock.open_input_stream(part).read()
    with mock.open_output_stream(part) as f:
        f.write(good[:-9] + b"corrupted")
    with mock.open_output_stream(f"{BASE}/datasets/a/{ds.version}/stray.txt") as f:
        f.write(b"?")
    reader = Store(BASE, filesystem=mock, cache=tmp_path / "c2")
    (result,) = verify(reader)
    assert result["problems"] == ["unexpected file stray.txt", "hash mismatch in part-00000.parquet"]
    with pytest.raises(DatadietError, match=r"part-00000.parquet differs from its manifest \(sha256 mismatch\)"):
        reader.resolve("a").read()
    folder = reader.resolve("a").folder
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE]  # nothing unverified was kept


def test_corrupted_cached_copy_is_reported_and_fetched_again(mock: pafs.FileSystem, tmp_path: Path) -> None:
    store = Store(BASE, filesystem=mock, cache=tmp_path / "c")
    ds = _commit(store).dataset
    expected = ds.read()
    (ds.folder / "extra" / "side.bin").write_bytes(b"rotted")
    (result,) = verify(store)
    assert len(result["problems"]) == 1 and result["problems"][0].startswith("cached copy of extra/side.bin in ")
    assert not (ds.folder / "extra" / "side.bin").exists()
    assert ds.file("extra/side.bin").read_bytes() == b"side file" and ds.read().equals(expected)
    assert [r["ok"] for r in verify(store)] == [True]


def test_gc_removes_unreferenced_versions_remotely_and_prunes_other_caches(
    mock: pafs.FileSystem, tmp_path: Path
) -> None:
    store = Store(BASE, filesystem=mock, cache=tmp_path / "c1")
    old = _commit(store, seed=1).dataset
    new = _commit(store, seed=2).dataset
    elsewhere = Store(BASE, filesystem=mock, cache=tmp_path / "c2")
    assert elsewhere.resolve(old.ref).read().height == 5  # cached on the other machine too
    assert unreferenced(store) == [old]
    remove(store, unreferenced(store))
    assert [d.ref for d in store.versions("a")] == [new.ref]
    assert not any(f.startswith(f"datasets/a/{old.version}") for f in _remote_files(mock))
    assert not old.folder.exists()
    stale = stale_cache(elsewhere)
    assert stale == [elsewhere.root / "datasets" / "a" / old.version]
    remove(elsewhere, stale)
    assert stale_cache(elsewhere) == [] and not stale[0].exists()
    with pytest.raises(DatadietError, match="refusing to delete"):
        remove(store, [f"mock://{BASE}/datasets/a/{new.version}"])  # published: not debris


def test_store_options_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot open store foo://x/y: Unrecognized filesystem") as exc:
        Store("foo://x/y", cache=tmp_path / "c")
    assert "\n" not in str(exc.value)
    with pytest.raises(UsageError, match="cannot open store file://relative/x"):
        Store("file://relative/x", cache=tmp_path / "c")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatadietError, match=f"store file://{tmp_path}/f is a file"):
        Store(f"file://{tmp_path}/f", cache=tmp_path / "c")


def test_cache_location_defaults_under_datadiet_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "caches"))
    monkeypatch.setenv("DATADIET_STORE", f"file://{tmp_path}/remote")
    one, two = Store(), Store(f"file://{tmp_path}/remote/")
    other = Store(f"file://{tmp_path}/elsewhere?x=1")
    assert one.root == two.root and one.root.parent == tmp_path / "caches" and len(one.root.name) == 16
    assert other.root != one.root and other.location == f"file://{tmp_path}/elsewhere"
    local = Store(str(tmp_path / "plain"))
    assert local.remote is None and local.root == tmp_path / "plain" and local.location == str(tmp_path / "plain")


@pytest.mark.slow
def test_cli_end_to_end_on_a_file_uri_store(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"file://{tmp_path}/remote/store"
    monkeypatch.setenv("DATADIET_STORE", uri)
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))
    src = write_stories(tmp_path / "tiny.txt", ["Tom had a red ball.", "Sue saw a big dog.", "Tom had a red ball."])
    made = cli(runner, "ingest", str(src), "--name", "tiny")
    assert made["rows"] == 3 and made["path"] == f"{uri}/datasets/tiny/{made['version']}"
    corpus = cli(runner, "corpus", "--stories", "200", "--val-stories", "40", "--name", "c")
    assert (corpus["train"]["rows"], corpus["val"]["rows"]) == (200, 40)
    dedup = cli(runner, "dedupe", "c-train", "--name", "c-dd")
    dup = cli(runner, "duplicate", "c-dd", "--rate", "0.2", "--name", "c-dup")
    sub = cli(runner, "subset", "c-dup", "--fraction", "0.5", "--name", "c-sub")
    assert dup["rows"] == dedup["rows"] and sub["rows"] == dedup["rows"] // 2
    clusters = cli(runner, "clusters", "c-dd", "--top", "1")  # reads clusters.parquet of the remote version
    assert clusters["ref"] == dedup["ref"] and clusters["stats"]["removed"] == 200 - dedup["rows"]
    stats = cli(runner, "stats", "c-sub")
    assert stats["ref"] == sub["ref"] and stats["stats"]["documents"] == sub["rows"]
    # The same commands on a local store give the same versions, row for row.
    local = str(tmp_path / "local")
    for args in (
        ["corpus", "--stories", "200", "--val-stories", "40", "--name", "c"],
        ["dedupe", "c-train", "--name", "c-dd"],
        ["duplicate", "c-dd", "--rate", "0.2", "--name", "c-dup"],
        ["subset", "c-dup", "--fraction", "0.5", "--name", "c-sub"],
    ):
        cli(runner, *args, "--store", local)
    for ref in (dedup["ref"], dup["ref"], sub["ref"]):
        assert Store(local).resolve(ref).read().equals(Store(uri).resolve(ref).read())
    refs = [r["ref"] for r in cli(runner, "ls")]
    assert refs == [dedup["ref"], dup["ref"], sub["ref"], corpus["train"]["ref"], corpus["val"]["ref"], made["ref"]]
    assert cli(runner, "show", "tiny")["rows"] == 3
    assert [r["text"] for r in cli(runner, "head", "tiny", "-n", "2")] == ["Tom had a red ball.", "Sue saw a big dog."]
    chain = cli(runner, "lineage", "c-sub")
    assert [e["ref"] for e in chain[:4]] == [sub["ref"], dup["ref"], dedup["ref"], corpus["train"]["ref"]]
    tok = cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    assert tok["stats"]["vocab_size"] == 300
    run = cli(
        runner,
        "train",
        "c-sub",
        "--val",
        "c-val",
        "--tokenizer",
        "c-train",
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--set",
        "threads=1",
    )
    assert run["stats"]["train"]["steps"] == 3 and run["path"] == f"{uri}/runs/c-sub/{run['version']}"
    checked = cli(runner, "verify")
    assert checked["bad"] == [] and checked["checked"] == len(refs) + 5  # + stats, tokenizer, 2 token files, run

    # Debris: an upload this machine began and that died (marker left), and one of another machine's.
    remote_root = tmp_path / "remote" / "store" / "datasets"
    for version in ("0000000000000001", "0000000000000002"):
        (remote_root / "tiny" / version).mkdir()
        (remote_root / "tiny" / version / "part-00000.parquet").write_bytes(b"half")
    (cache_root,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    (cache_root / UPLOAD_DIR / "datasets-tiny-0000000000000001").write_text("")
    swept = cli(runner, "gc")
    assert swept["removed_tmp"] == [f"{uri}/datasets/tiny/0000000000000001"]
    assert swept["kept_recent_uploads"] == [f"{uri}/datasets/tiny/0000000000000002"]
    assert swept["removed_versions"] == [] and swept["pruned_cache"] == []

    # A second machine (empty cache) sees every version and reads identical rows and files.
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache2"))
    assert [r["ref"] for r in cli(runner, "ls")] == refs
    assert cli(runner, "head", "c-sub", "-n", "200") == cli(runner, "head", sub["ref"], "-n", "200")
    assert Store(uri).resolve("c-sub").read().equals(Store(uri, cache=tmp_path / "cache").resolve("c-sub").read())
    scored = cli(runner, "eval", run["ref"], "--max-tokens", "1024")
    assert scored["metrics"]["eval_tokens"] == 1024
    assert cli(
        runner, "train", "c-sub", "--val", "c-val", "--tokenizer", "c-train", "--preset", "tiny", "--steps", "3"
    )["up_to_date"]
    runs = cli(runner, "runs")
    assert [r["ref"] for r in runs] == [run["ref"]]

    # Bad store URIs: one line, no traceback.
    for store, code, message in [
        ("foo://x/y", 2, "cannot open store foo://x/y: Unrecognized filesystem type"),
        (f"file://{src}", 1, f"store file://{src} is a file, not a folder"),
    ]:
        result = runner.invoke(app, ["ls", "--store", store])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == code and len(lines) == 1 and message in lines[0], result.stderr
