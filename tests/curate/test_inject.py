"""Tests of `curate duplicate` (datadiet.curate.inject): exact copy counts, labels, near copies, determinism."""

from __future__ import annotations

import hashlib
import io
import math
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

from datadiet.cli.help import DUPLICATE_HELP
from datadiet.curate.duplicate import near as inject
from datadiet.curate.duplicate.inject import (
    JACCARD_TO_SOURCE,
    POOL_FILE,
    STAT_COPIES_INJECTED,
    STAT_COPY_SHARE,
    STAT_POOL_IDS,
    STAT_POOL_SIZE,
    STAT_UNIQUE_DOCUMENTS,
    duplicate_frame,
)
from datadiet.curate.duplicate.op import OPERATION, DuplicateConfig, duplicate
from datadiet.errors import UsageError
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, ID, SOURCE_ID, TEXT, conform
from datadiet.store import PartWriter, Store

SRC = Path(__file__).resolve().parents[2] / "src"


def corpus(n: int = 1000, words: int = 60, seed: int = 7) -> pl.DataFrame:
    """N distinct documents of random words from a 2,000-word vocabulary (5-grams essentially never repeat)."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(2000)]
    texts = []
    for i in range(n):
        body = rng.choice(vocab, size=words)
        # A paragraph break in the middle, as in real stories.
        texts.append(f"doc{i} " + " ".join(body[: words // 2]) + "\n\n" + " ".join(body[words // 2 :]) + ".")
    return pl.DataFrame({ID: [f"d{i:04d}" for i in range(n)], TEXT: texts})


def grams(text: str) -> set[tuple[str, ...]]:
    w = text.split()
    if not w:
        return set()
    if len(w) < 5:
        return {tuple(w)}
    return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}


def jaccard(a: str, b: str) -> float:
    ga, gb = grams(a), grams(b)
    union = ga | gb
    return len(ga & gb) / len(union) if union else 1.0


def parquet_sha(frame: pl.DataFrame) -> str:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return corpus()


# -- exact counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_overwrite_counts_exact(frame: pl.DataFrame, rate: float) -> None:
    out, stats = duplicate_frame(frame, DuplicateConfig(rate=rate, seed=3))
    expected = int(rate * 999)  # 0, 249, 499, 749, 999
    copies = out.filter(pl.col(COPY_INDEX) > 0)
    assert out.height == 1000
    assert copies.height == expected == stats[STAT_COPIES_INJECTED]
    (pool_id,) = stats[STAT_POOL_IDS]
    pool_text = frame.filter(pl.col(ID) == pool_id)[TEXT][0]
    assert copies[SOURCE_ID].unique().to_list() == ([pool_id] if expected else [])
    assert (copies[TEXT] == pool_text).all()
    assert sorted(copies[COPY_INDEX].to_list()) == list(range(1, expected + 1))
    assert set(copies[ID]) == {f"{pool_id}#dup{k}" for k in range(1, expected + 1)}
    # The copied document keeps its own slot; every other original either survives in place or was overwritten.
    assert out.filter(pl.col(ID) == pool_id)[COPY_INDEX].to_list() == [0]
    originals = out.filter(pl.col(COPY_INDEX) == 0)
    assert originals.height == 1000 - expected
    positions = frame.with_row_index("pos").join(originals.select(ID), on=ID)["pos"]
    assert originals[ID].to_list() == frame[ID].gather(positions.sort()).to_list()
    assert out[ID].n_unique() == 1000
    assert stats[STAT_UNIQUE_DOCUMENTS] == 1000 - expected
    assert stats[STAT_COPY_SHARE] == expected / 1000


def test_rate_zero_rows_equal_input(frame: pl.DataFrame) -> None:
    out, _ = duplicate_frame(frame, DuplicateConfig(rate=0))
    assert out.equals(conform(frame))


def test_rate_one_is_n_copies_of_one_story(frame: pl.DataFrame) -> None:
    out, _ = duplicate_frame(frame, DuplicateConfig(rate=1, doc="d0042"))
    assert out.height == 1000
    assert out[TEXT].unique().to_list() == [frame[TEXT][42]]
    assert out[SOURCE_ID].unique().to_list() == ["d0042"]
    assert out.filter(pl.col(COPY_INDEX) == 0)[ID].to_list() == ["d0042"]
    # Overwriting keeps positions: the original stays at row 42.
    assert out[ID][42] == "d0042"


def test_docs_fix_the_pools_first_members_in_order(frame: pl.DataFrame) -> None:
    # Three fixed documents, a pool of 5: those three first, two more drawn with the seed.
    fixed = ("d0100", "d0007", "d0555")
    _, stats = duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=5, docs=fixed, seed=2))
    assert stats["pool_ids"][:3] == list(fixed) and len(set(stats["pool_ids"])) == 5
    # A pool smaller than the list takes its prefix; one fixed id draws as --doc does (same rows).
    _, two = duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=2, docs=fixed))
    assert two["pool_ids"] == ["d0100", "d0007"]
    by_docs, _ = duplicate_frame(frame, DuplicateConfig(rate=0.3, pool=4, docs=("d0042",), seed=1))
    by_doc, _ = duplicate_frame(frame, DuplicateConfig(rate=0.3, pool=4, doc="d0042", seed=1))
    assert by_docs.equals(by_doc)
    # Absent from the params unless given, so versions made without it keep their ids.
    assert "docs" not in DuplicateConfig(rate=0.5).to_params()
    assert DuplicateConfig(rate=0.5, docs=fixed).to_params()["docs"] == list(fixed)
    with pytest.raises(UsageError, match="--doc 'nope' is not an id"):
        duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=2, docs=("d0001", "nope")))
    with pytest.raises(UsageError, match="not both"):
        DuplicateConfig(rate=0.5, doc="d0001", docs=("d0002",))
    with pytest.raises(UsageError, match="must not repeat"):
        DuplicateConfig(rate=0.5, docs=("d0001", "d0001"))


def test_pool_round_robin_counts(frame: pl.DataFrame) -> None:
    out, stats = duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=10, seed=1))
    assert stats[STAT_POOL_SIZE] == 10
    copies = out.filter(pl.col(COPY_INDEX) > 0)
    assert copies.height == int(0.5 * 990) == 495
    counts = copies.group_by(SOURCE_ID).len()["len"].sort().to_list()
    assert counts == [49] * 5 + [50] * 5
    assert set(copies[SOURCE_ID]) == set(stats[STAT_POOL_IDS])
    # The pool documents' own rows are never overwritten.
    assert out.filter(pl.col(ID).is_in(stats[STAT_POOL_IDS]))[COPY_INDEX].to_list() == [0] * 10
    texts = dict(zip(frame[ID], frame[TEXT], strict=True))
    assert all(t == texts[s] for s, t in zip(copies[SOURCE_ID], copies[TEXT], strict=True))


def test_copies_chooses_pool_size(frame: pl.DataFrame) -> None:
    # P = round(R·N/(K+R)) = round(500/10.5) = 48; copies = int(0.5·(1000−48)) = 476 = 44·10 + 4·9.
    out, stats = duplicate_frame(frame, DuplicateConfig(rate=0.5, copies=10, seed=2))
    assert stats[STAT_POOL_SIZE] == 48
    counts = out.filter(pl.col(COPY_INDEX) > 0).group_by(SOURCE_ID).len()["len"].sort().to_list()
    assert counts == [9] * 4 + [10] * 44


def test_append_grows_and_keeps_originals_in_order(frame: pl.DataFrame) -> None:
    out, stats = duplicate_frame(frame, DuplicateConfig(rate=0.3, append=True, seed=4))
    assert out.height == 1000 + int(0.3 * 1000) == 1300
    assert stats[STAT_COPIES_INJECTED] == 300
    assert out.filter(pl.col(COPY_INDEX) == 0).select(ID, TEXT).equals(frame)
    # Copies are spread through the dataset, not stacked at the end.
    positions = np.flatnonzero(out[COPY_INDEX].to_numpy() > 0)
    assert positions.min() < 100 and positions.max() > 1200


def test_append_with_copies(frame: pl.DataFrame) -> None:
    out, stats = duplicate_frame(frame, DuplicateConfig(rate=0.3, append=True, copies=5))
    assert stats[STAT_POOL_SIZE] == 60
    assert out.filter(pl.col(COPY_INDEX) > 0).group_by(SOURCE_ID).len()["len"].unique().to_list() == [5]


def test_duplicating_twice_continues_copy_index(frame: pl.DataFrame) -> None:
    once, _ = duplicate_frame(frame, DuplicateConfig(rate=0.1, doc="d0001"))
    twice, _ = duplicate_frame(once, DuplicateConfig(rate=0.1, doc="d0001", append=True))
    assert twice[ID].n_unique() == twice.height
    ks = twice.filter(pl.col(SOURCE_ID) == "d0001")[COPY_INDEX].sort().to_list()
    assert ks == list(range(0, len(ks)))


def test_extra_columns_pass_through(frame: pl.DataFrame) -> None:
    tagged = frame.with_columns(pl.col(ID).str.slice(1).cast(pl.Int64).alias("n"))
    out, stats = duplicate_frame(tagged, DuplicateConfig(rate=0.5, doc="d0007"))
    assert out.columns[-1] == "n"
    assert out.filter(pl.col(SOURCE_ID) == "d0007")["n"].unique().to_list() == [7]
    assert stats[STAT_COPIES_INJECTED] == 499


# -- near copies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("near", [0.05, 0.1, 0.2])
def test_near_copies_edit_share_and_jaccard(frame: pl.DataFrame, near: float) -> None:
    out, _ = duplicate_frame(frame, DuplicateConfig(rate=0.2, pool=20, near=near, seed=5))
    texts = dict(zip(frame[ID], frame[TEXT], strict=True))
    copies = out.filter(pl.col(COPY_INDEX) > 0)
    assert copies.height == int(0.2 * 980)
    assert out.schema[JACCARD_TO_SOURCE] == pl.Float32
    assert out.filter(pl.col(COPY_INDEX) == 0)[JACCARD_TO_SOURCE].null_count() == 1000 - copies.height
    for row in copies.iter_rows(named=True):
        source = texts[row[SOURCE_ID]]
        w = len(source.split())
        assert row[EDIT_FRACTION] == pytest.approx(math.floor(near * w + 0.5) / w, abs=1e-6)
        assert row[TEXT] != source
        assert row[JACCARD_TO_SOURCE] == pytest.approx(jaccard(row[TEXT], source), abs=1e-6)
        # Paragraph breaks survive (each edit changes one word and keeps the whitespace after it).
        assert row[TEXT].count("\n\n") == 1
    assert copies[EDIT_FRACTION].mean() == pytest.approx(near, abs=0.01)
    # With independent edits a 5-gram survives with s = (1−E)^5, so J ≈ s/(2−s).
    s = (1 - near) ** 5
    assert copies[JACCARD_TO_SOURCE].mean() == pytest.approx(s / (2 - s), abs=0.05)


def test_near_short_and_empty_documents() -> None:
    texts = ["a b", "", "   ", "one two three four five six seven eight nine ten", "  lead and\ttabs  "]
    small = pl.DataFrame({ID: [f"s{i}" for i in range(5)], TEXT: texts})
    out, _ = duplicate_frame(small, DuplicateConfig(rate=1, pool=5, append=True, near=0.5, seed=1))
    src = dict(zip(small[ID], small[TEXT], strict=True))
    for row in out.filter(pl.col(COPY_INDEX) > 0).iter_rows(named=True):
        assert row[JACCARD_TO_SOURCE] == pytest.approx(jaccard(row[TEXT], src[row[SOURCE_ID]]), abs=1e-6)
    by_source = {r[SOURCE_ID]: r for r in out.filter(pl.col(COPY_INDEX) > 0).iter_rows(named=True)}
    assert by_source["s1"][TEXT] == "" and by_source["s1"][EDIT_FRACTION] == 0.0
    assert by_source["s2"][TEXT] == "   " and by_source["s2"][JACCARD_TO_SOURCE] == 1.0
    assert by_source["s3"][EDIT_FRACTION] == 0.5
    assert by_source["s4"][TEXT].startswith("  ")


def test_exact_and_near_copies_use_the_same_slots(frame: pl.DataFrame) -> None:
    exact, _ = duplicate_frame(frame, DuplicateConfig(rate=0.3, pool=3, seed=9))
    near, _ = duplicate_frame(frame, DuplicateConfig(rate=0.3, pool=3, seed=9, near=0.1))
    assert exact[ID].equals(near[ID])
    assert exact.filter(pl.col(COPY_INDEX) > 0)[EDIT_FRACTION].unique().to_list() == [0.0]
    assert JACCARD_TO_SOURCE not in exact.columns


# -- determinism -------------------------------------------------------------------------------------

_CHILD = """
import hashlib, io, sys
sys.path.insert(0, {src!r})
sys.path.insert(0, {tests!r})
from test_inject import corpus
from datadiet.curate.duplicate.op import DuplicateConfig
from datadiet.curate.duplicate.inject import duplicate_frame
out, _ = duplicate_frame(corpus(300), DuplicateConfig(rate=0.6, pool=7, near=0.15, seed=11))
buf = io.BytesIO()
out.write_parquet(buf, compression="zstd")
print(hashlib.sha256(buf.getvalue()).hexdigest())
"""


def test_deterministic_across_runs_and_processes() -> None:
    cfg = DuplicateConfig(rate=0.6, pool=7, near=0.15, seed=11)
    a, _ = duplicate_frame(corpus(300), cfg)
    b, _ = duplicate_frame(corpus(300), cfg)
    assert a.equals(b)
    here = parquet_sha(a)
    code = _CHILD.format(src=str(SRC), tests=str(Path(__file__).parent))
    for hash_seed in ("1", "2024"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert child.stdout.strip() == here
    other, _ = duplicate_frame(corpus(300), DuplicateConfig(rate=0.6, pool=7, near=0.15, seed=12))
    assert parquet_sha(other) != here


def _rows_digest(out: pl.DataFrame) -> str:
    """sha256 of the copies' texts, Jaccards and edit fractions (independent of the Parquet writer)."""
    copies = out.filter(pl.col(COPY_INDEX) > 0)
    h = hashlib.sha256()
    for text in copies[TEXT]:
        h.update(text.encode() + b"\0")
    h.update(copies[JACCARD_TO_SOURCE].to_numpy().tobytes())
    h.update(copies[EDIT_FRACTION].to_numpy().tobytes())
    return h.hexdigest()


