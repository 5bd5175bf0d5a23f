"""The store: round trip, content addressing, refs, lineage, atomic publish and crash debris."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from datadiet.errors import DatadietError, RefError, UsageError
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, ID, MANIFEST_FILE, SOURCE_ID, TEXT
from datadiet.store import PartWriter, Store, file_sha256, lineage


def _frame(n: int, prefix: str = "d") -> pl.DataFrame:
    return pl.DataFrame({ID: [f"{prefix}{i}" for i in range(n)], TEXT: [f"story number {i}" for i in range(n)]})


def _commit(store: Store, name: str = "a", params: dict | None = None, n: int = 5, parents: list[str] | None = None):
    def build(w: PartWriter) -> dict:
        w.write(_frame(n))
        return {"written": n}

    return store.commit(
        name, operation="test", params=params or {"seed": 1}, parents=parents or ["file:sha256:00"], build=build
    )


def test_round_trip_conforms_schema_and_records_manifest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    commit = _commit(store)
    assert not commit.up_to_date
    ds = store.resolve("a")
    frame = ds.read()
    assert frame.columns == [ID, TEXT, SOURCE_ID, COPY_INDEX, EDIT_FRACTION]
    assert frame[SOURCE_ID].to_list() == frame[ID].to_list()
    assert frame[COPY_INDEX].to_list() == [0] * 5
    m = json.loads((ds.path / MANIFEST_FILE).read_text())
    assert m["rows"] == 5 and m["seed"] == 1 and m["stats"] == {"written": 5}
    assert m["params"] == {"seed": 1} and m["parents"] == ["file:sha256:00"] and m["operation"] == "test"
    for rel, digest in m["files"].items():
        assert file_sha256(ds.path / rel) == digest
    assert m["bytes"] == sum((ds.path / rel).stat().st_size for rel in m["files"])


def test_same_operation_is_up_to_date_and_does_not_rewrite(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = _commit(store)
    mtimes = {p: p.stat().st_mtime_ns for p in first.dataset.path.iterdir()}
    calls = []
    second = store.commit(
        "a", operation="test", params={"seed": 1}, parents=["file:sha256:00"], build=lambda w: calls.append(1)
    )
    assert second.up_to_date and second.dataset.version == first.dataset.version and calls == []
    assert {p: p.stat().st_mtime_ns for p in first.dataset.path.iterdir()} == mtimes
    other = _commit(store, params={"seed": 2})
    assert other.dataset.version != first.dataset.version


def test_version_id_ignores_param_order_but_not_values(tmp_path: Path) -> None:
    store = Store(tmp_path)
    v1 = store.version_id(operation="x", params={"a": 1, "b": 2}, parents=["p"])
    v2 = store.version_id(operation="x", params={"b": 2, "a": 1}, parents=["p"])
    v3 = store.version_id(operation="x", params={"a": 1, "b": 3}, parents=["p"])
    v4 = store.version_id(operation="x", params={"a": 1, "b": 2}, parents=["q"])
    assert v1 == v2 and len({v1, v3, v4}) == 3


def test_refs_newest_prefix_ambiguous_unknown(tmp_path: Path) -> None:
    store = Store(tmp_path)
    versions = [_commit(store, params={"seed": s}).dataset.version for s in range(40)]
    assert store.resolve("a").version == versions[-1]
    assert store.resolve(f"a@{versions[3][:10]}").version == versions[3]
    # 40 versions over 16 hex digits: some one-character prefix is shared by two of them.
    first_chars = [v[0] for v in versions]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)
    with pytest.raises(RefError, match="ambiguous") as exc:
        store.resolve(f"a@{shared}")
    assert all(f"a@{v}" in str(exc.value) for v in versions if v[0] == shared)
    with pytest.raises(RefError, match="no dataset named 'zzz'"):
        store.resolve("zzz")
    absent = next(p for p in ("0000", "ffff", "abcd", "1234") if not any(v.startswith(p) for v in versions))
    with pytest.raises(RefError, match=f"no version starting with '{absent}'"):
        store.resolve(f"a@{absent}")
    with pytest.raises(RefError, match="invalid ref 'a@xyz'"):  # a version is hex digits
        store.resolve("a@xyz")


def test_failed_build_leaves_no_version_and_no_debris(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def build(w: PartWriter) -> dict:
        w.write(_frame(3))
        raise DatadietError("boom")

    with pytest.raises(DatadietError, match="boom"):
        store.commit("a", operation="test", params={}, parents=[], build=build)
    assert store.all() == []
    assert list((tmp_path / ".tmp").iterdir()) == []


_KILLED_WRITER = """
import os, sys
import polars as pl
from datadiet.store import Store

