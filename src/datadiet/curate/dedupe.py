"""`curate dedupe`: remove exact and near-duplicate documents, and explain what was removed.

    curate dedupe REF [--method exact|minhash] [--threshold 0.8] [--num-perm 128] [--ngram 5]
                      [--shingle word|char] [--bands B --rows R] [--keep first|longest|random]
                      [--verify] [--against OTHER_REF] [--seed S] [--name NAME]
    curate clusters REF [--top 10] [--id ID]

Stages, each timed in the manifest's stats:

1. sign (partition-local, in worker processes): read a slice of a Parquet part, normalise, digest
   the normalised text (exact key), hash shingles, compute MinHash signatures and band keys;
2. exact: group by digest; every document is linked to the first document with its digest;
3. candidates: LSH over one representative per digest, band by band in polars (`cluster.band_edges`);
4. filter: keep candidate edges whose signatures' estimated Jaccard is >= threshold;
5. verify (`--verify`): keep only edges whose exact shingle-set Jaccard is >= threshold;
6. cluster: connected components of the kept edges, one keeper per component (`--keep`);
7. write: the input rows minus the removed ones, part by part, plus `clusters.parquet`.

With `--against OTHER`, stages 2-5 only look for pairs (document of REF, document of OTHER), and
the documents of REF with such a pair are removed; OTHER is not changed.

Library use (the CLI is a thin wrapper)::

    from datadiet.curate.dedupe import dedupe, explain_clusters
    from datadiet.curate.minhash import MinhashConfig
    commit = dedupe(store, "tinystories", MinhashConfig(threshold=0.8))
    report = explain_clusters(commit.dataset, top=10)
"""

from __future__ import annotations

import difflib
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from datadiet.curate import cluster
from datadiet.curate.minhash import (
    MinhashConfig,
    band_keys,
    estimate_jaccard,
    exact_jaccard,
    permutations,
    signatures,
)
from datadiet.curate.normalize import block_shingles
from datadiet.engine import check_engine, load_ray
from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, TEXT
from datadiet.store import Commit, Dataset, PartWriter, Store

OPERATION = "dedupe"
CLUSTERS_FILE = "clusters.parquet"

# clusters.parquet columns
POSITION = "position"
CLUSTER_ID = "cluster_id"
KEPT = "kept"
KEEPER_ID = "keeper_id"
JACCARD_ESTIMATE = "jaccard_estimate"
JACCARD_EXACT = "jaccard_exact"
CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    ID: pl.String(),
    POSITION: pl.Int64(),
    CLUSTER_ID: pl.Int64(),
    KEPT: pl.Boolean(),
    KEEPER_ID: pl.String(),
    JACCARD_ESTIMATE: pl.Float64(),
    JACCARD_EXACT: pl.Float64(),
}

# 2,000 stories (~1.8 MB of text) per vectorised block keeps the block's uint64 arrays (~8 per
# text byte) near 15 MB, inside the per-worker budget; more gains nothing measurable.
BLOCK_DOCS = 2000
# Below this many documents a worker pool's start-up (~0.5 s per spawned process) costs more than
# it saves.
MIN_PARALLEL_DOCS = 20_000
# Edges compared per step in the Jaccard filter: 65,536 x 128 x 4 bytes x 2 = 64 MiB.
EDGE_BATCH = 65_536

HELP_TEXT = """\
Remove duplicate documents, keeping one per cluster.

Text is normalised first (Unicode NFKC, lowercase, punctuation and symbols removed, whitespace
collapsed). --method exact removes documents whose normalised text is identical. --method minhash
(default) also removes near duplicates: documents whose sets of word 5-grams (--ngram, --shingle)
have Jaccard similarity >= --threshold with another document of their cluster.

Recall vs precision: MinHash LSH makes two documents candidates if they agree on all --rows
values of at least one of --bands bands, with probability 1-(1-J^rows)^bands (an S-curve in J).
By default bands and rows are chosen for recall: at --threshold 0.8 and --num-perm 128 this is
16 bands x 8 rows, so pairs with J=0.85 become candidates 99.4% of the time and J=0.8 94.7%.
Every candidate is then kept only if its estimated Jaccard (share of equal signature values,
+-0.035 at 128 permutations) is >= threshold; --verify also requires the exact Jaccard, which
removes the estimate's false positives at some cost in time. More bands (fewer rows) raise
recall and the number of candidates to check; more permutations tighten the estimate.
--against OTHER removes documents that are near duplicates of OTHER (decontamination).
See docs/dedupe.md for the S-curve table and measured recall and precision."""