# Digests of near-copy rows of edit scheme inject.NEAR_SCHEME = 2 (each block draws from its own
# stream, spawned from (seed, block)); they change only together with NEAR_SCHEME, which is in
# the version id of every near-copy version. Scheme 1 (all blocks drawing in turn from one stream)
# pinned other values here; scheme 2 replaced it so that blocks can be edited on any machine
# (`--engine ray`) without replaying the stream.
_PINNED = [
    (
        DuplicateConfig(rate=0.6, pool=7, near=0.15, seed=11),
        595,
        "98a41e88da3d2678f81b1f36156ba8d9b49443221f9fb7ce7c9c3dd8379aacce",
    ),
    (
        DuplicateConfig(rate=0.5, copies=3, append=True, near=0.3, seed=2),
        500,
        "555598885366ffe75d079d37160857be974740ca12d1af0d863f0c7b9a5ac7fb",
    ),
    (
        DuplicateConfig(rate=0.9, pool=50, near=0.7, seed=4),
        855,
        "ab59635e34c157292cba36d4e935286d8260a368dc66c84a2caea3c06e0d6401",
    ),
]


@pytest.mark.parametrize(("cfg", "copies", "digest"), _PINNED)
def test_near_copies_are_pinned(frame: pl.DataFrame, cfg: DuplicateConfig, copies: int, digest: str) -> None:
    out, stats = duplicate_frame(frame, cfg, workers=1)
    assert stats[STAT_COPIES_INJECTED] == copies
    assert _rows_digest(out) == digest


