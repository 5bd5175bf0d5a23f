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

Shuffles (2, 4-6) are the Ray toolkit's (`datadiet.engine.ray`: `split`, `reduce`, `gather`).
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
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import ray
import ray.data
import ray.data.context

from datadiet.curate.dedupe import cluster
from datadiet.curate.dedupe.find import _exact_for, _hashes_of, sign_texts
from datadiet.curate.dedupe.minhash import MinhashConfig, estimate_jaccard
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
from datadiet.engine.ray import (
    I64,
    Split,
    U,
    V,
    column_array,
    concat_blocks,
    connect,
    edge_table,
    firsts,
    fixed_list,
    gather,
    matrix,
    plan_slices,
    reduce,
    sort_shuffle,
    split,
)
from datadiet.errors import DatadietError
from datadiet.hashing import fmix64
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import Timer
from datadiet.schema import ID, TEXT
from datadiet.store import STAGE_PREFIX, Dataset, PartSource, PartWriter, Staged, StageTarget

U64 = npt.NDArray[np.uint64]


F64 = npt.NDArray[np.float64]


# Hash partitions per CPU of the cluster: 2 keeps every core busy while one partition is slower.
PARTS_PER_CPU = 2


# ... and at least one partition per 2M band rows (16 MB of keys + positions), so a reduce task's
# input stays far below a worker's memory at any N.
ROWS_PER_PART = 2_000_000


# Large-star / small-star converges in O(log^2 n) rounds; real duplicate graphs take 2-5.
MAX_ROUNDS = 100


_POS, _LEN, _D0, _D1, _SIG, _KEYS = "pos", "length", "d0", "d1", "sig", "keys"


_BAND, _KEY, _PART, _LABEL, _KEEPER = "band", "key", "part", "label", "keeper"


_TEXT_U, _EST, _EXJ, _SAME = "text_u", "est", "exact", "same"


_SCORED = pa.schema([(U, pa.int64()), (V, pa.int64()), (_EST, pa.float64()), (_EXJ, pa.float64())])


def _lookup(keys: I64, table: pa.Table) -> I64:
    """Row of `table` (sorted or not) holding each position in `keys`; every key must be present."""
    pos = column_array(table, _POS, np.int64)
    order = np.argsort(pos, kind="stable")
    idx = np.searchsorted(pos[order], keys)
    out: I64 = order[idx]
    return out


# -- stage functions (run in Ray workers) -------------------------------------------------------


def _sign_batch(batch: pa.Table, sources: Sequence[PartSource], cfg: MinhashConfig, bands: int, rows: int) -> pa.Table:
    out = []
    minhash = cfg.method == "minhash"
    for k, offset, length, start in zip(
        batch.column("source").to_pylist(),
        batch.column("offset").to_pylist(),
        batch.column("length").to_pylist(),
        batch.column("start").to_pylist(),
        strict=True,
    ):
        frame = (
            sources[k].read([ID, TEXT], offset, length).select(pl.col(ID).cast(pl.String), pl.col(TEXT).fill_null(""))
        )
        signed = sign_texts(frame[TEXT].to_list(), cfg, bands, rows)
        cols: dict[str, Any] = {
            _POS: pa.array(np.arange(start, start + frame.height, dtype=np.int64)),
            ID: frame[ID].to_arrow(),
            _LEN: pa.array(signed.lengths),
            _D0: pa.array(signed.digests[:, 0]),
            _D1: pa.array(signed.digests[:, 1]),
        }
        if minhash:
            assert signed.sig is not None and signed.keys is not None
            cols[_SIG] = fixed_list(signed.sig)
            cols[_KEYS] = fixed_list(signed.keys)
        if cfg.verify and minhash:  # exact dedupe has nothing to verify
            # The text rides with the signature (~1 KB a story next to 0.5 KB of signature) so the
            # joins that estimate an edge's Jaccard can also compute the exact one.
            cols[TEXT] = frame[TEXT].to_arrow()
        out.append(pa.table(cols))
    return concat_blocks(out)


def _band_rows(signed: pa.Table, rows: npt.NDArray[np.bool_], bands: int, band_parts: int) -> pa.Table:
    """One row (partition, position, band, key) per band of each selected document."""
    if _KEYS not in signed.column_names:
        return pa.table({_PART: pa.array([], pa.int64())})
    pos = column_array(signed, _POS, np.int64)[rows]
    flat = matrix(signed, _KEYS, np.uint64, bands)[rows].reshape(-1)
    return pa.table(
        {
            _PART: pa.array((flat % np.uint64(band_parts)).astype(np.int64)),
            _POS: pa.array(np.repeat(pos, bands)),
            _BAND: pa.array(np.tile(np.arange(bands, dtype=np.int64), pos.size)),
            _KEY: pa.array(flat),
        }
    )


