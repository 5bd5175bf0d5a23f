"""`--engine ray` with a store on object storage: the local engine's versions, and no data through the driver.

The store is a `file:///` URI, so it goes through pyarrow's filesystem API (the code path `s3://` and
`gs://` take) in the driver and in every Ray worker, which are separate processes. Each run uses a
fresh, empty cache, and on the driver the calls that read a part's rows (`PartSource.read`, the
cache's `_fetch`) raise: the workers read the input parts straight from the store and stage their
output there, so a run succeeds only if no data passes through the driver, and the cache then
holds no Parquet part. Each result must equal the local engine's on a local store (version ref and
manifest `files`, so the files are byte-identical). Uses the session's 2-CPU cluster (`ray_cluster`).
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import datadiet.curate.ingest.read as ingest_mod
from datadiet.cli import app
from datadiet.curate.dedupe.minhash import MinhashConfig
from datadiet.curate.dedupe.op import dedupe
from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
from datadiet.curate.ingest.op import ingest
from datadiet.curate.subset.op import SubsetConfig, subset
from datadiet.errors import DatadietError
from datadiet.eval.stats.compute import TYPE_TOKEN_RATIO, UNIGRAM_ENTROPY_BITS
from datadiet.eval.stats.op import stats_version
from datadiet.schema import ID, TEXT
from datadiet.store import UPLOAD_DIR, Dataset, PartSource, PartWriter, Store, remote_debris, remove, verify
from datadiet.store.remote import Remote as _Remote
from tests.helpers import write_stories

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"), pytest.mark.slow]

DOCS = 1500
PARTS = 3


def _texts(n: int = DOCS, seed: int = 0) -> list[str]:
    """Random documents; every 7th an exact copy of an earlier one, every 11th a near copy (one word changed)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(2000)])
    out: list[str] = []
    for i in range(n):
        if i >= 50 and i % 7 == 0:
            out.append(out[i - 30])
        elif i >= 50 and i % 11 == 0:
            words = out[i - 40].split()
            words[len(words) // 2] = "changed"
            out.append(" ".join(words))
        else:
            out.append(" ".join(vocab[rng.integers(0, vocab.size, int(rng.integers(30, 120)))]))
    return out


def _dataset(store: Store, texts: list[str], name: str = "docs") -> Dataset:
    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(len(texts)), PARTS):
            writer.write(pl.DataFrame({ID: [f"d{i:05d}" for i in chunk], TEXT: [texts[i] for i in chunk]}))
        return {}

    return store.commit(name, operation="test", params={"n": len(texts)}, parents=[], build=build).dataset


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _texts()


@pytest.fixture
def stores(tmp_path: Path, texts: list[str]) -> Iterator[tuple[Store, Store, str]]:
    """(local store, remote store seen through an empty cache, the input's ref in both)."""
    local = Store(tmp_path / "local")
    uri = f"file://{tmp_path}/bucket/store"
    ref = _dataset(local, texts).ref
    assert _dataset(Store(uri, cache=tmp_path / "writer-cache"), texts).ref == ref
    yield local, Store(uri, cache=tmp_path / "cache"), ref


@pytest.fixture
def no_driver_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a part's rows on the driver fails (Ray workers are other processes: not affected)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a part's data was read on the driver")

    monkeypatch.setattr(PartSource, "read", refuse)
    monkeypatch.setattr(PartSource, "read_bytes", refuse)
    monkeypatch.setattr(Store, "_fetch", refuse)


def _cached_parts(store: Store) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*.parquet") if p.name.startswith("part-"))


def _assert_same(local: Dataset, remote: Dataset) -> None:
    assert remote.ref == local.ref
    assert remote.manifest.files == local.manifest.files  # same hashes: byte-identical files
    assert remote.manifest.rows == local.manifest.rows
    assert remote.location.startswith("file://")
    assert remote.store is not None
    # Rehashed where they are: exactly the manifest's files (no staged leftovers), rows as recorded.
    assert verify(remote.store, remote.ref) == [{"ref": remote.ref, "kind": "datasets", "ok": True, "problems": []}]


def test_dedupe_verify(
    ray_cluster: None, stores: tuple[Store, Store, str], texts: list[str], no_driver_reads: None
) -> None:
    local, remote, ref = stores
    cfg = MinhashConfig(verify=True)
    a = dedupe(local, ref, cfg, workers=1).dataset
    b = dedupe(remote, ref, cfg, engine="ray").dataset
    _assert_same(a, b)
    strip = {k: v for k, v in b.manifest.stats.items() if k != "seconds"}
    assert strip == {k: v for k, v in a.manifest.stats.items() if k != "seconds"}
    # Every exact copy goes, and near copies too (verified on the texts, which never reach the driver).
    assert a.manifest.stats["removed_exact"] + a.manifest.stats["removed_near"] == DOCS - a.rows
    assert a.rows < len(set(texts))
    assert _cached_parts(remote) == []  # neither the input nor the output passed through this machine
    assert [p.name for p in (remote.root / UPLOAD_DIR).iterdir()] == []


def test_duplicate_near_then_subset(
    ray_cluster: None, stores: tuple[Store, Store, str], no_driver_reads: None
) -> None:
    local, remote, ref = stores
    cfg = DuplicateConfig(rate=0.5, pool=30, near=0.1, seed=4)
    a = duplicate(local, ref, cfg, workers=1).dataset
    b = duplicate(remote, ref, cfg, engine="ray").dataset
    _assert_same(a, b)
    assert b.manifest.stats == a.manifest.stats
    # The subset reads the parts the workers just staged and renamed on the store.
    sub = SubsetConfig(fraction=0.4, seed=2)
    c = subset(local, a.ref, sub).dataset
    d = subset(remote, b.ref, sub, engine="ray").dataset
    _assert_same(c, d)
    assert _cached_parts(remote) == []


