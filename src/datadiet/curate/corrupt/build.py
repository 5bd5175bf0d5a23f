"""The local build of `curate corrupt`: the rows of one part, corrupted chunk by chunk, and the stats.

`corrupt_frame` is pure: the same rows (with the same row numbers), the same config and plan give
the same output, however the dataset is split into parts and chunks (see `kernels`). The row-level
choices that must hit an exact count (which documents are truncated or replaced) are drawn once for
the whole dataset by `plan_rows`, from its row count alone.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from datadiet.curate.corrupt import kernels
from datadiet.runtime import cpu_count
from datadiet.schema import (
    COPY_INDEX,
    CORRUPT_FRACTION,
    CORRUPT_FROM,
    CORRUPT_SCHEMA,
    CORRUPTION,
    EDIT_FRACTION,
    ID,
    SOURCE_ID,
    TEXT,
    conform,
)

if TYPE_CHECKING:
    from datadiet.curate.corrupt.op import CorruptConfig

# Text is corrupted in chunks of about this many bytes (whole blocks of kernels.BLOCK_ROWS rows), on
# every core at once (threads: numpy, Arrow and polars release the GIL in their loops). 2 MiB keeps a
# chunk's numpy temporaries (~40 bytes a word in the shuffle) near the CPU's cache: measured 15-25%
# less CPU than 8 MiB chunks for typos and shuffle, 40k stories. Chunking never changes the output,
# since the randomness is drawn per block of rows.
CHUNK_BYTES = 2 << 20
MIX_SUFFIX = "#mix"

# What each kind's rate and `corrupt_fraction` count.
UNITS = {"typos": "letters", "shuffle": "words", "truncate": "characters", "mix": "documents"}


@dataclass(frozen=True)
class RowPlan:
    """The documents a row-level corruption (truncate, mix) acts on, drawn once for the whole dataset.

    Attributes:
        rows: Ascending dataset rows chosen.
        other: For mix: the row of the other dataset each chosen row receives (aligned with `rows`).
        round: For mix: how many times that other document has been used so far, this use included.
    """

    rows: np.ndarray
    other: np.ndarray
    round: np.ndarray


def plan_rows(n_rows: int, n_other: int, kind: str, rate: float, seed: int) -> RowPlan:
    """Choose int(RATE·N) rows (truncate, mix) and, for mix, the other dataset's document for each.

    Mix uses the other dataset's documents in a seeded random order, all of them once before any of
    them twice, so with M other documents no document is used more than ceil(k/M) times.
    """
    empty = np.zeros(0, dtype=np.int64)
    if kind not in ("truncate", "mix"):
        return RowPlan(empty, empty, empty)
    k = int(rate * n_rows)
    tag = kernels.TAG_MIX if kind == "mix" else kernels.TAG_TRUNCATE
    rows_seq, other_seq = np.random.SeedSequence([seed, tag]).spawn(2)
    picked = np.random.default_rng(rows_seq).choice(n_rows, k, replace=False).astype(np.int64)
    if kind == "truncate" or k == 0:
        order = np.argsort(picked)
        return RowPlan(picked[order], empty, empty)
    perm = np.random.default_rng(other_seq).permutation(n_other).astype(np.int64)
    j = np.arange(k, dtype=np.int64)
    other, rnd = perm[j % n_other], j // n_other + 1
    order = np.argsort(picked)
    return RowPlan(picked[order], other[order], rnd[order])


@dataclass
class Tally:
    """Counters summed over parts, turned into the manifest's stats by `stats`."""

    rows: int = 0
    rows_changed: int = 0
    units: int = 0
    units_changed: int = 0
    too_short: int = 0
    other_used: set[int] = field(default_factory=set)

    def add(self, other: Tally) -> None:
        """Count OTHER's rows and changes in too (a chunk's, a Ray task's)."""
        self.rows += other.rows
        self.rows_changed += other.rows_changed
        self.units += other.units
        self.units_changed += other.units_changed
        self.too_short += other.too_short
        self.other_used |= other.other_used

    def stats(self, cfg: CorruptConfig, other_rows: int | None) -> dict[str, Any]:
        unit = UNITS[cfg.kind]
        out: dict[str, Any] = {
            "rows_in": self.rows,
            "rows_out": self.rows,
            "kind": cfg.kind,
            "rate": cfg.rate,
            "rows_corrupted": self.rows_changed,
            "corrupted_share": self.rows_changed / self.rows if self.rows else 0.0,
            "unit": unit,
            f"{unit}_total": self.units,
            f"{unit}_changed": self.units_changed,
            "realised_rate": self.units_changed / self.units if self.units else 0.0,
        }
        if cfg.kind == "truncate":
            out["rows_too_short"] = self.too_short
        if cfg.kind == "mix":
            out["from_rows"] = other_rows
            out["from_documents_used"] = len(self.other_used)
        return out


