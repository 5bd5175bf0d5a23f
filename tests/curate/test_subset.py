"""Tests of `curate subset` (datadiet.curate.subset): exact sizes, nesting, order, determinism, errors."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadiet.cli.help import SUBSET_HELP
from datadiet.curate.subset.op import OPERATION, SubsetConfig, subset
from datadiet.curate.subset.select import STAT_EST_TOKENS_OUT, STAT_ROWS_OUT, permutation, subset_frame
from datadiet.errors import UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import PartWriter, Store

SRC = Path(__file__).resolve().parents[2] / "src"


def corpus(n: int = 1000) -> pl.DataFrame:
    """N documents whose lengths vary (10 to 400 characters), so token subsets differ from doc subsets."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(10, 400, size=n)
    return pl.DataFrame({ID: [f"d{i:04d}" for i in range(n)], TEXT: ["x" * int(k) for k in lengths]})


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return corpus()


def ids(frame: pl.DataFrame, cfg: SubsetConfig) -> list[str]:
    return subset_frame(frame, cfg)[0][ID].to_list()


@pytest.mark.parametrize(("fraction", "rows"), [(0.1, 100), (0.25, 250), (0.5, 500), (0.999, 999), (1.0, 1000)])
def test_fraction_sizes(frame: pl.DataFrame, fraction: float, rows: int) -> None:
    out, stats = subset_frame(frame, SubsetConfig(fraction=fraction, seed=1))
    assert out.height == rows == stats[STAT_ROWS_OUT]


def test_fraction_rounds_half_up_and_keeps_one() -> None:
    assert len(ids(corpus(10), SubsetConfig(fraction=0.25))) == 3  # 2.5 -> 3
    assert len(ids(corpus(10), SubsetConfig(fraction=0.01))) == 1  # 0.1 -> at least one


def test_subsets_nest_and_keep_order(frame: pl.DataFrame) -> None:
    sizes = [SubsetConfig(fraction=f, seed=5) for f in (0.1, 0.25, 0.5, 1.0)]
    sets = [ids(frame, c) for c in sizes]
    for small, large in itertools.pairwise(sets):
        assert set(small) < set(large)
    # docs=N is the same prefix of the same order as the equivalent fraction.
    assert ids(frame, SubsetConfig(docs=250, seed=5)) == sets[1]
    for kept in sets:
        assert kept == sorted(kept)  # ids are zero-padded, so sorted = original order
    assert sets[-1] == frame[ID].to_list()


def test_subset_is_the_permutation_prefix(frame: pl.DataFrame) -> None:
    order = permutation(1000, 9)
    expected = sorted(frame[ID].gather(order[:300]).to_list())
    assert ids(frame, SubsetConfig(docs=300, seed=9)) == expected


def test_seeds_differ(frame: pl.DataFrame) -> None:
    a, b = ids(frame, SubsetConfig(fraction=0.5, seed=1)), ids(frame, SubsetConfig(fraction=0.5, seed=2))
    assert a != b and len(a) == len(b) == 500