def test_stats(ray_cluster: None, stores: tuple[Store, Store, str], texts: list[str], no_driver_reads: None) -> None:
    local, remote, ref = stores
    a = stats_version(local, local.resolve(ref))
    b = stats_version(remote, remote.resolve(ref), engine="ray")
    assert b.ref == a.ref and sorted(a.manifest.stats) == sorted(b.manifest.stats)
    for key, value in a.manifest.stats.items():
        if key in (UNIGRAM_ENTROPY_BITS, TYPE_TOKEN_RATIO):  # sums taken in another order on the cluster
            assert b.manifest.stats[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert b.manifest.stats[key] == value, key
    # (stats.json is not compared by hash: the entropy's per-partition sums vary in the last bit between runs.)
    assert _cached_parts(remote) == []


def test_ingest(ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_driver_reads: None) -> None:
    # Small groups and batches: several groups, a Parquet file split into continuation runs, many parts.
    monkeypatch.setattr(ingest_mod, "GROUP_BYTES", 20_000)
    monkeypatch.setattr(ingest_mod, "BATCH_BYTES", 3_000)
    rng = random.Random(3)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(300)]
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_stories(inputs / "a.txt", [" ".join(rng.choices(vocab, k=30)) for _ in range(200)])
    texts = [" ".join(rng.choices(vocab, k=25)) for _ in range(900)]
    pl.DataFrame({"text": texts}).write_parquet(inputs / "b.parquet", row_group_size=100)
    a = ingest(Store(tmp_path / "local"), [inputs], "mix").dataset
    remote = Store(f"file://{tmp_path}/bucket/store", cache=tmp_path / "cache")
    b = ingest(remote, [inputs], "mix", engine="ray").dataset
    _assert_same(a, b)
    assert len(b.manifest.files) >= 10 and b.rows == 1100
    assert _cached_parts(remote) == []


def test_worker_read_of_a_corrupted_part_fails_and_publishes_nothing(
    ray_cluster: None, stores: tuple[Store, Store, str], tmp_path: Path
) -> None:
    local, remote, ref = stores
    name, version = ref.split("@")
    part = tmp_path / "bucket" / "store" / "datasets" / name / version / "part-00001.parquet"
    good = part.read_bytes()
    part.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])  # in the data; the footer reads fine
    cfg = SubsetConfig(fraction=0.5, seed=1)
    with pytest.raises(DatadietError, match=r"part-00001\.parquet differs from its manifest"):
        subset(remote, ref, cfg, engine="ray", name="half")
    assert remote.versions("half") == []
    # From the command line the worker's error is one line, not Ray's wrapper with its traceback.
    out = CliRunner().invoke(
        app,
        [
            "subset",
            ref,
            "--fraction",
            "0.5",
            "--seed",
            "1",
            "--engine",
            "ray",
            "-n",
            "half",
            "--store",
            remote.location,
        ],
        env={"DATADIET_CACHE": str(tmp_path / "cli-cache")},
    )
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and out.output.startswith("error: ")
    assert "part-00001.parquet differs from its manifest" in out.output and "Traceback" not in out.output
    stale, recent = remote_debris(remote)
    assert recent == [] and all(u.startswith(f"file://{tmp_path}/bucket/store/datasets/half/") for u in stale)
    remove(remote, stale)
    part.write_bytes(good)
    _assert_same(
        subset(local, ref, cfg, name="half").dataset, subset(remote, ref, cfg, engine="ray", name="half").dataset
    )


def test_publish_failure_midway_leaves_no_version(
    ray_cluster: None, stores: tuple[Store, Store, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote, ref = stores
    cfg = SubsetConfig(fraction=0.5, seed=1)
    moved: list[str] = []
    lock = threading.Lock()
    rename = _Remote.rename

    def flaky(self: _Remote, src: Any, dst: Any) -> None:
        with lock:  # renames run in threads: one is let through, then the network goes
            first = not moved
            moved.append(dst[-1])
        if not first:
            raise DatadietError("cannot publish: injected failure")
        rename(self, src, dst)

    monkeypatch.setattr(_Remote, "rename", flaky)
    with pytest.raises(DatadietError, match="injected failure"):
        subset(remote, ref, cfg, engine="ray", name="half")
    monkeypatch.undo()
    assert remote.versions("half") == [] and Store(remote.location, cache=tmp_path / "c2").versions("half") == []
    (folder,) = (tmp_path / "bucket" / "store" / "datasets" / "half").iterdir()
    # The one renamed part is there; the other staged files were deleted; no manifest.
    assert len(moved) >= 2 and [p.name for p in folder.iterdir()] == [moved[0]]
    # This machine began that upload (its marker says so), so gc may remove the debris at once.
    stale, recent = remote_debris(remote)
    assert (stale, recent) == ([f"{remote.location}/datasets/half/{folder.name}"], [])
    remove(remote, stale)
    assert not folder.exists()
    b = subset(remote, ref, cfg, engine="ray", name="half").dataset
    _assert_same(subset(local, ref, cfg, name="half").dataset, b)
    assert verify(remote, b.ref)[0]["ok"]
