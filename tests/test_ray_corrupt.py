"""`curate corrupt --engine ray` gives the local engine's versions.

Same version ref, rows, Parquet files (manifest hashes) and stats for every kind, on a few thousand
documents in parts that do not end at blocks of 256 rows (one smaller than a block, so a write
gathers rows from three parts), with the session's local Ray cluster of 2 CPUs (`ray_cluster`;
skipped with the extra to install where Ray is absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.curate.corrupt.op import CorruptConfig, corrupt
from datadiet.schema import CORRUPT_FROM, CORRUPTION, ID, TEXT
from datadiet.store import Dataset, PartWriter, Store
from tests.curate.test_corrupt_golden import varied
from tests.helpers import cli

# Ray's own modules warn about their deprecated settings while building their defaults.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

PARTS = [700, 100, 50, 900, 600]  # writes: rows 0-512, -768, -1536 (three parts), -2304, -2350
OTHER_PARTS = [120, 80]


def _dataset(store: Store, frame: pl.DataFrame, sizes: list[int], name: str) -> str:
    def build(writer: PartWriter) -> dict[str, Any]:
        start = 0
        for size in sizes:
            writer.write(frame.slice(start, size))
            start += size
        return {}

    commit = store.commit(
        name, operation="test", params={"sizes": sizes, "rows": frame.height}, parents=[], build=build
    )
    return commit.dataset.ref


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params and a.manifest.parents == b.manifest.parents
    assert a.read().equals(b.read())
    assert a.manifest.files == b.manifest.files  # the same writes, so the same Parquet bytes
    assert a.manifest.stats == b.manifest.stats
    assert not [p for p in b.path.rglob("*") if p.name.startswith(".stage")]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Store, Store, str, str]:
    frame = varied(sum(PARTS), seed=3).with_columns(pl.int_range(pl.len()).alias("n"))
    other = pl.DataFrame({ID: [f"o{i}" for i in range(200)], TEXT: [f"Other text {i}." for i in range(200)]})
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    refs = [(_dataset(s, frame, PARTS, "docs"), _dataset(s, other, OTHER_PARTS, "other")) for s in (local, remote)]
    assert refs[0] == refs[1]
    return local, remote, refs[0][0], refs[0][1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cfg", "mixed"),
    [
        (CorruptConfig(kind="typos", rate=0.1, seed=1), False),
        (CorruptConfig(kind="shuffle", rate=0.5, seed=2), False),
        (CorruptConfig(kind="truncate", rate=0.3, seed=3), False),
        (CorruptConfig(kind="mix", rate=0.4, seed=4), True),  # 940 rows from 200 documents: each used 4-5 times
        (CorruptConfig(kind="mix", rate=0.001, seed=5), True),  # 2 rows: most writes receive nothing
    ],
    ids=["typos", "shuffle", "truncate", "mix", "mix-sparse"],
)
def test_ray_corrupt_equals_local(
    ray_cluster: None, stores: tuple[Store, Store, str, str], cfg: CorruptConfig, mixed: bool
) -> None:
    local, remote, ref, other = stores
    a = corrupt(local, ref, cfg, other=other if mixed else None, workers=1)
    b = corrupt(remote, ref, cfg, other=other if mixed else None, engine="ray")
    assert not b.up_to_date
    _assert_same(a.dataset, b.dataset)
    assert len(b.dataset.parts) == 5
    out = b.dataset.read()
    changed = out.filter(pl.col(CORRUPTION).is_not_null())
    assert changed.height == b.dataset.manifest.stats["rows_corrupted"] > 0
    if mixed:
        assert (changed[CORRUPT_FROM] == remote.resolve(other).ref).all()
        assert out["n"].null_count() == changed.height  # a replaced row's extra columns are null
    else:
        assert out["n"].to_list() == list(range(sum(PARTS)))  # rows keep their order
    assert corrupt(remote, ref, cfg, other=other if mixed else None, engine="ray").up_to_date


@pytest.mark.slow
def test_cli_corrupt_engine_ray(ray_cluster: None, store_path: Path, runner: CliRunner) -> None:
    ref = _dataset(Store(store_path), varied(600, seed=4), [300, 300], "docs")
    args = ("corrupt", ref, "--kind", "typos", "--rate", "0.2")
    remote = cli(runner, *args, "--engine", "ray")
    local = cli(runner, *args, "--engine", "local")
    assert local["ref"] == remote["ref"]
    assert (remote["up_to_date"], local["up_to_date"]) == (False, True)