def test_near_copies_same_for_any_number_of_workers(frame: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DuplicateConfig(rate=0.8, pool=30, near=0.2, seed=3)
    one, _ = duplicate_frame(frame, cfg, workers=1)
    # Small blocks (~40 copies each, 20 blocks) and no size threshold, so the workers really share the blocks.
    monkeypatch.setattr(inject, "BLOCK_CELLS", 2500)
    monkeypatch.setattr(inject, "MIN_PARALLEL_COPIES", 0)
    small_blocks, _ = duplicate_frame(frame, cfg, workers=1)
    assert not small_blocks.equals(one)  # the blocking is part of the result (see BLOCK_CELLS)
    for workers in (2, 3):
        parallel, _ = duplicate_frame(frame, cfg, workers=workers)
        assert parallel.equals(small_blocks), workers
        assert parquet_sha(parallel) == parquet_sha(small_blocks)


def test_near_copies_of_documents_without_words_in_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["", "  \n ", "x", "one two three four five six"]
    small = pl.DataFrame({ID: [f"s{i}" for i in range(4)], TEXT: texts})
    cfg = DuplicateConfig(rate=1, pool=4, append=True, near=0.5, seed=2)
    here, _ = duplicate_frame(small, cfg, workers=1)
    monkeypatch.setattr(inject, "MIN_PARALLEL_COPIES", 0)
    there, _ = duplicate_frame(small, cfg, workers=2)
    assert there.equals(here)
    by_source = {r[SOURCE_ID]: r[TEXT] for r in here.filter(pl.col(COPY_INDEX) > 0).iter_rows(named=True)}
    # The rows of edit scheme 2 (inject.NEAR_SCHEME): "x" substituted, 3 of the 6 words of s3 edited.
    assert by_source == {"s0": "", "s1": "  \n ", "s2": "four", "s3": "one three two four five two six"}


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": -0.1}, "--rate must be between 0 and 1"),
        ({"rate": 1.5}, "--rate must be between 0 and 1"),
        ({"rate": float("nan")}, "--rate must be between 0 and 1"),
        ({"rate": "half"}, "--rate must be a number"),
        ({"rate": 0.5, "pool": 0}, "--pool must be at least 1"),
        ({"rate": 0.5, "copies": 0}, "--copies must be at least 1"),
        ({"rate": 0.5, "near": 1.0}, "--near must be at least 0 and below 1"),
        ({"rate": 0.5, "near": -0.2}, "--near must be at least 0 and below 1"),
        ({"rate": 0.5, "pool": 2, "copies": 3}, "give only one of them"),
        ({"rate": 0.5, "seed": -1}, "--seed must be >= 0"),
        ({"rate": 0.5, "doc": ""}, "--doc must be a document id"),
    ],
)
def test_bad_config_is_usage_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        DuplicateConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_values_for_the_dataset(frame: pl.DataFrame) -> None:
    with pytest.raises(UsageError, match="--pool 1001 is larger than the 1000 original documents"):
        duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=1001))
    with pytest.raises(UsageError, match="--doc 'nope' is not an id in the dataset"):
        duplicate_frame(frame, DuplicateConfig(rate=0.5, doc="nope"))
    once, _ = duplicate_frame(frame, DuplicateConfig(rate=0.5, doc="d0003"))
    with pytest.raises(UsageError, match="is itself a copy"):
        duplicate_frame(once, DuplicateConfig(rate=0.5, doc="d0003#dup1"))
    with pytest.raises(UsageError, match="empty"):
        duplicate_frame(frame.clear(), DuplicateConfig(rate=0.5))