def with_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """FRAME conformed to the schema, with the corruption labels (null, 0.0, null) where it has none."""
    frame = conform(frame)
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in CORRUPT_SCHEMA.items() if c not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    frame = frame.with_columns(pl.col(c).cast(t) for c, t in CORRUPT_SCHEMA.items())
    return frame.with_columns(pl.col(CORRUPT_FRACTION).fill_null(0.0))


def corrupt_frame(
    frame: pl.DataFrame,
    cfg: CorruptConfig,
    first_row: int,
    plan: RowPlan,
    other: pl.DataFrame | None = None,
    other_ref: str | None = None,
    tally: Tally | None = None,
    workers: int | None = None,
) -> pl.DataFrame:
    """The rows of FRAME (dataset rows FIRST_ROW…) corrupted as CFG says, labelled.

    Args:
        frame: Rows with at least `id` and `text`.
        cfg: The corruption.
        first_row: FRAME's first row number in the whole dataset (keys the randomness and the plan); a
            multiple of `kernels.BLOCK_ROWS`, since blocks of randomness are never split.
        plan: `plan_rows` for the whole dataset.
        other: For mix: the other dataset's rows (`id`, `text`).
        other_ref: For mix: its full ref, written into `corrupt_from`.
        tally: Counters to add this frame's to.
        workers: Threads for the text kernels (default: every core); never changes the result.
    """
    frame = with_labels(frame)
    tally = tally if tally is not None else Tally()
    lengths = frame.get_column(TEXT).str.len_bytes().fill_null(0).to_numpy()
    spans = _chunks(lengths, first_row)

    def one(span: tuple[int, int]) -> tuple[pl.DataFrame, Tally]:
        lo, hi = span
        mine = Tally()
        return _corrupt_chunk(frame.slice(lo, hi - lo), cfg, first_row + lo, plan, other, other_ref, mine), mine

    threads = min(workers or cpu_count(), len(spans)) if cfg.kind in ("typos", "shuffle") else 1
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="corrupt") as pool:
            done = list(pool.map(one, spans))
    else:
        done = [one(span) for span in spans]
    for _, counted in done:
        tally.add(counted)
    tally.rows += frame.height
    return pl.concat([p for p, _ in done], how="vertical") if len(done) != 1 else done[0][0]


def write_spans(part_rows: list[int]) -> list[tuple[int, int]]:
    """The dataset rows [lo, hi) of each write of a corrupted version, given its input's part sizes.

    Each write ends at the last whole block of BLOCK_ROWS rows read so far (the rest waits for the
    next part), the last one at the end: so a block never straddles two writes, and the output's
    parts follow the input's, shifted by fewer than BLOCK_ROWS rows. The local build and each Ray
    task write exactly these, so both give the same Parquet files.
    """
    spans, lo, end = [], 0, 0
    for rows in part_rows:
        end += rows
        hi = end // kernels.BLOCK_ROWS * kernels.BLOCK_ROWS
        if hi > lo:
            spans.append((lo, hi))
            lo = hi
    if end > lo:
        spans.append((lo, end))
    return spans


def _chunks(lengths: np.ndarray, first_row: int) -> list[tuple[int, int]]:
    """Row ranges of about CHUNK_BYTES of text each, cut only at block boundaries (rows counted from FIRST_ROW).

    Raises:
        ValueError: FIRST_ROW is not at a block boundary (an internal error of the caller).
    """
    if first_row % kernels.BLOCK_ROWS:
        raise ValueError(f"rows must be corrupted from a multiple of {kernels.BLOCK_ROWS}, not from {first_row}")
    if lengths.size == 0:
        return [(0, 0)]
    cum = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))])
    at_block = cum[:: kernels.BLOCK_ROWS]  # bytes before each block
    cuts = np.searchsorted(at_block, np.arange(CHUNK_BYTES, int(cum[-1]), CHUNK_BYTES), side="left")
    bounds = np.unique(np.concatenate([[0], cuts * kernels.BLOCK_ROWS, [lengths.size]]))
    bounds = bounds[bounds <= lengths.size]
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _corrupt_chunk(
    frame: pl.DataFrame,
    cfg: CorruptConfig,
    first_row: int,
    plan: RowPlan,
    other: pl.DataFrame | None,
    other_ref: str | None,
    tally: Tally,
) -> pl.DataFrame:
    lo, hi = np.searchsorted(plan.rows, [first_row, first_row + frame.height])
    chosen_rows = plan.rows[lo:hi] - first_row
    if cfg.kind == "mix":
        assert other is not None and other_ref is not None
        return _mix(frame, chosen_rows, plan.other[lo:hi], plan.round[lo:hi], other, other_ref, tally)
    if cfg.kind == "truncate":
        new_text, n_changed, units = _truncate(frame.get_column(TEXT), first_row, chosen_rows, cfg.seed, tally)
    else:
        kernel = kernels.typos if cfg.kind == "typos" else kernels.shuffle
        edited = kernel(kernels.texts_of(frame.get_column(TEXT), first_row), cfg.rate, cfg.seed)
        new_text = kernels.to_series(TEXT, edited.data, edited.offsets)
        n_changed, units = edited.changed, edited.units
    changed = n_changed > 0
    tally.rows_changed += int(changed.sum())
    tally.units += int(units.sum())
    tally.units_changed += int(n_changed.sum())
    share = np.where(units > 0, n_changed / np.maximum(units, 1), 0.0).astype(np.float32)
    return _label(frame.with_columns(new_text), changed, share, cfg.kind, None)