# -- signing ------------------------------------------------------------------------------------


@dataclass
class Signed:
    """What stage 1 produces for N documents (row i is the document at position i).

    Attributes:
        digests: (N, 2) uint64 blake2b digests of the normalised texts.
        lengths: (N,) int64 characters of the original texts.
        sig: (N, num_perm) uint32 MinHash signatures (None for method "exact").
        keys: (N, bands) uint64 band keys (None for method "exact").
    """

    digests: npt.NDArray[np.uint64]
    lengths: npt.NDArray[np.int64]
    sig: npt.NDArray[np.uint32] | None
    keys: npt.NDArray[np.uint64] | None

    @classmethod
    def empty(cls, n: int, minhash: bool, num_perm: int, bands: int) -> Signed:
        return cls(
            digests=np.zeros((n, 2), dtype=np.uint64),
            lengths=np.zeros(n, dtype=np.int64),
            sig=np.zeros((n, num_perm), dtype=np.uint32) if minhash else None,
            keys=np.zeros((n, bands), dtype=np.uint64) if minhash else None,
        )

    def put(self, start: int, other: Signed) -> None:
        end = start + other.lengths.size
        self.digests[start:end] = other.digests
        self.lengths[start:end] = other.lengths
        if self.sig is not None and other.sig is not None and self.keys is not None and other.keys is not None:
            self.sig[start:end] = other.sig
            self.keys[start:end] = other.keys

    def split(self, n: int) -> tuple[Signed, Signed]:
        """The first n documents and the rest (views, no copy)."""
        return (
            Signed(self.digests[:n], self.lengths[:n], _head(self.sig, n), _head(self.keys, n)),
            Signed(self.digests[n:], self.lengths[n:], _tail(self.sig, n), _tail(self.keys, n)),
        )

    @classmethod
    def concat(cls, parts: Sequence[Signed]) -> Signed:
        sigs = [p.sig for p in parts if p.sig is not None]
        keys = [p.keys for p in parts if p.keys is not None]
        return cls(
            digests=np.concatenate([p.digests for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            sig=np.concatenate(sigs) if len(sigs) == len(parts) else None,
            keys=np.concatenate(keys) if len(keys) == len(parts) else None,
        )


def _head(a: npt.NDArray[Any] | None, n: int) -> Any:
    return None if a is None else a[:n]


def _tail(a: npt.NDArray[Any] | None, n: int) -> Any:
    return None if a is None else a[n:]


def sign_texts(texts: Sequence[str], cfg: MinhashConfig, bands: int, rows: int) -> Signed:
    """Stage 1 for texts in memory (what each worker runs on its slice)."""
    minhash = cfg.method == "minhash"
    out = Signed.empty(len(texts), minhash, cfg.num_perm, bands)
    perms = permutations(cfg.num_perm, cfg.seed)
    for start in range(0, len(texts), BLOCK_DOCS):
        block = block_shingles(texts[start : start + BLOCK_DOCS], cfg.ngram, cfg.shingle, with_shingles=minhash)
        sig = keys = None
        if minhash:
            sig = signatures(block.hashes, block.offsets, perms)
            keys = band_keys(sig, bands, rows)
        out.put(start, Signed(block.digests, block.lengths, sig, keys))
    return out


def _read_texts(path: str, offset: int, length: int) -> list[str]:
    frame = pl.scan_parquet(path).select(pl.col(TEXT).fill_null("")).slice(offset, length).collect()
    return frame[TEXT].to_list()


def _sign_slice(path: str, offset: int, length: int, cfg: MinhashConfig, bands: int, rows: int) -> Signed:
    # Runs in a worker process: it reads its own rows, so no text crosses a pipe.
    return sign_texts(_read_texts(path, offset, length), cfg, bands, rows)


@dataclass(frozen=True)
class _Slice:
    path: str
    offset: int  # row offset inside the part
    length: int
    start: int  # global position of its first row


def cut_slices(rows: Sequence[int], workers: int) -> list[tuple[int, int, int, int]]:
    """Cut parts of ROWS rows each into slices for WORKERS: (part index, offset, length, global start).

    One function for the local engine and the Ray engines, so both sign the same slices.
    """
    # At least two slices per worker so one slow slice does not leave a core idle for long; a
    # part is one row group, so each slice re-decodes its part (~0.3 s per 200k stories).
    target = max(10_000, math.ceil(sum(rows) / (2 * max(workers, 1))))
    out: list[tuple[int, int, int, int]] = []
    start = 0
    for i, n in enumerate(rows):
        pieces = max(1, math.ceil(n / target))
        size = math.ceil(n / pieces) if n else 0
        out.extend((i, off, min(size, n - off), start + off) for off in range(0, n, max(size, 1)))
        start += n
    return out


def _plan(datasets: Sequence[Dataset], workers: int) -> list[_Slice]:
    paths = [str(p) for ds in datasets for p in ds.parts]
    rows = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    return [_Slice(paths[i], off, n, start) for i, off, n, start in cut_slices(rows, workers)]


def default_workers() -> int:
    """Worker processes for signing: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def sign_datasets(
    datasets: Sequence[Dataset],
    cfg: MinhashConfig,
    bands: int,
    rows: int,
    *,
    workers: int | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Signed:
    """Stage 1 over the rows of one or more versions, concatenated, in worker processes."""
    workers = workers or default_workers()
    total = sum(ds.rows for ds in datasets)
    out = Signed.empty(total, cfg.method == "minhash", cfg.num_perm, bands)
    slices = _plan(datasets, workers)
    with tracker.task("Signing", total=total) as task:
        if workers == 1 or total < MIN_PARALLEL_DOCS:
            for s in slices:
                out.put(s.start, _sign_slice(s.path, s.offset, s.length, cfg, bands, rows))
                task.advance(s.length)
            return out
        # spawn, not fork: polars' thread pool is already running in this process, and forking a
        # multithreaded process can deadlock the child.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(slices)), mp_context=ctx) as pool:
            pending: dict[Future[Signed], _Slice] = {
                pool.submit(_sign_slice, s.path, s.offset, s.length, cfg, bands, rows): s for s in slices
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    s = pending.pop(fut)
                    out.put(s.start, fut.result())
                    task.advance(s.length)
    return out


# -- finding duplicates -------------------------------------------------------------------------


@dataclass
class Found:
    """The outcome of stages 2-6 for N documents.

    Attributes:
        keeper: (N,) position kept for each document's cluster (itself when unique or kept);
            with `against`, the matched position in OTHER (offset by N) or -1 when not removed.
        label: (N,) cluster id (lowest position of the cluster); with `against`, as keeper.
        removed: (N,) True where the document is dropped.
        exact: (N,) True where a removed document's normalised text equals its keeper's.
        estimate: (N,) estimated Jaccard to the keeper (1.0 for exact duplicates, NaN if unknown).
        exact_jaccard: (N,) exact Jaccard to the keeper (1.0 for exact duplicates, NaN if not computed).
        stats: Counters (see `dedupe`).
    """

    keeper: npt.NDArray[np.int64]
    label: npt.NDArray[np.int64]
    removed: npt.NDArray[np.bool_]
    exact: npt.NDArray[np.bool_]
    estimate: npt.NDArray[np.float64]
    exact_jaccard: npt.NDArray[np.float64]
    stats: dict[str, Any] = field(default_factory=dict)


# A function from positions to their 64-bit shingle-hash arrays (for --verify).
ShingleLookup = Callable[[npt.NDArray[np.int64]], dict[int, npt.NDArray[np.uint64]]]


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


def _exact_roots(digests: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """For each position, the lowest position with the same digest."""
    frame = pl.DataFrame({"a": digests[:, 0], "b": digests[:, 1]}).with_row_index("i")
    roots = frame.select(pl.col("i").min().over("a", "b")).to_series()
    return roots.to_numpy().astype(np.int64)


def _filter_edges(
    sig: npt.NDArray[np.uint32], u: npt.NDArray[np.int64], v: npt.NDArray[np.int64], threshold: float
) -> npt.NDArray[np.float64]:
    est = np.empty(u.size, dtype=np.float64)
    for s in range(0, u.size, EDGE_BATCH):
        est[s : s + EDGE_BATCH] = estimate_jaccard(sig[u[s : s + EDGE_BATCH]], sig[v[s : s + EDGE_BATCH]])
    return est


def _exact_for(u: npt.NDArray[np.int64], v: npt.NDArray[np.int64], lookup: ShingleLookup) -> npt.NDArray[np.float64]:
    if u.size == 0:
        return np.empty(0, dtype=np.float64)
    hashes = lookup(np.unique(np.concatenate([u, v])))
    return np.array([exact_jaccard(hashes[int(a)], hashes[int(b)]) for a, b in zip(u, v, strict=True)])


def _candidates(
    signed: Signed, positions: npt.NDArray[np.int64], bands: int, tracker: Tracker
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    assert signed.keys is not None
    chunks: list[npt.NDArray[np.uint64]] = []
    held = distinct = 0
    with tracker.task("Candidates", total=bands) as task:
        for k in range(bands):
            u, v = cluster.band_edges(positions, signed.keys[positions, k])
            chunks.append(cluster.pack_edges(u, v))
            held += u.size
            # The same pair usually turns up in many bands; deduplicate only when the held edges
            # outgrow the distinct ones 4x, so memory stays bounded without sorting every band.
            if held > max(4 * distinct, 4_000_000):
                chunks = [cluster.unique_packed(np.concatenate(chunks))]
                held = distinct = chunks[0].size
            task.advance()
    if not chunks:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return cluster.unpack_edges(cluster.unique_packed(np.concatenate(chunks)))


def find_duplicates(
    signed: Signed,
    cfg: MinhashConfig,
    *,
    lookup: ShingleLookup | None = None,
    tracker: Tracker = NULL_TRACKER,
    timer: _Timer | None = None,
) -> Found:
    """Stages 2-6: clusters of duplicates among N signed documents and the keeper of each.

    Args:
        signed: Stage 1's output.
        cfg: The dedupe parameters.
        lookup: Shingle hashes by position; required when `cfg.verify`.
        tracker: Progress.
        timer: Stage timings are added here.

    Returns:
        The clusters, keepers and counters.
    """
    timer = timer or _Timer()
    n = signed.lengths.size
    stats: dict[str, Any] = {"candidate_pairs": 0, "rejected_by_estimate": 0, "rejected_by_verification": 0}
    positions = np.arange(n, dtype=np.int64)
    with timer.stage("exact"):
        roots = _exact_roots(signed.digests) if n else positions
    eu = positions[roots != positions]
    ev = roots[eu]
    nu = nv = np.empty(0, dtype=np.int64)
    if cfg.method == "minhash" and n:
        assert signed.sig is not None
        bands, _ = cfg.bands_rows()
        with timer.stage("candidates"):
            nu, nv = _candidates(signed, positions[roots == positions], bands, tracker)
        stats["candidate_pairs"] = int(nu.size)
        with timer.stage("filter"):
            est = _filter_edges(signed.sig, nu, nv, cfg.threshold)
            ok = est >= cfg.threshold
            stats["rejected_by_estimate"] = int(nu.size - ok.sum())
            nu, nv = nu[ok], nv[ok]
        if cfg.verify:
            if lookup is None:
                raise ValueError("verify needs a shingle lookup")
            with timer.stage("verify"):
                exact = _exact_for(nu, nv, lookup)
                ok = exact >= cfg.threshold
                stats["rejected_by_verification"] = int(nu.size - ok.sum())
                nu, nv = nu[ok], nv[ok]
    with timer.stage("cluster"):
        label = cluster.connected_components(n, np.concatenate([eu, nu]), np.concatenate([ev, nv]))
        keeper = cluster.choose_keepers(label, cfg.keep, signed.lengths, cfg.seed)
        removed = keeper != positions
        same = (signed.digests[keeper] == signed.digests).all(axis=1) if n else np.zeros(0, dtype=bool)
        exact_dup = removed & same
        estimate = np.full(n, np.nan)
        exact_j = np.full(n, np.nan)
        sizes = np.bincount(label, minlength=n) if n else np.zeros(0, dtype=np.int64)
        member = sizes[label] > 1 if n else np.zeros(0, dtype=bool)
        estimate[member & same] = 1.0
        exact_j[member & same] = 1.0
        near = np.flatnonzero(member & ~same)
        if near.size and signed.sig is not None:
            estimate[near] = _filter_edges(signed.sig, near, keeper[near], cfg.threshold)
    if cfg.verify and near.size and lookup is not None:
        with timer.stage("verify"):
            exact_j[near] = _exact_for(near, keeper[near], lookup)
    stats.update(
        clusters=int(np.count_nonzero(sizes > 1)),
        largest_cluster=int(sizes.max()) if n else 0,
    )
    return Found(keeper, label, removed, exact_dup, estimate, exact_j, stats)


def find_contaminated(
    signed: Signed,
    other: Signed,
    cfg: MinhashConfig,
    *,
    lookup: ShingleLookup | None = None,
    tracker: Tracker = NULL_TRACKER,
    timer: _Timer | None = None,
) -> Found:
    """Stages 2-5 for `--against`: which of N documents are (near) duplicates of a document of OTHER.

    Positions of OTHER are N .. N + M - 1 (in `lookup` too); `keeper` holds the matched one.
    """
    timer = timer or _Timer()
    n, m = signed.lengths.size, other.lengths.size
    stats: dict[str, Any] = {"candidate_pairs": 0, "rejected_by_estimate": 0, "rejected_by_verification": 0}
    match = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -1.0)
    exact_j = np.full(n, np.nan)
    with timer.stage("exact"):
        mine = pl.DataFrame({"a": signed.digests[:, 0], "b": signed.digests[:, 1]}).with_row_index("i")
        theirs = (
            pl.DataFrame({"a": other.digests[:, 0], "b": other.digests[:, 1]})
            .with_row_index("j")
            .group_by("a", "b")
            .agg(pl.col("j").min())
        )
        hits = mine.join(theirs, on=["a", "b"], how="inner")
        hi = hits["i"].to_numpy().astype(np.int64)
        match[hi] = hits["j"].to_numpy().astype(np.int64) + n
        best[hi] = 1.0
        exact_j[hi] = 1.0
    exact = match >= 0
    if cfg.method == "minhash" and n and m:
        assert signed.sig is not None and other.sig is not None and signed.keys is not None and other.keys is not None
        bands, _ = cfg.bands_rows()
        both = Signed.concat([signed, other])
        assert both.keys is not None and both.sig is not None
        is_other = np.zeros(n + m, dtype=bool)
        is_other[n:] = True
        positions = np.arange(n + m, dtype=np.int64)
        with timer.stage("candidates"):
            us, vs = [], []
            with tracker.task("Candidates", total=bands) as task:
                for k in range(bands):
                    u, v = cluster.cross_edges(positions, both.keys[:, k], is_other)
                    us.append(u)
                    vs.append(v)
                    task.advance()
            u = np.concatenate(us)
            v = np.concatenate(vs)
            # u < n <= v always, so (v, u) is the (larger, smaller) form `unique_edges` returns.
            v, u = cluster.unique_edges(u, v)
            keep_new = ~exact[u]
            u, v = u[keep_new], v[keep_new]
        stats["candidate_pairs"] = int(u.size)
        with timer.stage("filter"):
            est = _filter_edges(both.sig, u, v, cfg.threshold)
            ok = est >= cfg.threshold
            stats["rejected_by_estimate"] = int(u.size - ok.sum())
            u, v, est = u[ok], v[ok], est[ok]
        ex = np.full(u.size, np.nan)
        if cfg.verify:
            if lookup is None:
                raise ValueError("verify needs a shingle lookup")
            with timer.stage("verify"):
                ex = _exact_for(u, v, lookup)
                ok = ex >= cfg.threshold
                stats["rejected_by_verification"] = int(u.size - ok.sum())
                u, v, est, ex = u[ok], v[ok], est[ok], ex[ok]
        # The best match per document: highest estimate, then lowest OTHER position.
        order = np.lexsort((v, -est, u))
        first = np.ones(order.size, dtype=bool)
        first[1:] = u[order][1:] != u[order][:-1]
        pick = order[first]
        match[u[pick]] = v[pick]
        best[u[pick]] = est[pick]
        exact_j[u[pick]] = ex[pick]
    removed = match >= 0
    counts = np.bincount(match[removed] - n, minlength=max(m, 1)) if removed.any() else np.zeros(1, dtype=np.int64)
    stats.update(clusters=int(np.count_nonzero(counts)), largest_cluster=int(counts.max()) + 1 if removed.any() else 0)
    estimate = np.where(removed, best, np.nan)
    return Found(match, match, removed, exact & removed, estimate, exact_j, stats)


def dedupe_texts(texts: Sequence[str], cfg: MinhashConfig, against: Sequence[str] | None = None) -> Found:
    """Stages 1-6 on texts in memory, without a store (for tests, notebooks and benchmarks)."""
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (1, 1)
    all_texts = list(texts) + list(against or [])

    def lookup(positions: npt.NDArray[np.int64]) -> dict[int, npt.NDArray[np.uint64]]:
        return _hashes_of([all_texts[int(p)] for p in positions], positions, cfg)

    signed = sign_texts(texts, cfg, bands, rows)
    if against is None:
        return find_duplicates(signed, cfg, lookup=lookup)
    return find_contaminated(signed, sign_texts(against, cfg, bands, rows), cfg, lookup=lookup)


def _hashes_of(
    texts: Sequence[str], positions: npt.NDArray[np.int64], cfg: MinhashConfig
) -> dict[int, npt.NDArray[np.uint64]]:
    out: dict[int, npt.NDArray[np.uint64]] = {}
    for s in range(0, len(texts), BLOCK_DOCS):
        block = block_shingles(texts[s : s + BLOCK_DOCS], cfg.ngram, cfg.shingle)
        for i in range(len(block.lengths)):
            out[int(positions[s + i])] = block.hashes[block.offsets[i] : block.offsets[i + 1]]
    return out


# -- the operation ------------------------------------------------------------------------------


def _part_table(datasets: Sequence[Dataset]) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    start = 0
    for ds in datasets:
        for p in ds.parts:
            out.append((p, start))
            start += pq.ParquetFile(p).metadata.num_rows
    return out


def _store_lookup(datasets: Sequence[Dataset], cfg: MinhashConfig) -> ShingleLookup:
    table = _part_table(datasets)

    def lookup(positions: npt.NDArray[np.int64]) -> dict[int, npt.NDArray[np.uint64]]:
        texts: list[str] = []
        found: list[npt.NDArray[np.int64]] = []
        starts = np.array([s for _, s in table] + [np.iinfo(np.int64).max])
        for k, (path, start) in enumerate(table):
            mine = positions[(positions >= start) & (positions < starts[k + 1])]
            if not mine.size:
                continue
            local = pl.Series("r", mine - start, dtype=pl.Int64)
            frame = (
                pl.scan_parquet(path)
                .with_row_index("r")
                .filter(pl.col("r").cast(pl.Int64).is_in(local.implode()))
                .select(pl.col(TEXT).fill_null(""))
                .collect()
            )
            texts.extend(frame[TEXT].to_list())
            found.append(mine)
        return _hashes_of(texts, np.concatenate(found) if found else positions[:0], cfg)

    return lookup


def _read_ids(datasets: Sequence[Dataset]) -> pl.Series:
    ids = [ds.scan().select(pl.col(ID).cast(pl.String)).collect()[ID] for ds in datasets]
    return pl.concat(ids) if ids else pl.Series(ID, [], dtype=pl.String)


def _clusters_frame(found: Found, ids: pl.Series, keeper_ids: pl.Series, against: bool) -> pl.DataFrame:
    n = found.removed.size
    if against:
        rows = np.flatnonzero(found.removed)
        cluster_id = found.keeper[rows] - n
        kept = np.zeros(rows.size, dtype=bool)
        keeper_pos = found.keeper[rows] - n
    else:
        sizes = np.bincount(found.label, minlength=n) if n else np.zeros(0, dtype=np.int64)
        rows = np.flatnonzero(sizes[found.label] > 1) if n else np.zeros(0, dtype=np.int64)
        cluster_id = found.label[rows]
        kept = ~found.removed[rows]
        keeper_pos = found.keeper[rows]
    est = found.estimate[rows]
    exj = found.exact_jaccard[rows]
    frame = pl.DataFrame(
        {
            ID: ids.gather(rows) if rows.size else pl.Series(ID, [], dtype=pl.String),
            POSITION: rows.astype(np.int64),
            CLUSTER_ID: cluster_id.astype(np.int64),
            KEPT: kept,
            KEEPER_ID: keeper_ids.gather(keeper_pos) if rows.size else pl.Series(KEEPER_ID, [], dtype=pl.String),
            JACCARD_ESTIMATE: pl.Series(est, dtype=pl.Float64).fill_nan(None),
            JACCARD_EXACT: pl.Series(exj, dtype=pl.Float64).fill_nan(None),
        },
        schema=CLUSTERS_SCHEMA,
    )
    return frame.sort(CLUSTER_ID, POSITION)


def dedupe(
    store: Store,
    ref: str,
    cfg: MinhashConfig,
    name: str | None = None,
    against: str | None = None,
    *,
    workers: int | None = None,
    tracker: Tracker = NULL_TRACKER,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Write a new version of REF without its duplicates (or, with `against`, without REF's near copies of OTHER).

    Args:
        store: The store holding REF.
        ref: The version to deduplicate ("name" or "name@version").
        cfg: The parameters; all of them (bands and rows resolved) are recorded and form the version id.
        name: Name of the new version; default REF's name.
        against: Another version; REF's documents that duplicate any of its documents are removed.
        workers: Signing processes (default: every core); does not change the result.
        tracker: Progress.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.engine.ray_engine`);
            the result, version id included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").

    Returns:
        The new version (`up_to_date` when the same dedupe of the same input already exists).
        Its manifest stats: docs_in, docs_out, removed_exact, removed_near, clusters,
        largest_cluster, candidate_pairs, rejected_by_estimate, rejected_by_verification, seconds
        (per stage). Its `clusters.parquet` lists every member of every cluster.
    """
    source = store.resolve(ref)
    other = store.resolve(against) if against is not None else None
    if other is not None and other.ref == source.ref:
        raise UsageError(f"--against {against} is the version being deduplicated; name a different version")
    params = cfg.params()
    params["against"] = other.ref if other is not None else None
    parents = [source.ref] + ([other.ref] if other is not None else [])
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (1, 1)
    if check_engine(engine) == "ray":
        return load_ray().dedupe(
            store,
            source,
            cfg,
            name or source.name,
            params=params,
            parents=parents,
            other=other,
            address=address,
            tracker=tracker,
        )

    def find(timer: _Timer) -> Found:
        # A function of its own so the signatures (0.5 KB per document) are freed before writing.
        inputs = [source] + ([other] if other is not None else [])
        with timer.stage("sign"):
            signed = sign_datasets(inputs, cfg, bands, rows, workers=workers, tracker=tracker)
        lookup = _store_lookup(inputs, cfg) if cfg.verify else None
        if other is None:
            return find_duplicates(signed, cfg, lookup=lookup, tracker=tracker, timer=timer)
        n = source.rows
        mine, theirs = signed.split(n)
        del signed
        return find_contaminated(mine, theirs, cfg, lookup=lookup, tracker=tracker, timer=timer)

    def build(writer: PartWriter) -> dict[str, Any]:
        timer = _Timer()
        n = source.rows
        found = find(timer)
        with timer.stage("write"):
            ids = _read_ids([source])
            keeper_ids = _read_ids([other]) if other is not None else ids
            _clusters_frame(found, ids, keeper_ids, other is not None).write_parquet(
                writer.dir / CLUSTERS_FILE, compression="zstd"
            )
            offset = 0
            with tracker.task("Writing", total=len(source.parts)) as task:
                for frame in source.iter_frames():
                    keep = ~found.removed[offset : offset + frame.height]
                    offset += frame.height
                    writer.write(frame.filter(pl.Series(keep)))
                    task.advance()
        return summary_stats(cfg, n, int(found.removed.sum()), int(found.exact.sum()), found.stats, timer.seconds)

    return store.commit(name or source.name, operation=OPERATION, params=params, parents=parents, build=build)


def summary_stats(
    cfg: MinhashConfig, n: int, removed: int, exact: int, found: Mapping[str, Any], seconds: Mapping[str, float]
) -> dict[str, Any]:
    """The manifest stats of a dedupe version (the same whichever engine found the duplicates)."""
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (None, None)
    return {
        "docs_in": n,
        "docs_out": n - removed,
        "removed": removed,
        "removed_exact": exact,
        "removed_near": removed - exact,
        **found,
        "bands": bands,
        "rows": rows,
        "seconds": dict(seconds),
    }


# -- explaining clusters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster (or, for `--against`, one matched document of OTHER) of a dedupe version."""

    cluster_id: int
    size: int
    removed: int
    keeper_id: str
    min_jaccard_estimate: float | None
    member_ids: list[str]
    keeper_preview: str


@dataclass(frozen=True)
class Match:
    """A document of the input and the kept document it was clustered with.

    `diff` is the word-level diff from the keeper to this document: ("equal", words) in both,
    ("delete", words) only in the keeper, ("insert", words) only in this document.
    """

    id: str
    kept: bool
    cluster_id: int
    keeper_id: str
    jaccard_estimate: float | None
    jaccard_exact: float | None
    text: str
    keeper_text: str
    diff: list[tuple[str, str]]


@dataclass(frozen=True)
class ClusterReport:
    """What `curate clusters` shows."""

    ref: str
    parent: str
    against: str | None
    params: dict[str, Any]
    stats: dict[str, Any]
    clusters: int
    top: list[ClusterSummary]
    match: Match | None
    note: str | None


def word_diff(keeper: str, text: str) -> list[tuple[str, str]]:
    """Word-level diff from `keeper` to `text` as (op, words) segments, op in equal/delete/insert."""
    a, b = keeper.split(), text.split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", " ".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", " ".join(b[j1:j2])))
    return out