def _exact(signed: pa.Table, bands: int, band_parts: int) -> tuple[pa.Table, pa.Table]:
    """Digest partition -> (edges to the lowest position with the same digest, band rows of representatives)."""
    pos = column_array(signed, _POS, np.int64)
    frame = pl.DataFrame(
        {"i": pos, "a": column_array(signed, _D0, np.uint64), "b": column_array(signed, _D1, np.uint64)}
    )
    root = frame.select(pl.col("i").min().over("a", "b")).to_series().to_numpy().astype(np.int64)
    dup = root != pos
    return edge_table(pos[dup], root[dup]), _band_rows(signed, ~dup, bands, band_parts)


def _exact_against(signed: pa.Table, n: int, bands: int, band_parts: int) -> tuple[pa.Table, pa.Table]:
    """Digest partition, for --against -> (each REF document's lowest OTHER position with its digest, band rows).

    Every document gives band rows, exact copies included: `cluster.cross_edges` decides between
    all pairs and star edges by bucket size, and the local engine counts every document in it.
    """
    pos = column_array(signed, _POS, np.int64)
    frame = pl.DataFrame(
        {"i": pos, "a": column_array(signed, _D0, np.uint64), "b": column_array(signed, _D1, np.uint64)}
    )
    theirs = frame.filter(pl.col("i") >= n).group_by("a", "b").agg(pl.col("i").min().alias("j"))
    hits = frame.filter(pl.col("i") < n).join(theirs, on=["a", "b"], how="inner")
    edges = edge_table(hits["i"].to_numpy().astype(np.int64), hits["j"].to_numpy().astype(np.int64))
    return edges, _band_rows(signed, np.ones(pos.size, dtype=bool), bands, band_parts)


def _band_group(rows: pa.Table) -> pa.Table:
    """One hash partition of band rows -> its candidate edges (as `cluster.band_edges`, band by band)."""
    pos = column_array(rows, _POS, np.int64)
    band = column_array(rows, _BAND, np.int64)
    key = column_array(rows, _KEY, np.uint64)
    chunks = []
    for b in np.unique(band):
        m = band == b
        u, v = cluster.band_edges(pos[m], key[m])
        chunks.append(cluster.pack_edges(u, v))
    if not chunks:
        return edge_table(np.zeros(0, np.int64), np.zeros(0, np.int64))
    u, v = cluster.unpack_edges(cluster.unique_packed(np.concatenate(chunks)))
    return edge_table(u, v)


def _cross_group(rows: pa.Table, n: int) -> pa.Table:
    """One hash partition of band rows -> edges (REF document u, OTHER document v), as `cluster.cross_edges`."""
    pos = column_array(rows, _POS, np.int64)
    band = column_array(rows, _BAND, np.int64)
    key = column_array(rows, _KEY, np.uint64)
    chunks = []
    for b in np.unique(band):
        m = band == b
        u, v = cluster.cross_edges(pos[m], key[m], pos[m] >= n)
        chunks.append(cluster.pack_edges(u, v))
    if not chunks:
        return edge_table(np.zeros(0, np.int64), np.zeros(0, np.int64))
    larger, smaller = cluster.unpack_edges(cluster.unique_packed(np.concatenate(chunks)))
    return edge_table(smaller, larger)  # u < n <= v


def _texts(positions: I64, column: Any) -> dict[int, str]:
    return dict(zip(positions.tolist(), column.to_pylist(), strict=True))


def _exact_jaccards(u: I64, v: I64, texts: dict[int, str], cfg: MinhashConfig) -> F64:
    """Exact shingle-set Jaccard of each edge, hashing the texts at hand as the local engine's lookup does."""

    def lookup(positions: I64) -> dict[int, U64]:
        return _hashes_of([texts[int(p)] for p in positions], positions, cfg)

    return _exact_for(u, v, lookup)


def _attach_u(
    edges: pa.Table, signed: pa.Table, cfg: MinhashConfig, exclude: pa.Table | None = None
) -> tuple[pa.Table, int]:
    """Edges keyed by u -> distinct edges with u's signature (and text, for --verify), and their count.

    With `exclude` (--against: the exact matches keyed by u), u is the REF document, the smaller
    end, and an edge whose u already has an exact match is dropped, as `find_contaminated` does.
    """
    larger, smaller = cluster.unique_edges(column_array(edges, U, np.int64), column_array(edges, V, np.int64))
    u, v = (larger, smaller) if exclude is None else (smaller, larger)
    if exclude is not None and u.size:
        new = ~np.isin(u, column_array(exclude, U, np.int64))
        u, v = u[new], v[new]
    rows = pa.array(_lookup(u, signed))
    cols = {U: pa.array(u, pa.int64()), V: pa.array(v, pa.int64()), _SIG: signed.column(_SIG).take(rows)}
    if cfg.verify:
        cols[_TEXT_U] = signed.column(TEXT).take(rows)
    return pa.table(cols), int(u.size)


