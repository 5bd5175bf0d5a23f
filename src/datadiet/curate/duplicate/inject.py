"""The duplication plan and its application: the pool, the overwritten (or inserted) slots, the
copies' labels, their placement, the manifest stats and `pool.parquet` — the same for both engines.

    frame, stats = duplicate_frame(frame, DuplicateConfig(rate=0.5, pool=10, seed=1))   # pure
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, ID, SOURCE_ID, TEXT, conform

if TYPE_CHECKING:
    from datadiet.curate.duplicate.op import DuplicateConfig
from datadiet.curate.duplicate.near import near_copies

JACCARD_TO_SOURCE = "jaccard_to_source"


COPY_SUFFIX = "#dup"


POOL_FILE = "pool.parquet"


# The manifest lists at most this many pool ids (P can reach N/2 with --copies 1); the full pool
# is always in POOL_FILE next to the parts.
MAX_POOL_IDS_IN_MANIFEST = 1000


# Keys of the stats dict (stored in the manifest under "stats").
STAT_ROWS_IN = "rows_in"


STAT_ROWS_OUT = "rows_out"


STAT_MODE = "mode"


STAT_POOL_SIZE = "pool_size"


STAT_POOL_IDS = "pool_ids"


STAT_POOL_IDS_TRUNCATED = "pool_ids_truncated"


STAT_COPIES_INJECTED = "copies_injected"


STAT_COPIES_PER_POOL_DOC_MIN = "copies_per_pool_doc_min"


STAT_COPIES_PER_POOL_DOC_MAX = "copies_per_pool_doc_max"


STAT_ROWS_OVERWRITTEN = "rows_overwritten"


STAT_UNIQUE_DOCUMENTS = "unique_documents"


STAT_INJECTED_SHARE = "injected_share"


STAT_COPY_SHARE = "copy_share"


STAT_EDIT_FRACTION_MEAN = "edit_fraction_mean"


STAT_JACCARD_MEAN = "jaccard_to_source_mean"


@dataclass(frozen=True)
class DuplicationPlan:
    """Which documents are copied where; a pure function of N, the config and the seed."""

    pool_pos: np.ndarray  # (P,) row positions of the pool documents, in pool order
    copy_pool: np.ndarray  # (n,) pool member of each copy (round robin: j % P)
    copy_pos: np.ndarray  # (n,) output position of each copy
    rows_out: int


def pool_size(n_docs: int, cfg: DuplicateConfig) -> int:
    """The pool size P for a dataset of `n_docs` documents (see the module docstring)."""
    if cfg.pool is not None:
        return cfg.pool
    if cfg.copies is None:
        return 1
    # Overwriting: P pool documents with K copies each fill R·(N−P) slots, so P = R·N/(K+R).
    target = cfg.rate * n_docs / (cfg.copies + (0.0 if cfg.append else cfg.rate))
    return int(min(max(1, math.floor(target + 0.5)), max(n_docs, 1)))


def copies_count(n_docs: int, pool: int, cfg: DuplicateConfig) -> int:
    """How many copies are injected: int(R·N) when appending, else int(R·(N−P))."""
    return int(cfg.rate * n_docs) if cfg.append else int(cfg.rate * (n_docs - pool))


def plan_duplication(ids: pl.Series, copy_index: pl.Series, cfg: DuplicateConfig) -> DuplicationPlan:
    """Draw the pool and the slots of the copies for a dataset with these ids and copy indices.

    Raises:
        UsageError: see `plan_positions`.
    """
    found = []
    for name in fixed_docs(cfg):
        hits = np.flatnonzero((ids == name).to_numpy())
        found.append((int(hits[0]), int(copy_index[int(hits[0])])) if hits.size else None)
    return plan_positions(ids.len(), np.flatnonzero(copy_index.to_numpy() == 0), cfg, found)


def fixed_docs(cfg: DuplicateConfig) -> tuple[str, ...]:
    """The ids `cfg` fixes as the pool's first members, in order (`docs`, or `doc` alone)."""
    return cfg.docs if cfg.docs is not None else (cfg.doc,) if cfg.doc is not None else ()