def build(w):
    w.write(pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"]}))
    os._exit(9)  # a crash in the middle of a write: no cleanup, no finally blocks

Store(sys.argv[1]).commit("a", operation="test", params={}, parents=[], build=build)
"""


def test_crash_mid_write_is_invisible_and_rerun_completes(tmp_path: Path) -> None:
    # polars' thread pool is not fork-safe, so the crashing writer is a fresh interpreter.
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], env=_env(), check=False)
    assert proc.returncode == 9
    store = Store(tmp_path)
    assert store.all() == []
    assert len(list((tmp_path / ".tmp").iterdir())) == 1  # debris only where `curate gc` looks
    commit = store.commit("a", operation="test", params={}, parents=[], build=lambda w: w.write(_frame(3)))
    assert not commit.up_to_date and store.resolve("a").rows == 3


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_folder_without_manifest_is_not_a_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (tmp_path / "datasets" / "ghost" / "abc").mkdir(parents=True)
    assert store.all() == [] and store.names() == []
    with pytest.raises(RefError):
        store.resolve("ghost")


def test_lineage_walks_back_to_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    base = _commit(store, "base", parents=["file:sha256:ab"]).dataset
    child = _commit(store, "child", parents=[base.ref]).dataset
    chain = lineage(store, child.ref)
    assert [e["ref"] for e in chain] == [child.ref, base.ref, "file:sha256:ab"]
    assert store.children(base.ref)[0].ref == child.ref


def test_large_frames_are_split_into_bounded_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("datadiet.store.parts.MAX_PART_ROWS", 10)
    store = Store(tmp_path)
    ds = store.commit("a", operation="t", params={}, parents=[], build=lambda w: w.write(_frame(25))).dataset
    assert [p.name for p in ds.parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert ds.read()[ID].to_list() == [f"d{i}" for i in range(25)]


def test_invalid_name_and_unwritable_store(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid name"):
        _commit(Store(tmp_path), name="../evil")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DatadietError, match="cannot write to store"):
        _commit(Store(blocker / "store"))


def test_disk_full_is_reported_and_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def build(w: PartWriter) -> dict:
        w.write(_frame(2))
        raise OSError(28, "No space left on device")

    with pytest.raises(DatadietError, match="no space left"):
        store.commit("a", operation="t", params={}, parents=[], build=build)
    assert store.all() == [] and list((tmp_path / ".tmp").iterdir()) == []


def test_gc_work_folders_published_vs_interrupted(tmp_path: Path) -> None:
    from datadiet.store import LOCK_DIR, work_folders

    store = Store(tmp_path)
    run = store.commit(
        "r", operation="train", params={}, parents=[], build=lambda w: w.write_file("x", b"1"), kind="runs"
    ).dataset
    leftover = tmp_path / "work" / "runs" / f"r-{run.version}"
    interrupted = tmp_path / "work" / "runs" / "r-0123456789abcdef"
    live = tmp_path / "work" / "runs" / "r-fedcba9876543210"
    failed = tmp_path / "work" / "runs" / "r-00000000000000ff"  # died before its first checkpoint
    for folder in (leftover, interrupted, live, failed):
        folder.mkdir(parents=True)
    for folder in (interrupted, live):
        (folder / "checkpoint.pt").write_bytes(b"resumable")
    with store.lock("runs-r-fedcba9876543210"):
        assert (tmp_path / LOCK_DIR / "runs-r-fedcba9876543210.lock").exists()
        assert work_folders(store) == ([failed, leftover], [interrupted])
    assert work_folders(store) == ([failed, leftover], [interrupted, live])