def test_rate_one_and_one_point_zero_are_the_same_params() -> None:
    assert DuplicateConfig(rate=1).to_params() == DuplicateConfig(rate=1.0).to_params()
    # The near-copy edit scheme is in the id of near-copy versions only (exact copies draw no edits).
    assert "near_scheme" not in DuplicateConfig(rate=1).to_params()
    assert DuplicateConfig(rate=1, near=0.1).to_params()["near_scheme"] == inject.NEAR_SCHEME == 2
    assert set(DUPLICATE_HELP) == {"rate", "pool", "copies", "append", "near", "doc", "seed"}
    assert all("\n" not in h for h in DUPLICATE_HELP.values())


# -- properties --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 120),
    rate=st.floats(0, 1),
    pool=st.one_of(st.none(), st.integers(1, 120)),
    append=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_counts_hold_for_any_n_and_rate(n: int, rate: float, pool: int | None, append: bool, seed: int) -> None:
    frame = corpus(n, words=8, seed=1)
    p = 1 if pool is None else pool
    cfg = DuplicateConfig(rate=rate, pool=pool, append=append, seed=seed)
    if p > n:
        with pytest.raises(UsageError):
            duplicate_frame(frame, cfg)
        return
    out, stats = duplicate_frame(frame, cfg)
    expected = int(rate * n) if append else int(rate * (n - p))
    assert stats[STAT_COPIES_INJECTED] == expected
    assert out.height == n + (expected if append else 0)
    assert int((out[COPY_INDEX] > 0).sum()) == expected
    assert out[ID].n_unique() == out.height
    counts = out.filter(pl.col(COPY_INDEX) > 0).group_by(SOURCE_ID).len()["len"].to_list()
    assert max(counts, default=0) - min(counts, default=0) <= 1
    assert out.filter(pl.col(ID).is_in(stats[STAT_POOL_IDS]))[COPY_INDEX].to_list() == [0] * p