def plan_positions(
    n: int, originals: np.ndarray, cfg: DuplicateConfig, docs: Sequence[tuple[int, int] | None] = ()
) -> DuplicationPlan:
    """`plan_duplication` from counts alone: what a cluster's driver knows without reading any text.

    Args:
        n: Rows of the dataset.
        originals: Ascending positions of its original documents (copy_index 0).
        cfg: The duplication.
        docs: For each id of `fixed_docs(cfg)`: the position of the first row with that id and its
            copy_index, or None when no row has it.

    Raises:
        UsageError: the dataset is empty, the pool is larger than its original documents, or
            `cfg.doc` is not the id of an original document in it.
    """
    if n == 0:
        raise UsageError("the dataset is empty; there is nothing to duplicate")
    p = pool_size(n, cfg)
    if p > originals.size:
        raise UsageError(
            f"--pool {p} is larger than the {originals.size} original documents of the dataset; "
            f"use at most {originals.size}"
        )
    pool_seq, slot_seq, _ = np.random.SeedSequence(cfg.seed).spawn(3)
    pool_rng = np.random.default_rng(pool_seq)
    names = fixed_docs(cfg)
    if names:
        for name, hit in zip(names, docs, strict=True):
            if hit is None:
                raise UsageError(f"--doc {name!r} is not an id in the dataset; pick one from `curate head REF`")
            if hit[1] != 0:
                raise UsageError(f"--doc {name!r} is itself a copy; pick an original document (copy_index 0)")
        fixed = np.array([hit[0] for hit in docs if hit is not None][:p], dtype=np.int64)
        # With one fixed document this is the draw `--doc` always made, so those versions keep their rows.
        others = originals[~np.isin(originals, fixed)]
        k = p - fixed.size
        rest = others[pool_rng.choice(others.size, k, replace=False)] if k > 0 else others[:0]
        pool_pos = np.concatenate([fixed, rest]).astype(np.int64)
    else:
        pool_pos = originals[pool_rng.choice(originals.size, p, replace=False)].astype(np.int64)
    n_copies = copies_count(n, p, cfg)
    copy_pool = np.arange(n_copies, dtype=np.int64) % p
    slot_rng = np.random.default_rng(slot_seq)
    if cfg.append:
        rows_out = n + n_copies
        copy_pos = slot_rng.choice(rows_out, n_copies, replace=False).astype(np.int64)
    else:
        rows_out = n
        eligible = np.delete(np.arange(n, dtype=np.int64), pool_pos)
        copy_pos = eligible[slot_rng.choice(eligible.size, n_copies, replace=False)]
    return DuplicationPlan(pool_pos=pool_pos, copy_pool=copy_pool, copy_pos=copy_pos, rows_out=rows_out)


def copy_numbers(base: np.ndarray, copy_pool: np.ndarray, pool: int) -> np.ndarray:
    """The copy_index k of every copy: its source's highest existing copy_index (BASE) plus its round."""
    out: np.ndarray = base[copy_pool] + np.arange(copy_pool.size, dtype=np.int64) // pool + 1
    return out


def chunk_bounds(part_rows: Sequence[int], plan: DuplicationPlan, append: bool) -> np.ndarray:
    """Output row ranges written one `PartWriter.write` each: chunk t holds input part t's rows.

    Overwriting keeps every position, so chunk t is part t's range. Appending, chunk t starts at
    part t's first original (chunk 0 at 0, so copies before the first original go to it) and runs
    to the next chunk's start; copies after the last original go to the last chunk.

    Returns:
        (parts + 1,) ascending output positions, from 0 to `plan.rows_out`.
    """
    starts = np.concatenate([[0], np.cumsum(np.asarray(part_rows, dtype=np.int64))]).astype(np.int64)
    if not append:
        return starts
    n = int(starts[-1])
    taken = np.zeros(plan.rows_out, dtype=bool)
    taken[plan.copy_pos] = True
    free = np.flatnonzero(~taken)  # free[i] is the output position of original i
    inner = starts[1:-1]  # n >= 1: an empty dataset has no plan
    at = np.where(inner < n, free[np.minimum(inner, n - 1)], plan.rows_out)
    return np.concatenate([[0], at, [plan.rows_out]]).astype(np.int64)


