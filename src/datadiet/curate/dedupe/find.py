"""Stages 1-6 of a dedupe on this machine: sign (in worker processes), exact, candidates, filter,
verify, cluster. Returns what was `Found`; `op.py` writes it.

    signed = sign_datasets([ds], cfg, bands, rows)
    found = find_duplicates(signed, cfg)              # or find_contaminated(mine, theirs, cfg)
    found = dedupe_texts(texts, cfg)                  # the same on a list of strings
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from datadiet.curate.dedupe import cluster
from datadiet.curate.dedupe.minhash import (
    MinhashConfig,
    band_keys,
    estimate_jaccard,
    exact_jaccard,
    permutations,
    signatures,
)
from datadiet.curate.dedupe.normalize import block_shingles
from datadiet.curate.dedupe.output import counters
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import Timer, cpu_count, cut_slices, worker_pool
from datadiet.schema import TEXT
from datadiet.store import Dataset

# 2,000 stories (~1.8 MB of text) per vectorised block keeps the block's uint64 arrays (~8 per
# text byte) near 15 MB, inside the per-worker budget; more gains nothing measurable.
BLOCK_DOCS = 2000


# Below this many documents a worker pool's start-up (~0.5 s per spawned process) costs more than
# it saves.
MIN_PARALLEL_DOCS = 20_000


# Edges compared per step in the Jaccard filter: 65,536 x 128 x 4 bytes x 2 = 64 MiB.
EDGE_BATCH = 65_536


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
    frame = pl.scan_parquet(path, glob=False).select(pl.col(TEXT).fill_null("")).slice(offset, length).collect()
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


def _plan(datasets: Sequence[Dataset], workers: int) -> list[_Slice]:
    paths = [str(p) for ds in datasets for p in ds.parts]
    rows = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    return [_Slice(paths[i], off, n, start) for i, off, n, start in cut_slices(rows, workers)]


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
    workers = workers or cpu_count()
    total = sum(ds.rows for ds in datasets)
    out = Signed.empty(total, cfg.method == "minhash", cfg.num_perm, bands)
    slices = _plan(datasets, workers)
    with tracker.task("Signing", total=total) as task:
        if workers == 1 or total < MIN_PARALLEL_DOCS:
            for s in slices:
                out.put(s.start, _sign_slice(s.path, s.offset, s.length, cfg, bands, rows))
                task.advance(s.length)
            return out
        # Spawned workers that end with this process, however it ends (runtime.worker_pool).
        with worker_pool(min(workers, len(slices))) as pool:
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
    timer: Timer | None = None,
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
    timer = timer or Timer()
    n = signed.lengths.size
    stats = counters()
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
    timer: Timer | None = None,
) -> Found:
    """Stages 2-5 for `--against`: which of N documents are (near) duplicates of a document of OTHER.

    Positions of OTHER are N .. N + M - 1 (in `lookup` too); `keeper` holds the matched one.
    """
    timer = timer or Timer()
    n, m = signed.lengths.size, other.lengths.size
    stats = counters()
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
                pl.scan_parquet(path, glob=False)
                .with_row_index("r")
                .filter(pl.col("r").cast(pl.Int64).is_in(local.implode()))
                .select(pl.col(TEXT).fill_null(""))
                .collect()
            )
            texts.extend(frame[TEXT].to_list())
            found.append(mine)
        return _hashes_of(texts, np.concatenate(found) if found else positions[:0], cfg)

    return lookup
