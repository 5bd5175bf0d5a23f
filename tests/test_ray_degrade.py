"""`curate duplicate` and `curate subset` with `--engine ray` give the local engine's versions.

Same version ref, same rows in the same order, same Parquet files (manifest hashes), pool.parquet
and stats, on a few thousand documents in several small parts, with the session's local Ray
cluster of 2 CPUs (`ray_cluster`; skipped with the extra to install where Ray is absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.curate.duplicate.inject import JACCARD_TO_SOURCE, POOL_FILE
from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
from datadiet.curate.subset.op import SubsetConfig, subset
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, ID, SOURCE_ID, TEXT
from datadiet.store import Dataset, PartWriter, Store
from tests.helpers import cli

# Ray's own modules warn about their deprecated settings while building their defaults.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

DOCS = 3000
PARTS = 5


def _texts(n: int = DOCS, seed: int = 0) -> list[str]:
    """Documents of 5 to 200 words (so near copies fill several edit blocks) with a paragraph break."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(3000)])
    out = []
    for i in range(n):
        words = vocab[rng.integers(0, vocab.size, int(rng.integers(5, 200)))]
        half = words.size // 2
        out.append(f"doc{i} " + " ".join(words[:half]) + "\n\n" + " ".join(words[half:]))
    return out


def _dataset(store: Store, texts: list[str], parts: int = PARTS, name: str = "docs") -> str:
    """The texts as a version of `parts` Parquet parts (one `write` each), with an extra column."""

    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(len(texts)), parts):
            writer.write(
                pl.DataFrame(
                    {ID: [f"d{i:05d}" for i in chunk], TEXT: [texts[i] for i in chunk], "n": chunk.astype(np.int64)}
                )
            )
        return {}

    commit = store.commit(name, operation="test", params={"n": len(texts), "parts": parts}, parents=[], build=build)
    assert len(commit.dataset.parts) == parts
    return commit.dataset.ref


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params
    assert a.manifest.rows == b.manifest.rows
    assert a.read().equals(b.read())
    # Each Ray task writes one input part's output, as the local engine's one `write` per part.
    assert a.manifest.files == b.manifest.files
    assert a.manifest.stats == b.manifest.stats
    assert not [p for p in b.path.rglob("*") if p.name.startswith(".stage")]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _texts()


@pytest.fixture
def stores(tmp_path: Path, texts: list[str]) -> tuple[Store, Store, str]:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, texts)
    assert _dataset(remote, texts) == ref
    return local, remote, ref


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [
        DuplicateConfig(rate=0.5, seed=1),
        DuplicateConfig(rate=1.0, doc="d01234"),
        DuplicateConfig(rate=0.5, pool=7, append=True, seed=2),
        DuplicateConfig(rate=1.0, copies=3, append=True, seed=3),
        DuplicateConfig(rate=0.5, pool=40, near=0.1, seed=4),
        DuplicateConfig(rate=1.0, copies=2, append=True, near=0.2, seed=5),
        DuplicateConfig(rate=0.0, near=0.1),
        DuplicateConfig(rate=0.4, pool=4, docs=("d01234", "d00010"), seed=6),
    ],
    ids=["exact-overwrite", "exact-rate1-doc", "exact-append-pool", "exact-append-copies", "near-overwrite-pool",
         "near-append-copies-rate1", "rate0-near", "pool-docs"],
)  # fmt: skip
def test_ray_duplicate_equals_local(ray_cluster: None, stores: tuple[Store, Store, str], cfg: DuplicateConfig) -> None:
    local, remote, ref = stores
    a = duplicate(local, ref, cfg, workers=1)
    b = duplicate(remote, ref, cfg, engine="ray")
    assert not b.up_to_date
    _assert_same(a.dataset, b.dataset)
    assert pl.read_parquet(a.dataset.path / POOL_FILE).equals(pl.read_parquet(b.dataset.path / POOL_FILE))
    out = b.dataset.read()
    copies = out.filter(pl.col(COPY_INDEX) > 0)
    n_copies = b.dataset.manifest.stats["copies_injected"]
    assert copies.height == n_copies
    assert out.height == (DOCS + n_copies if cfg.append else DOCS)
    assert (copies[SOURCE_ID] + "#dup" + copies[COPY_INDEX].cast(pl.String)).equals(copies[ID])
    if cfg.near:
        assert out.schema[JACCARD_TO_SOURCE] == pl.Float32
        if n_copies:
            assert copies[EDIT_FRACTION].mean() == pytest.approx(cfg.near, abs=0.02)
    assert duplicate(remote, ref, cfg, engine="ray").up_to_date


