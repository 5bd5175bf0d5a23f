"""dedupe's Ray build: `curate dedupe --engine ray`, with results identical to the local engine.

    curate dedupe REF --engine ray [--address auto|HOST:PORT] [--verify] [--against OTHER]

Stages (the local engine's, `datadiet.curate.dedupe`, distributed):

1. sign (partition-local): a Ray Data `map_batches` over slices of the version's Parquet parts reads
   id and text, normalises, shingles, signs and computes band keys (`dedupe.sign_texts`); the
   signed blocks stay in the cluster's object store. With --verify each block also keeps its texts.
2. exact: a hash-partitioned shuffle by text digest; in each partition every document is linked
   to the lowest position with its digest, and one representative per digest emits its band rows.
3. candidates: Ray Data `groupby` on a hash of the band key, then `map_groups`: each partition
   runs `cluster.band_edges` per band, so pairs come from the same buckets as locally.
4. filter: two hash joins of the edges with the signatures (on u, then on v), each edge kept if
   its estimated Jaccard is >= threshold. Edges are deduplicated in the first join.
5. verify (--verify): in the same two joins: the first carries u's text with the edge, the
   second looks up v's and, for the edges the estimate kept, hashes both texts' shingles and keeps
   the edge if their exact Jaccard is >= threshold. Texts never reach the driver.
6. cluster: connected components by alternating large-star / small-star rounds (Kiveris et al.,
   "Connected Components in MapReduce and Beyond", 2014) over hash-partitioned edges, until a
   round changes nothing: then every component is a star around its lowest position, the local
   engine's label. No node ever holds all edges. Then members are joined with their signatures
   (and texts) and shuffled by component; each partition picks keepers with the local policies
   (`first`, `longest`, `random`), the estimate to them and, with --verify, the exact Jaccard.
7. write: one Ray task per input part reads the part, drops its removed rows (only those
   positions are sent to it) and stages the rest through `PartWriter.stage_target()` (the
   version's temporary folder, or its folder on an object store); the driver adopts the staged
   files in part order (`PartWriter.adopt_staged`), so the parts are byte-identical to the local
   engine's, which writes one frame per input part. The driver writes clusters.parquet (the
   members, not the edges) and `Store.commit` publishes the manifest last; the version id is the
   local engine's (the engine is no parameter).

With --against OTHER, REF and OTHER are signed together (OTHER's positions follow REF's). Stage 2
matches each REF document to the lowest OTHER document with its digest and emits band rows of
every document; stage 3 runs `cluster.cross_edges`; the first join of stage 4 drops edges of
exactly matched documents; and instead of stage 6 a shuffle by REF document picks its match
(highest estimate, then lowest OTHER position, as `find_contaminated`) and one by OTHER document
adds the matched id. The matched REF documents are removed; OTHER is not changed.

The functions each stage runs in Ray workers are in `ray_tasks.py`. Shuffles (2, 4-6) are the Ray
toolkit's (`datadiet.engine.ray`: `split`, `reduce`, `gather`).
The table by position that three joins read (signatures, and texts with --verify) is gathered into
one object per partition, so Ray's locality-aware scheduling runs those joins where it lies.
Workers read the parts where the store keeps them (`Dataset.part_sources`: a path on a local or
shared filesystem, else straight from the object store) and stage their output through
`PartWriter.stage_target()` (the version's temporary folder, or its manifest-less folder on the
object store), so with a remote store no row passes through the driver's machine either way.

Invoked by `datadiet.curate.dedupe.op.dedupe(..., engine="ray")`, which imports this module only then and
commits the version whose build function `build` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import ray
import ray.data
import ray.data.context

from datadiet.curate.dedupe.minhash import MinhashConfig
from datadiet.curate.dedupe.output import (
    CLUSTER_ID,
    CLUSTERS_FILE,
    CLUSTERS_SCHEMA,
    JACCARD_ESTIMATE,
    JACCARD_EXACT,
    KEEPER_ID,
    KEPT,
    POSITION,
    counters,
    summary_stats,
)
from datadiet.curate.dedupe.ray_tasks import (
    _D0,
    _D1,
    _EST,
    _EXJ,
    _KEEPER,
    _KEYS,
    _LABEL,
    _LEN,
    _PART,
    _POS,
    _SAME,
    _SIG,
    _attach_u,
    _band_group,
    _cross_group,
    _exact,
    _exact_against,
    _filter_v,
    _keeper_ids,
    _keepers,
    _large_star,
    _members,
    _pick,
    _scored,
    _sign_batch,
    _small_star,
    _write_part,
    _write_part_task,
)
from datadiet.engine.ray import (
    I64,
    Split,
    U,
    V,
    concat_blocks,
    connect,
    firsts,
    gather,
    plan_slices,
    reduce,
    sort_shuffle,
    split,
)
from datadiet.errors import DatadietError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import Timer
from datadiet.schema import ID, TEXT
from datadiet.store import STAGE_PREFIX, Dataset, PartSource, PartWriter, StageTarget

# Hash partitions per CPU of the cluster: 2 keeps every core busy while one partition is slower.
PARTS_PER_CPU = 2


# ... and at least one partition per 2M band rows (16 MB of keys + positions), so a reduce task's
# input stays far below a worker's memory at any N.
ROWS_PER_PART = 2_000_000


# Large-star / small-star converges in O(log^2 n) rounds; real duplicate graphs take 2-5.
MAX_ROUNDS = 100


def _partitions(n: int, cpus: int, bands: int) -> int:
    return max(2, PARTS_PER_CPU * cpus, math.ceil(n * bands / ROWS_PER_PART))


def _sign(
    datasets: Sequence[Dataset], cfg: MinhashConfig, bands: int, rows: int, cpus: int, tracker: Tracker
) -> list[Any]:
    """Stage 1: signed blocks (positions over `datasets` concatenated) as object refs."""
    n = sum(ds.rows for ds in datasets)
    with tracker.task("Signing (ray)", total=n) as task:
        slices = plan_slices([s for ds in datasets for s in ds.part_sources()], 2 * cpus)
        sources = list(dict.fromkeys(s.source for s in slices))  # shipped once, with the function
        index = {s: k for k, s in enumerate(sources)}
        items = [{"source": index[s.source], "offset": s.offset, "length": s.length, "start": s.start} for s in slices]
        signed_ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            lambda batch: _sign_batch(batch, sources, cfg, bands, rows), batch_size=1, batch_format="pyarrow"
        )
        refs: list[Any] = signed_ds.to_arrow_refs()
        task.advance(n)
    return refs


def _filter(
    with_u: list[Any], by_pos: Split, parts: int, cfg: MinhashConfig, stats: dict[str, Any], *, scores: bool
) -> list[Any]:
    """Stage 4 (and 5 under --verify): the candidate edges that pass, counting the rejected into STATS."""
    kept = reduce(
        [split(firsts(with_u, 0), V, parts), by_pos],
        lambda e, s: _filter_v(e, s, cfg, scores=scores),
        num_returns=3,
    )
    stats["rejected_by_estimate"] = sum(ray.get(firsts(kept, 1)))
    stats["rejected_by_verification"] = sum(ray.get(firsts(kept, 2)))
    return firsts(kept, 0)


def find_members(
    datasets: Sequence[Dataset],
    cfg: MinhashConfig,
    bands: int,
    rows: int,
    *,
    cpus: int,
    timer: Timer,
    tracker: Tracker = NULL_TRACKER,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Stages 1-6 on the cluster: every member of every cluster of size > 1, and the counters.

    Returns:
        A frame with id, position, cluster_id, keeper (position), keeper_id, same (normalised
        text equal to the keeper's), jaccard_estimate and jaccard_exact (1.0 where same, the
        exact Jaccard to the keeper with `cfg.verify`, else NaN); and the stats of
        `dedupe.find_duplicates`.
    """
    n = sum(ds.rows for ds in datasets)
    minhash = cfg.method == "minhash"
    parts = _partitions(n, cpus, bands if minhash else 1)
    stats = counters()
    with timer.stage("sign"):
        signed = _sign(datasets, cfg, bands, rows, cpus, tracker)
        by_pos = gather(split(signed, _POS, parts, columns=(_POS, ID, _LEN, _D0, _D1, _SIG, TEXT)))
    with timer.stage("exact"):
        exact_out = reduce(
            [split(signed, _D0, parts, columns=(_POS, _D0, _D1, _KEYS))],
            lambda t: _exact(t, bands, parts),
            num_returns=2,
        )
        exact_edges, band_rows = firsts(exact_out, 0), firsts(exact_out, 1)
    near: list[Any] = []
    if minhash:
        with timer.stage("candidates"):
            with sort_shuffle():
                grouped = ray.data.from_arrow_refs(band_rows).groupby(_PART, num_partitions=parts)
                candidates = grouped.map_groups(_band_group, batch_format="pyarrow").to_arrow_refs()
            with_u = reduce([split(candidates, U, parts), by_pos], lambda e, s: _attach_u(e, s, cfg), num_returns=2)
            stats["candidate_pairs"] = sum(ray.get(firsts(with_u, 1)))
        with timer.stage("filter"):
            near = _filter(with_u, by_pos, parts, cfg, stats, scores=False)
    with timer.stage("cluster"), tracker.task("Components (ray)", total=None):
        edges = exact_edges + near
        for _ in range(MAX_ROUNDS):
            large = reduce([split(edges, U, parts, both=True)], _large_star, num_returns=2)
            small = reduce([split(firsts(large, 0), U, parts)], _small_star, num_returns=2)
            edges = firsts(small, 0)
            if sum(ray.get(firsts(large, 1))) == 0 and sum(ray.get(firsts(small, 1))) == 0:
                break
        else:
            raise DatadietError(f"connected components did not converge in {MAX_ROUNDS} rounds; report this as a bug")
        members = reduce([split(edges, U, parts), split(edges, V, parts), by_pos], _members)
        keepers = reduce([split(members, _LABEL, parts)], lambda m: _keepers(m, cfg))
        frame = pl.from_arrow(concat_blocks(ray.get(keepers)))
    assert isinstance(frame, pl.DataFrame)
    sizes = frame.group_by(CLUSTER_ID).len()
    stats.update(clusters=sizes.height, largest_cluster=int(sizes["len"].max()) if sizes.height else min(n, 1))  # type: ignore[arg-type]
    return frame, stats


