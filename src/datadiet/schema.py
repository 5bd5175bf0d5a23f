"""The one declared row schema of every dataset version, and the names used across the store.

Columns (DESIGN.md, "Rows"): `id` (stable per document), `text`, `source_id` (the id of the
original a row was copied from; its own id for originals), `copy_index` (0 for an original, k for
the k-th injected copy), `edit_fraction` (0 for originals and exact copies). Extra source columns
pass through unchanged.
"""

from __future__ import annotations

import polars as pl

ID = "id"
TEXT = "text"
SOURCE_ID = "source_id"
COPY_INDEX = "copy_index"
EDIT_FRACTION = "edit_fraction"

SCHEMA: dict[str, pl.DataType] = {
    ID: pl.String(),
    TEXT: pl.String(),
    SOURCE_ID: pl.String(),
    COPY_INDEX: pl.Int32(),
    EDIT_FRACTION: pl.Float32(),
}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(SCHEMA)

# Labels `curate corrupt` writes on every row (declared here, like the columns above, so every
# reader names them the same way): `corruption` lists the kinds that changed this row, in the
# order applied ("typos", "typos,shuffle"; null for an untouched row), `corrupt_fraction` is the
# realised share of the latest one (typo'd letters, moved words, removed characters; 1.0 for a
# document replaced by `mix`), `corrupt_from` the dataset version a mixed-in document came from.
CORRUPTION = "corruption"
CORRUPT_FRACTION = "corrupt_fraction"
CORRUPT_FROM = "corrupt_from"
CORRUPT_SCHEMA: dict[str, pl.DataType] = {
    CORRUPTION: pl.String(),
    CORRUPT_FRACTION: pl.Float32(),
    CORRUPT_FROM: pl.String(),
}

# Bumped when the on-disk layout or the meaning of a parameter changes, so old versions are not
# mistaken for new ones with the same parameters.
FORMAT_VERSION = 1

MANIFEST_FILE = "manifest.json"
PART_PATTERN = "part-{:05d}.parquet"
# Parts are capped so that a reader (and a later Ray task) never needs a huge file in memory.
MAX_PART_ROWS = 200_000
MAX_PART_BYTES = 256 * 1024 * 1024

EOT = "<|endoftext|>"


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the bookkeeping columns an original document has and cast to the declared dtypes.

    `id` and `text` must be present; a missing `source_id` becomes `id`, a missing `copy_index`
    becomes 0, a missing `edit_fraction` becomes 0.0. The declared columns come first, in order.
    """
    missing = [c for c in (ID, TEXT) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks required columns {missing}")
    exprs = []
    if SOURCE_ID not in frame.columns:
        exprs.append(pl.col(ID).alias(SOURCE_ID))
    if COPY_INDEX not in frame.columns:
        exprs.append(pl.lit(0, dtype=pl.Int32).alias(COPY_INDEX))
    if EDIT_FRACTION not in frame.columns:
        exprs.append(pl.lit(0.0, dtype=pl.Float32).alias(EDIT_FRACTION))
    if exprs:
        frame = frame.with_columns(exprs)
    frame = frame.with_columns([pl.col(c).cast(t) for c, t in SCHEMA.items()])
    extra = [c for c in frame.columns if c not in SCHEMA]
    return frame.select([*REQUIRED_COLUMNS, *extra])