@pytest.mark.slow
def test_ray_duplicate_of_a_duplicate_continues_copy_numbers(
    ray_cluster: None, stores: tuple[Store, Store, str]
) -> None:
    # The second pass finds each pool document's existing copies in other parts (the `base` pass).
    local, remote, ref = stores
    first = DuplicateConfig(rate=0.2, pool=5, seed=6)
    once_a, once_b = duplicate(local, ref, first, workers=1), duplicate(remote, ref, first, engine="ray")
    _assert_same(once_a.dataset, once_b.dataset)
    pool = once_a.dataset.manifest.stats["pool_ids"]
    second = DuplicateConfig(rate=0.3, pool=3, doc=pool[0], append=True, near=0.1, seed=7)
    twice_a = duplicate(local, once_a.dataset.ref, second, workers=1)
    twice_b = duplicate(remote, once_b.dataset.ref, second, engine="ray")
    _assert_same(twice_a.dataset, twice_b.dataset)
    out = twice_b.dataset.read()
    assert out[ID].n_unique() == out.height
    ks = out.filter(pl.col(SOURCE_ID) == pool[0])[COPY_INDEX].sort().to_list()
    assert ks == list(range(len(ks)))


@pytest.mark.slow
def test_ray_duplicate_errors_are_the_local_ones(ray_cluster: None, stores: tuple[Store, Store, str]) -> None:
    from datadiet.errors import UsageError

    _, remote, ref = stores
    with pytest.raises(UsageError, match="--doc 'nope' is not an id in the dataset"):
        duplicate(remote, ref, DuplicateConfig(rate=0.5, doc="nope"), engine="ray")
    with pytest.raises(UsageError, match=f"--pool {DOCS + 1} is larger than the {DOCS} original documents"):
        duplicate(remote, ref, DuplicateConfig(rate=0.5, pool=DOCS + 1), engine="ray")
    assert [d.ref for d in remote.all()] == [ref]


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [SubsetConfig(fraction=0.25, seed=3), SubsetConfig(fraction=0.5, seed=3), SubsetConfig(tokens=20_000, seed=1)],
    ids=["fraction-0.25", "fraction-0.5", "tokens"],
)
def test_ray_subset_equals_local(ray_cluster: None, stores: tuple[Store, Store, str], cfg: SubsetConfig) -> None:
    local, remote, ref = stores
    a = subset(local, ref, cfg)
    b = subset(remote, ref, cfg, engine="ray")
    assert not b.up_to_date
    _assert_same(a.dataset, b.dataset)
    assert subset(remote, ref, cfg, engine="ray").up_to_date


@pytest.mark.slow
def test_ray_subsets_nest(ray_cluster: None, stores: tuple[Store, Store, str]) -> None:
    _, remote, ref = stores
    small = subset(remote, ref, SubsetConfig(fraction=0.25, seed=9), engine="ray").dataset.read()
    large = subset(remote, ref, SubsetConfig(fraction=0.5, seed=9), engine="ray", name="large").dataset.read()
    assert (small.height, large.height) == (750, 1500)
    assert set(small[ID]) <= set(large[ID])
    # Rows keep their input order.
    assert small["n"].is_sorted() and large["n"].is_sorted()


@pytest.mark.slow
def test_cli_duplicate_and_subset_engine_ray(
    ray_cluster: None, texts: list[str], store_path: Path, runner: CliRunner
) -> None:
    ref = _dataset(Store(store_path), texts[:800], parts=3)
    for args in (("duplicate", ref, "--rate", "0.5", "--near", "0.1"), ("subset", ref, "--fraction", "0.25")):
        remote = cli(runner, *args, "--engine", "ray")
        local = cli(runner, *args, "--engine", "local")
        assert local["ref"] == remote["ref"]
        assert (remote["up_to_date"], local["up_to_date"]) == (False, True)