def find_matches(
    source: Dataset,
    other: Dataset,
    cfg: MinhashConfig,
    bands: int,
    rows: int,
    *,
    cpus: int,
    timer: Timer,
    tracker: Tracker = NULL_TRACKER,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """`--against`: the documents of `source` that duplicate a document of `other`, on the cluster.

    Positions of `other` follow those of `source` (N .. N + M - 1), as in `dedupe.find_contaminated`.

    Returns:
        One row per removed document: id, u (its position), v (the matched position of OTHER),
        keeper_id, est, exact (NaN unless `cfg.verify` or an exact match) and same; and the
        stats of `dedupe.find_contaminated`.
    """
    n, m = source.rows, other.rows
    minhash = cfg.method == "minhash"
    parts = _partitions(n + m, cpus, bands if minhash else 1)
    stats = counters()
    with timer.stage("sign"):
        signed = _sign([source, other], cfg, bands, rows, cpus, tracker)
        by_pos = gather(split(signed, _POS, parts, columns=(_POS, ID, _SIG, TEXT)))
    with timer.stage("exact"):
        exact_out = reduce(
            [split(signed, _D0, parts, columns=(_POS, _D0, _D1, _KEYS))],
            lambda t: _exact_against(t, n, bands, parts),
            num_returns=2,
        )
        exact = split(firsts(exact_out, 0), U, parts)
        band_rows = firsts(exact_out, 1)
    scored = [ray.put(_scored(*(np.zeros(0, np.int64),) * 2, *(np.zeros(0),) * 2))]
    if minhash and m:
        with timer.stage("candidates"):
            with sort_shuffle():
                grouped = ray.data.from_arrow_refs(band_rows).groupby(_PART, num_partitions=parts)
                candidates = grouped.map_groups(lambda r: _cross_group(r, n), batch_format="pyarrow").to_arrow_refs()
            with_u = reduce(
                [split(candidates, U, parts), exact, by_pos],
                lambda e, x, s: _attach_u(e, s, cfg, exclude=x),
                num_returns=2,
            )
            stats["candidate_pairs"] = sum(ray.get(firsts(with_u, 1)))
        with timer.stage("filter"):
            scored = _filter(with_u, by_pos, parts, cfg, stats, scores=True)
    with timer.stage("match"):
        picked = reduce([split(scored, U, parts), exact, by_pos], _pick)
        named = reduce([split(picked, V, parts), by_pos], _keeper_ids)
        frame = pl.from_arrow(concat_blocks(ray.get(named)))
    assert isinstance(frame, pl.DataFrame)
    counts = frame.group_by(V).len()
    stats.update(clusters=counts.height, largest_cluster=int(counts["len"].max()) + 1 if counts.height else 0)  # type: ignore[arg-type]
    return frame, stats


def _clusters_frame(members: pl.DataFrame) -> pl.DataFrame:
    """clusters.parquet, as the local engine writes it (`dedupe._clusters_frame`)."""
    return (
        members.select(
            pl.col(ID).cast(pl.String),
            pl.col(POSITION).cast(pl.Int64),
            pl.col(CLUSTER_ID).cast(pl.Int64),
            (pl.col(_KEEPER) == pl.col(POSITION)).alias(KEPT),
            pl.col(KEEPER_ID).cast(pl.String),
            pl.col(JACCARD_ESTIMATE).cast(pl.Float64).fill_nan(None),
            pl.col(JACCARD_EXACT).cast(pl.Float64).fill_nan(None),
        )
        .select(list(CLUSTERS_SCHEMA))
        .sort(CLUSTER_ID, POSITION)
    )


def _against_frame(matches: pl.DataFrame, n: int) -> pl.DataFrame:
    """clusters.parquet of an --against version: one row per removed document, its cluster the OTHER position."""
    return matches.select(
        pl.col(ID).cast(pl.String),
        pl.col(U).cast(pl.Int64).alias(POSITION),
        (pl.col(V) - n).cast(pl.Int64).alias(CLUSTER_ID),
        pl.lit(False).alias(KEPT),
        pl.col(KEEPER_ID).cast(pl.String),
        pl.col(_EST).cast(pl.Float64).fill_nan(None).alias(JACCARD_ESTIMATE),
        pl.col(_EXJ).cast(pl.Float64).fill_nan(None).alias(JACCARD_EXACT),
    ).sort(CLUSTER_ID, POSITION)


def write_parts(
    writer: PartWriter, source: Dataset, removed: I64, *, remote: bool = True, tracker: Tracker = NULL_TRACKER
) -> None:
    """Stage 7: every input part minus its removed rows, one Ray task per part, adopted in part order.

    Each task reads its part where the store keeps it (`Dataset.part_sources`) and gets only the
    part's removed rows; it stages its files through `writer.stage_target()` (the temporary folder,
    or the version's folder on an object store) and the driver adopts them, so no row passes
    through the driver.

    Args:
        writer: The new version's writer.
        source: The deduplicated version.
        removed: Sorted positions (over all of `source`) of the rows to drop.
        remote: False writes in this process (for an empty input, where no cluster is started).
        tracker: Progress.
    """
    sources = source.part_sources()
    bounds = np.cumsum([0, *(s.rows for s in sources)])
    target = writer.stage_target()
    jobs: list[tuple[PartSource, I64, StageTarget, str]] = []
    for k, part in enumerate(sources):
        lo, hi = np.searchsorted(removed, [bounds[k], bounds[k + 1]])
        jobs.append((part, removed[lo:hi] - bounds[k], target, f"{STAGE_PREFIX}-{k:05d}"))
    refs = [_write_part_task.remote(*job) for job in jobs] if remote else []
    with tracker.task("Writing", total=len(jobs)) as task:
        for k, job in enumerate(jobs):
            for staged in ray.get(refs[k]) if remote else _write_part(*job):
                writer.adopt_staged(staged)
            task.advance()


def build(
    source: Dataset,
    cfg: MinhashConfig,
    *,
    other: Dataset | None = None,
    address: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Callable[[PartWriter], dict[str, Any]]:
    """`dedupe.op.dedupe`'s build function on a Ray cluster: same rows, clusters.parquet, stats (timings aside).

    Ray is started only when the function runs, so a version that is up to date never starts it.

    Args:
        source: The version to deduplicate (its store is a folder every Ray worker mounts, or an object store).
        cfg: The parameters.
        other: With --against: remove the documents of `source` that duplicate one of `other`.
        address: The Ray cluster (see `datadiet.engine.ray.connect`).
        tracker: Progress.
    """
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (1, 1)

    def run(writer: PartWriter) -> dict[str, Any]:
        timer = Timer()
        n = source.rows
        found = counters(clusters=0, largest_cluster=0)
        clusters = pl.DataFrame(schema=CLUSTERS_SCHEMA)
        exact = 0
        if n:
            cpus = connect(address)
            if other is None:
                members, found = find_members([source], cfg, bands, rows, cpus=cpus, timer=timer, tracker=tracker)
                clusters = _clusters_frame(members)
                exact = members.filter(pl.col(_SAME) & (pl.col(_KEEPER) != pl.col(POSITION))).height
            else:
                matches, found = find_matches(source, other, cfg, bands, rows, cpus=cpus, timer=timer, tracker=tracker)
                clusters = _against_frame(matches, n)
                exact = int(matches[_SAME].sum())
        with timer.stage("write"):
            clusters.write_parquet(writer.dir / CLUSTERS_FILE, compression="zstd")
            removed = np.sort(clusters.filter(~pl.col(KEPT))[POSITION].to_numpy().astype(np.int64))
            write_parts(writer, source, removed, remote=bool(n), tracker=tracker)
        return summary_stats(cfg, n, int(removed.size), exact, found, timer.seconds)

    return run