def _truncate(
    text: pl.Series, first_row: int, chosen_rows: np.ndarray, seed: int, tally: Tally
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """`kernels.truncate` on the chosen rows only, put back among the others.

    Returns:
        The new text column, and per row the characters removed and the characters it had.
    """
    chosen = kernels.texts_of(text.gather(chosen_rows), first_row + chosen_rows)
    cut = kernels.truncate(chosen, kernels.salts(seed, kernels.TAG_TRUNCATE, 1)[0])
    tally.too_short += int((cut.changed == 0).sum())
    merged = text.clone().scatter(chosen_rows, kernels.to_series(TEXT, cut.data, cut.offsets))
    changed = np.zeros(text.len(), dtype=np.int64)
    changed[chosen_rows] = cut.changed
    return merged, changed, text.str.len_chars().fill_null(0).to_numpy().astype(np.int64)


def _label(
    frame: pl.DataFrame, changed: np.ndarray, share: np.ndarray, kind: str, origin: pl.Series | None
) -> pl.DataFrame:
    """Set the labels of the CHANGED rows: KIND appended to `corruption`, SHARE, and ORIGIN (mix)."""
    hit = pl.Series("hit", changed)
    old = pl.col(CORRUPTION)
    label = pl.when(old.is_null()).then(pl.lit(kind)).otherwise(pl.concat_str([old, pl.lit("," + kind)]))
    exprs = [
        pl.when(hit).then(label).otherwise(old).alias(CORRUPTION),
        pl.when(hit).then(pl.Series(share)).otherwise(pl.col(CORRUPT_FRACTION)).alias(CORRUPT_FRACTION),
    ]
    if origin is not None:
        exprs.append(pl.when(hit).then(origin).otherwise(pl.col(CORRUPT_FROM)).alias(CORRUPT_FROM))
    return frame.with_columns(exprs)


def _mix(
    frame: pl.DataFrame,
    chosen_rows: np.ndarray,
    other_rows: np.ndarray,
    rounds: np.ndarray,
    other: pl.DataFrame,
    other_ref: str,
    tally: Tally,
) -> pl.DataFrame:
    """Replace the chosen rows by the other dataset's documents, labelled as originals of that dataset.

    A replacing row has `source_id` = the other document's id, `id` = that id + "#mix<round>"
    (so a document used twice gets two ids), `copy_index` 0, `edit_fraction` 0 and its extra
    source columns null.
    """
    n = frame.height
    tally.rows_changed += int(chosen_rows.size)
    tally.units += n
    tally.units_changed += int(chosen_rows.size)
    tally.other_used.update(int(x) for x in np.unique(other_rows))
    if chosen_rows.size == 0:
        return frame
    incoming = other[other_rows]
    other_id = incoming.get_column(ID)
    new = pl.DataFrame(
        {
            ID: other_id + MIX_SUFFIX + pl.Series(rounds).cast(pl.String),
            TEXT: incoming.get_column(TEXT),
            SOURCE_ID: other_id,
            COPY_INDEX: np.zeros(chosen_rows.size, dtype=np.int32),
            EDIT_FRACTION: np.zeros(chosen_rows.size, dtype=np.float32),
        }
    )
    changed = np.zeros(n, dtype=bool)
    changed[chosen_rows] = True
    # One gather puts the incoming rows over the chosen ones: output row i comes from row order[i].
    order = np.arange(n, dtype=np.int64)
    order[chosen_rows] = n + np.arange(chosen_rows.size, dtype=np.int64)
    base = frame.select(ID, TEXT, SOURCE_ID, COPY_INDEX, EDIT_FRACTION)
    core = pl.concat([base, new.cast(base.schema)], how="vertical")[order]
    rest = frame.drop(ID, TEXT, SOURCE_ID, COPY_INDEX, EDIT_FRACTION)
    # A source's extra columns describe the row that was replaced, not the incoming document.
    hit = pl.Series("hit", changed)
    rest = rest.with_columns(
        pl.when(hit).then(None).otherwise(pl.col(c)).alias(c) for c in rest.columns if c not in CORRUPT_SCHEMA
    )
    merged = pl.concat([core, rest], how="horizontal").select(frame.columns)
    return _label(merged, changed, np.ones(n, dtype=np.float32), "mix", pl.Series([other_ref] * n))
