"""The functions dedupe's Ray build runs in Ray workers, one per stage (see `ray.py` for the
stages): sign a batch, exact groups and band rows, band and cross groups, the estimate and
verification joins, large-star and small-star rounds, members and keepers, the part writes.
Each is a pure function of Arrow tables, so it runs wherever Ray schedules it.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    JACCARD_ESTIMATE,
    JACCARD_EXACT,
    KEEPER_ID,
    POSITION,
)
from datadiet.engine.ray import (
    I64,
    U,
    V,
    column_array,
    concat_blocks,
    edge_table,
    fixed_list,
    matrix,
)
from datadiet.hashing import fmix64
from datadiet.schema import ID, TEXT
from datadiet.store import PartSource, Staged, StageTarget

U64 = npt.NDArray[np.uint64]


F64 = npt.NDArray[np.float64]


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