def _scored(u: I64, v: I64, est: F64, exact: F64) -> pa.Table:
    return pa.table(
        {U: pa.array(u, pa.int64()), V: pa.array(v, pa.int64()), _EST: pa.array(est), _EXJ: pa.array(exact)},
        schema=_SCORED,
    )


def _filter_v(edges: pa.Table, signed: pa.Table, cfg: MinhashConfig, scores: bool) -> tuple[pa.Table, int, int]:
    """Edges keyed by v -> those whose Jaccard is >= threshold, and how many the estimate and --verify rejected.

    The estimate comes from the signatures; with --verify an edge must also pass the exact Jaccard
    of its shingle sets, hashed here from the two texts (only for the edges the estimate kept).
    With `scores`, the kept edges carry both values (for --against's choice of match).
    """
    u, v = column_array(edges, U, np.int64), column_array(edges, V, np.int64)
    est = np.ones(u.size)
    rows = _lookup(v, signed)
    if u.size:
        su = matrix(edges, _SIG, np.uint32, cfg.num_perm)
        sv = matrix(signed, _SIG, np.uint32, cfg.num_perm)[rows]
        est = estimate_jaccard(su, sv)
    ok = est >= cfg.threshold
    by_estimate = int(ok.size - ok.sum())
    exact = np.full(u.size, np.nan)
    by_verify = 0
    if cfg.verify:
        idx = np.flatnonzero(ok)
        texts = _texts(u[idx], edges.column(_TEXT_U).take(pa.array(idx)))
        texts.update(_texts(v[idx], signed.column(TEXT).take(pa.array(rows[idx]))))
        exact[idx] = _exact_jaccards(u[idx], v[idx], texts, cfg)
        passed = ok & (exact >= cfg.threshold)
        by_verify = int(ok.sum() - passed.sum())
        ok = passed
    out = _scored(u[ok], v[ok], est[ok], exact[ok]) if scores else edge_table(u[ok], v[ok])
    return out, by_estimate, by_verify


def _large_star(edges: pa.Table) -> tuple[pa.Table, int]:
    """Edges (node, neighbour) keyed by node: link every larger neighbour to the lowest node seen."""
    f = pl.DataFrame({"s": column_array(edges, U, np.int64), "d": column_array(edges, V, np.int64)}).unique()
    f = f.with_columns(pl.min_horizontal(pl.col("d").min().over("s"), pl.col("s")).alias("m"))
    changed = f.filter((pl.col("d") > pl.col("s")) & (pl.col("m") < pl.col("s")))["s"].n_unique()
    out = f.filter(pl.col("d") > pl.col("s")).select("d", "m").unique()
    return edge_table(out["d"].to_numpy().astype(np.int64), out["m"].to_numpy().astype(np.int64)), int(changed)


def _small_star(edges: pa.Table) -> tuple[pa.Table, int]:
    """Edges (larger, smaller) keyed by the larger: link it and its smaller neighbours to the lowest."""
    f = pl.DataFrame({"s": column_array(edges, U, np.int64), "d": column_array(edges, V, np.int64)}).unique()
    f = f.with_columns(pl.col("d").min().over("s").alias("m"), pl.len().over("s").alias("k"))
    changed = f.filter(pl.col("k") > 1)["s"].n_unique()
    leaves = pl.concat([f.select(pl.col("d").alias("x"), "m"), f.select(pl.col("s").alias("x"), "m")])
    out = leaves.filter(pl.col("x") != pl.col("m")).unique()
    return edge_table(out["x"].to_numpy().astype(np.int64), out["m"].to_numpy().astype(np.int64)), int(changed)


def _members(leaves: pa.Table, centres: pa.Table, signed: pa.Table) -> pa.Table:
    """Star edges (leaf, centre) -> one row per member: position, label and what the keeper needs."""
    leaf = column_array(leaves, U, np.int64)
    centre = np.unique(column_array(centres, V, np.int64))
    pos = np.concatenate([leaf, centre])
    label = np.concatenate([column_array(leaves, V, np.int64), centre])
    rows = signed.take(pa.array(_lookup(pos, signed)))
    rows = rows.drop_columns([c for c in (_KEYS, _POS) if c in rows.column_names])
    return rows.append_column(_POS, pa.array(pos)).append_column(_LABEL, pa.array(label))