def _texts_by_id(dataset: Dataset, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    frame = (
        dataset.scan()
        .select(pl.col(ID).cast(pl.String), pl.col(TEXT).fill_null(""))
        .filter(pl.col(ID).is_in(list(ids)))
        .collect()
    )
    return dict(zip(frame[ID].to_list(), frame[TEXT].to_list(), strict=True))


def explain_clusters(
    dataset: Dataset, top: int = 10, id: str | None = None, *, store: Store | None = None
) -> ClusterReport:
    """The largest clusters of a dedupe version and, for one document, the kept document it matched.

    Args:
        dataset: A version written by `dedupe`.
        top: How many of the largest clusters to list (>= 0).
        id: A document id of the deduplicated input to explain (removed or kept).
        store: The store holding the version's parents (default: the store `dataset` lies in).

    Returns:
        The report; `match` is None when no `id` was asked or it is in no cluster (see `note`).
    """
    if not isinstance(top, int) or top < 0:
        raise UsageError(f"--top must be a non-negative integer, not {top!r}")
    path = dataset.path / CLUSTERS_FILE
    if dataset.manifest.operation != OPERATION or not path.is_file():
        raise UsageError(
            f"{dataset.ref} was not written by `curate dedupe` (no {CLUSTERS_FILE}); run `curate dedupe` first"
        )
    store = store or dataset.store or Store(dataset.folder.parents[2])
    parents = dataset.manifest.parents
    against = dataset.manifest.params.get("against")
    try:
        parent = store.resolve(parents[0])
        keeper_source = store.resolve(parents[1]) if against and len(parents) > 1 else parent
    except UsageError as exc:
        raise DatadietError(f"the input of {dataset.ref} is no longer in the store ({exc})") from exc
    frame = pl.read_parquet(path)
    groups = (
        frame.group_by(CLUSTER_ID)
        .agg(
            pl.len().alias("size"),
            (~pl.col(KEPT)).sum().alias("removed"),
            pl.col(KEEPER_ID).first(),
            pl.col(JACCARD_ESTIMATE).min().alias("min_est"),
            pl.col(ID).head(5).alias("members"),
        )
        .sort(["size", CLUSTER_ID], descending=[True, False])
    )
    head = groups.head(top)
    previews = _texts_by_id(keeper_source, head[KEEPER_ID].to_list())
    summaries = [
        ClusterSummary(
            cluster_id=int(r[CLUSTER_ID]),
            # With --against the matched OTHER document is not a row, so count it in.
            size=int(r["size"]) + (1 if against else 0),
            removed=int(r["removed"]),
            keeper_id=str(r[KEEPER_ID]),
            min_jaccard_estimate=r["min_est"],
            member_ids=list(r["members"]),
            keeper_preview=" ".join(previews.get(str(r[KEEPER_ID]), "").split())[:100],
        )
        for r in head.iter_rows(named=True)
    ]
    match: Match | None = None
    note: str | None = None
    if id is not None:
        row = frame.filter(pl.col(ID) == id)
        if row.height == 0:
            if not _texts_by_id(parent, [id]):
                raise UsageError(
                    f"no document with id {id!r} in {parent.ref}; ids are listed in {dataset.ref}'s clusters"
                )
            note = f"{id} is in no cluster: it had no duplicate and was kept"
        else:
            r = row.row(0, named=True)
            text = _texts_by_id(parent, [id]).get(id, "")
            keeper_text = _texts_by_id(keeper_source, [r[KEEPER_ID]]).get(r[KEEPER_ID], "")
            match = Match(
                id=id,
                kept=bool(r[KEPT]),
                cluster_id=int(r[CLUSTER_ID]),
                keeper_id=str(r[KEEPER_ID]),
                jaccard_estimate=r[JACCARD_ESTIMATE],
                jaccard_exact=r[JACCARD_EXACT],
                text=text,
                keeper_text=keeper_text,
                diff=word_diff(keeper_text, text),
            )
    return ClusterReport(
        ref=dataset.ref,
        parent=parent.ref,
        against=against,
        params=dict(dataset.manifest.params),
        stats=dict(dataset.manifest.stats),
        clusters=groups.height,
        top=summaries,
        match=match,
        note=note,
    )