# -- store -------------------------------------------------------------------------------------------


def _seed_store(root: Path, frame: pl.DataFrame, parts: int = 1) -> tuple[Store, str]:
    store = Store(root)

    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(frame.height), parts):
            writer.write(frame[chunk])
        return {}

    commit = store.commit("tiny", operation="fixture", params={"n": frame.height}, parents=[], build=build)
    return store, commit.dataset.ref


def test_duplicate_commits_a_version(tmp_path: Path) -> None:
    frame = corpus(200)
    cfg = DuplicateConfig(rate=0.5, pool=4, near=0.1, seed=3)
    shas = []
    versions = []
    for label in ("a", "b"):
        store, ref = _seed_store(tmp_path / label, frame)
        commit = duplicate(store, ref, cfg)
        assert not commit.up_to_date
        ds = commit.dataset
        m = ds.manifest
        assert ds.name == "tiny" and m.operation == OPERATION and m.parents == [ref]
        assert m.params == cfg.to_params() and m.seed == 3
        assert m.rows == 200 and m.stats[STAT_COPIES_INJECTED] == int(0.5 * 196)
        assert ds.read().filter(pl.col(COPY_INDEX) > 0).height == 98
        pool = pl.read_parquet(ds.path / POOL_FILE)
        assert pool[ID].to_list() == m.stats[STAT_POOL_IDS] and pool["copies"].sum() == 98
        assert duplicate(store, ref, cfg).up_to_date
        versions.append(ds.version)
        shas.append(dict(m.files))
    assert versions[0] == versions[1]
    assert shas[0] == shas[1]


@pytest.mark.parametrize("append", [False, True])
def test_output_is_written_one_chunk_per_input_part(tmp_path: Path, append: bool) -> None:
    # Chunk t holds input part t's originals and the copies up to the next part's first original,
    # so `--engine ray` tasks (one per input part) write the same Parquet files.
    frame = corpus(300)
    store, ref = _seed_store(tmp_path, frame, parts=3)
    ds = duplicate(store, ref, DuplicateConfig(rate=0.5, pool=3, append=append, seed=1)).dataset
    parts = [pl.read_parquet(p) for p in ds.parts]
    assert sum(p.height for p in parts) == ds.manifest.rows == (450 if append else 300)
    for t, part in enumerate(parts):
        originals = part.filter(pl.col(COPY_INDEX) == 0)[ID].to_list()
        own = [f"d{i:04d}" for i in range(100 * t, 100 * t + 100)]
        if append:
            # Every original of input part t, in order; from part 1 on, the chunk starts with the first.
            assert originals == own
            assert t == 0 or part[ID][0] == own[0]
        else:
            # Positions are kept: part t is input part t's 100 rows, some overwritten by copies.
            assert part.height == 100
            assert originals == [i for i in own if i in set(originals)]  # its own, in order