def with_jaccard_column(frame: pl.DataFrame) -> pl.DataFrame:
    """FRAME with a null `jaccard_to_source` column (Float32) where it has none."""
    if JACCARD_TO_SOURCE in frame.columns:
        return frame
    return frame.with_columns(pl.lit(None, dtype=pl.Float32).alias(JACCARD_TO_SOURCE))


def label_copies(
    copies: pl.DataFrame, k: np.ndarray, edit: np.ndarray, jaccard: np.ndarray, with_jaccard: bool
) -> pl.DataFrame:
    """Label copies of pool rows (the text possibly edited): id, source_id, copy_index, edit share, Jaccard."""
    source = copies.get_column(ID)
    copies = copies.with_columns(
        pl.format("{}{}{}", source, pl.lit(COPY_SUFFIX), pl.Series(k)).alias(ID),
        source.alias(SOURCE_ID),
        pl.Series(COPY_INDEX, k, dtype=pl.Int32),
        pl.Series(EDIT_FRACTION, edit, dtype=pl.Float32),
    )
    if with_jaccard:
        copies = copies.with_columns(pl.Series(JACCARD_TO_SOURCE, jaccard, dtype=pl.Float32))
    return copies


def place(frame: pl.DataFrame, copies: pl.DataFrame, positions: np.ndarray, append: bool) -> pl.DataFrame:
    """Put copy j at output row positions[j]: over FRAME's row there, or (append) between its rows, kept in order."""
    n, n_copies = frame.height, copies.height
    if not n_copies:
        return frame
    # One gather places originals and copies: output row i comes from combined row order[i].
    if append:
        order = np.full(n + n_copies, -1, dtype=np.int64)
        order[positions] = n + np.arange(n_copies, dtype=np.int64)
        order[order < 0] = np.arange(n, dtype=np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
        order[positions] = n + np.arange(n_copies, dtype=np.int64)
    return pl.concat([frame, copies], how="vertical")[order]


def duplicate_frame(
    frame: pl.DataFrame, cfg: DuplicateConfig, tracker: Tracker = NULL_TRACKER, workers: int | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Return FRAME with copies injected as CFG says, and the operation's stats.

    Pure: the input is not modified, and the result depends only on the rows, CFG and its seed.

    Args:
        frame: Rows with at least `id` and `text` (other bookkeeping columns are filled in).
        cfg: The duplication to apply.
        tracker: Progress reporting.
        workers: Processes that edit near copies (default: every core); does not change the result.

    Returns:
        The new rows (conformed to the schema) and a stats dict with the keys `STAT_*`.

    Raises:
        UsageError: see `plan_duplication`.
    """
    out, stats, _, _ = _duplicate(frame, cfg, tracker, workers)
    return out, stats


def _duplicate(
    frame: pl.DataFrame, cfg: DuplicateConfig, tracker: Tracker, workers: int | None = None
) -> tuple[pl.DataFrame, dict[str, Any], pl.DataFrame, DuplicationPlan]:
    frame = conform(frame)
    n = frame.height
    plan = plan_duplication(frame.get_column(ID), frame.get_column(COPY_INDEX), cfg)
    p, n_copies = plan.pool_pos.size, plan.copy_pool.size
    pool = frame[plan.pool_pos]
    pool_ids = pool.get_column(ID)
    # k counts on from copies of the same source already in the input, so ids stay unique.
    base = (
        pl.DataFrame({SOURCE_ID: pool_ids})
        .join(
            frame.filter(pl.col(SOURCE_ID).is_in(pool_ids.implode()))
            .group_by(SOURCE_ID)
            .agg(pl.col(COPY_INDEX).max().alias("base")),
            on=SOURCE_ID,
            how="left",
            maintain_order="left",
        )
        .get_column("base")
        .fill_null(0)
        .to_numpy()
        .astype(np.int64)
    )
    k = copy_numbers(base, plan.copy_pool, p)
    with_jaccard = cfg.near > 0 or JACCARD_TO_SOURCE in frame.columns
    if with_jaccard:
        frame = with_jaccard_column(frame)
        pool = with_jaccard_column(pool)
    copies = pool[plan.copy_pool]
    edit = np.zeros(n_copies, dtype=np.float32)
    jaccard = np.ones(n_copies, dtype=np.float32)
    if cfg.near > 0 and n_copies > 0:
        with tracker.task("Editing near copies", total=n_copies) as task:
            texts, edit, jaccard = near_copies(
                pool.get_column(TEXT), plan.copy_pool, frame.get_column(TEXT), cfg.near, cfg.seed, task, workers
            )
        copies = copies.with_columns(texts.alias(TEXT))
    copies = label_copies(copies, k, edit, jaccard, with_jaccard)
    out = place(frame, copies, plan.copy_pos, cfg.append)
    stats = summary_stats(
        cfg,
        n=n,
        rows_out=out.height,
        pool_ids=pool_ids,
        copy_pool=plan.copy_pool,
        unique_documents=int(out.get_column(SOURCE_ID).n_unique()),
        copy_rows=int((out.get_column(COPY_INDEX) > 0).sum()),
        edit=edit,
        jaccard=jaccard,
    )
    return out, stats, pool_table(pool_ids, plan.copy_pool), plan


def summary_stats(
    cfg: DuplicateConfig,
    *,
    n: int,
    rows_out: int,
    pool_ids: pl.Series,
    copy_pool: np.ndarray,
    unique_documents: int,
    copy_rows: int,
    edit: np.ndarray,
    jaccard: np.ndarray,
) -> dict[str, Any]:
    """The manifest stats of a duplicate version (the same whichever engine made it).

    Args:
        cfg: The duplication.
        n: Input rows.
        rows_out: Output rows.
        pool_ids: Ids of the pool documents, in pool order.
        copy_pool: Pool member of each copy.
        unique_documents: Distinct `source_id` values of the output.
        copy_rows: Output rows with copy_index > 0 (copies made now and any in the input).
        edit: Edit fraction of each copy, in copy order (Float32).
        jaccard: Jaccard of each copy to its source, in copy order (Float32).
    """
    p, n_copies = pool_ids.len(), copy_pool.size
    counts = np.bincount(copy_pool, minlength=p)
    stats: dict[str, Any] = {
        STAT_ROWS_IN: n,
        STAT_ROWS_OUT: rows_out,
        STAT_MODE: "append" if cfg.append else "overwrite",
        STAT_POOL_SIZE: p,
        STAT_POOL_IDS: pool_ids.head(MAX_POOL_IDS_IN_MANIFEST).to_list(),
        STAT_POOL_IDS_TRUNCATED: p > MAX_POOL_IDS_IN_MANIFEST,
        STAT_COPIES_INJECTED: n_copies,
        STAT_COPIES_PER_POOL_DOC_MIN: int(counts.min()),
        STAT_COPIES_PER_POOL_DOC_MAX: int(counts.max()),
        STAT_ROWS_OVERWRITTEN: 0 if cfg.append else n_copies,
        STAT_UNIQUE_DOCUMENTS: unique_documents,
        STAT_INJECTED_SHARE: n_copies / rows_out,
        STAT_COPY_SHARE: copy_rows / rows_out,
    }
    if cfg.near > 0:
        stats[STAT_EDIT_FRACTION_MEAN] = float(edit.mean()) if n_copies else 0.0
        stats[STAT_JACCARD_MEAN] = float(jaccard.mean()) if n_copies else 1.0
    return stats


def pool_table(pool_ids: pl.Series, copy_pool: np.ndarray) -> pl.DataFrame:
    """The rows of POOL_FILE: every pool document's id and its number of copies."""
    counts = np.bincount(copy_pool, minlength=pool_ids.len())
    return pl.DataFrame({ID: pool_ids, "copies": counts.astype(np.int64)})


def pool_file_bytes(pool: pl.DataFrame) -> bytes:
    """POOL_FILE's content."""
    buf = io.BytesIO()
    pool.write_parquet(buf, compression="zstd")
    return buf.getvalue()