def test_tokens_takes_the_shortest_prefix_reaching_t(frame: pl.DataFrame) -> None:
    seed, tokens = 4, 10_000
    out, stats = subset_frame(frame, SubsetConfig(tokens=tokens, seed=seed))
    chars = frame[TEXT].str.len_chars().to_numpy()[permutation(1000, seed)]
    k = out.height
    assert chars[:k].sum() >= 4 * tokens > chars[: k - 1].sum()
    assert stats[STAT_EST_TOKENS_OUT] == chars[:k].sum() // 4
    smaller = ids(frame, SubsetConfig(tokens=tokens // 2, seed=seed))
    assert set(smaller) < set(out[ID])


def test_extra_columns_and_bookkeeping_survive(frame: pl.DataFrame) -> None:
    out, _ = subset_frame(frame.with_columns(pl.lit(1).alias("extra")), SubsetConfig(docs=10))
    assert out.columns == ["id", "text", "source_id", "copy_index", "edit_fraction", "extra"]


_CHILD = """
import sys
sys.path.insert(0, {src!r})
sys.path.insert(0, {tests!r})
from test_subset import corpus
from datadiet.curate.subset.op import SubsetConfig
from datadiet.curate.subset.select import subset_frame
print(",".join(subset_frame(corpus(), SubsetConfig(fraction=0.3, seed=77))[0]["id"].to_list()))
"""


def test_deterministic_across_processes(frame: pl.DataFrame) -> None:
    here = ",".join(ids(frame, SubsetConfig(fraction=0.3, seed=77)))
    code = _CHILD.format(src=str(SRC), tests=str(Path(__file__).parent))
    for hash_seed in ("0", "99"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert child.stdout.strip() == here


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of --fraction, --docs, --tokens"),
        ({"fraction": 0.5, "docs": 3}, "give exactly one"),
        ({"fraction": 0.0}, "--fraction must be above 0 and at most 1"),
        ({"fraction": 1.01}, "--fraction must be above 0 and at most 1"),
        ({"fraction": float("nan")}, "--fraction must be above 0 and at most 1"),
        ({"docs": 0}, "--docs must be at least 1"),
        ({"docs": 2.5}, "--docs must be a whole number"),
        ({"tokens": 0}, "--tokens must be at least 1"),
        ({"fraction": 0.5, "seed": -3}, "--seed must be >= 0"),
    ],
)
def test_bad_config_is_usage_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        SubsetConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_too_large_for_the_dataset(frame: pl.DataFrame) -> None:
    with pytest.raises(UsageError, match="--docs 1001 is more than the 1000 documents"):
        subset_frame(frame, SubsetConfig(docs=1001))
    total = int(frame[TEXT].str.len_chars().sum()) // 4
    with pytest.raises(UsageError, match=f"use at most {total}"):
        subset_frame(frame, SubsetConfig(tokens=total + 1))
    with pytest.raises(UsageError, match="empty"):
        subset_frame(frame.clear(), SubsetConfig(fraction=0.5))
    assert set(SUBSET_HELP) == {"fraction", "docs", "tokens", "seed"}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), a=st.floats(0.001, 1), b=st.floats(0.001, 1), seed=st.integers(0, 2**32))
def test_subsets_nest_for_any_sizes(n: int, a: float, b: float, seed: int) -> None:
    frame = corpus(n)
    small, large = sorted((a, b))
    s = ids(frame, SubsetConfig(fraction=small, seed=seed))
    big = ids(frame, SubsetConfig(fraction=large, seed=seed))
    assert set(s) <= set(big)
    assert len(big) == min(n, max(1, int(large * n + 0.5)))


def test_subset_commits_a_version(tmp_path: Path, frame: pl.DataFrame) -> None:
    digests = []
    for label in ("a", "b"):
        store = Store(tmp_path / label)

        def build(writer: PartWriter) -> dict[str, Any]:
            writer.write(frame)
            return {}

        ref = store.commit("tiny", operation="fixture", params={}, parents=[], build=build).dataset.ref
        cfg = SubsetConfig(fraction=0.25, seed=2)
        commit = subset(store, ref, cfg, name="tiny-25")
        m = commit.dataset.manifest
        assert not commit.up_to_date and commit.dataset.name == "tiny-25"
        assert m.operation == OPERATION and m.parents == [ref] and m.params == cfg.to_params() and m.rows == 250
        assert commit.dataset.read()[ID].to_list() == ids(frame, cfg)
        assert subset(store, ref, cfg, name="tiny-25").up_to_date
        parts = commit.dataset.parts
        digests.append((commit.dataset.version, [hashlib.sha256(p.read_bytes()).hexdigest() for p in parts]))
    assert digests[0] == digests[1]


def test_output_is_written_one_chunk_per_input_part(tmp_path: Path, frame: pl.DataFrame) -> None:
    # Part t of the subset is input part t's kept rows, so `--engine ray` tasks write the same files.
    store = Store(tmp_path)

    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(frame.height), 4):
            writer.write(frame[chunk])
        return {}

    ref = store.commit("tiny", operation="fixture", params={}, parents=[], build=build).dataset.ref
    cfg = SubsetConfig(fraction=0.5, seed=4)
    kept = set(ids(frame, cfg))
    parts = [pl.read_parquet(p)[ID].to_list() for p in subset(store, ref, cfg).dataset.parts]
    assert parts == [[i for i in frame[ID][250 * t : 250 * t + 250] if i in kept] for t in range(4)]