def _keepers(members: pa.Table, cfg: MinhashConfig) -> pa.Table:
    """Members keyed by label -> each member's keeper, kept flag, and estimated (and --verify exact) Jaccard to it."""
    pos = column_array(members, _POS, np.int64)
    label = column_array(members, _LABEL, np.int64)
    # The orders of `cluster.choose_keepers`: the first row of each component is its keeper.
    if cfg.keep == "first":
        order = np.lexsort((pos, label))
    elif cfg.keep == "longest":
        order = np.lexsort((pos, -column_array(members, _LEN, np.int64), label))
    else:
        mixed = np.uint64((cfg.seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        order = np.lexsort((pos, fmix64(pos.astype(np.uint64) ^ mixed), label))
    lab = label[order]
    first = np.ones(lab.size, dtype=bool)
    first[1:] = lab[1:] != lab[:-1]
    group = np.cumsum(first) - 1
    keeper_row = order[first][group]  # row of the keeper, for each row in `order`
    k = np.empty(pos.size, dtype=np.int64)
    k[order] = keeper_row
    d0, d1 = column_array(members, _D0, np.uint64), column_array(members, _D1, np.uint64)
    same = (d0 == d0[k]) & (d1 == d1[k])
    est = np.ones(pos.size)
    exact = np.where(same, 1.0, np.nan)
    near = np.flatnonzero(~same)
    if near.size and _SIG in members.column_names:
        sig = matrix(members, _SIG, np.uint32, cfg.num_perm)
        est[near] = estimate_jaccard(sig[near], sig[k[near]])
    if near.size and cfg.verify:
        need = np.unique(np.concatenate([near, k[near]]))
        texts = _texts(pos[need], members.column(TEXT).take(pa.array(need)))
        exact[near] = _exact_jaccards(pos[near], pos[k[near]], texts, cfg)
    ids = members.column(ID)
    return pa.table(
        {
            ID: ids,
            POSITION: pa.array(pos),
            CLUSTER_ID: pa.array(label),
            _KEEPER: pa.array(pos[k]),
            KEEPER_ID: ids.take(pa.array(k)),
            _SAME: pa.array(same),
            JACCARD_ESTIMATE: pa.array(est),
            JACCARD_EXACT: pa.array(exact),
        }
    )


def _pick(scored: pa.Table, exact: pa.Table, signed: pa.Table) -> pa.Table:
    """Kept edges and exact matches keyed by the REF document -> its one match in OTHER, and its id.

    An exact match wins (such documents have no other edges); otherwise the highest estimate,
    then the lowest OTHER position, as `find_contaminated` picks.
    """
    u, v = column_array(scored, U, np.int64), column_array(scored, V, np.int64)
    est, ex = column_array(scored, _EST, np.float64), column_array(scored, _EXJ, np.float64)
    order = np.lexsort((v, -est, u))
    first = np.ones(order.size, dtype=bool)
    first[1:] = u[order][1:] != u[order][:-1]
    pick = order[first]
    eu, ev = column_array(exact, U, np.int64), column_array(exact, V, np.int64)
    u = np.concatenate([eu, u[pick]])
    return pa.table(
        {
            ID: signed.column(ID).take(pa.array(_lookup(u, signed))),
            U: pa.array(u, pa.int64()),
            V: pa.array(np.concatenate([ev, v[pick]]), pa.int64()),
            _EST: pa.array(np.concatenate([np.ones(eu.size), est[pick]])),
            _EXJ: pa.array(np.concatenate([np.ones(eu.size), ex[pick]])),
            _SAME: pa.array(np.concatenate([np.ones(eu.size, dtype=bool), np.zeros(pick.size, dtype=bool)])),
        }
    )


def _keeper_ids(picked: pa.Table, signed: pa.Table) -> pa.Table:
    """Matches keyed by the OTHER document -> with its id."""
    v = column_array(picked, V, np.int64)
    return picked.append_column(KEEPER_ID, signed.column(ID).take(pa.array(_lookup(v, signed))))


def _write_part(source: PartSource, drop: I64, target: StageTarget, stem: str) -> list[Staged]:
    """One input part minus its removed rows (`drop`: rows within the part), staged in `target`.

    The local engine passes the same frame to one `PartWriter.write`, which stages it the same way,
    so the adopted files are byte-identical to the local engine's.
    """
    frame = source.read()
    keep = np.ones(frame.height, dtype=bool)
    keep[drop] = False
    return target.stage(frame.filter(pl.Series(keep)), stem)


_write_part_task = ray.remote(_write_part)


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
