"""Arrow tables as dataset versions: what `curate ingest` does with `.arrow` files and `save_to_disk` folders.

Hugging Face `datasets` stores a dataset as Arrow IPC stream files (`data-00000-of-00001.arrow`), and
`Dataset.save_to_disk(dir)` writes those plus `state.json` naming them in order. pyarrow reads both
directly, so this needs no `datasets` install: `read_arrow(path)` gives one table, and `commit_table`
publishes it as a version whose rows are the table's rows with every column kept (the text column
becomes `text`; ids are the `id_field` column's values or `<name>:<row>`, a source `id` column then
kept as `orig_id`). The version id hashes the
table's content (its Arrow IPC bytes), so the same data gives the same version wherever it came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from datadiet.errors import InputError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, MAX_PART_ROWS, TEXT
from datadiet.store import Commit, PartWriter, Store, check_name

OPERATION = "ingest_arrow"
STATE_FILE = "state.json"
ARROW_SUFFIX = ".arrow"


def is_arrow_input(path: str | Path) -> bool:
    """Whether PATH is an Arrow file or a folder written by `datasets.Dataset.save_to_disk`."""
    p = Path(path)
    return (p.is_file() and p.suffix == ARROW_SUFFIX) or (p.is_dir() and (p / STATE_FILE).is_file())


def _arrow_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        files = [path / f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: {STATE_FILE} is not a datasets save_to_disk state ({exc})") from None
    if not files:
        raise InputError(f"{path}: the saved dataset has no data files")
    return files


def _read_one(path: Path) -> pa.Table:
    try:
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_stream(source).read_all()  # what `datasets` writes
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_file(source).read_all()  # Arrow's random-access file format
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or folder") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({str(exc).splitlines()[0]})") from None


def read_arrow(paths: Sequence[str | Path]) -> pa.Table:
    """The rows of Arrow files and save_to_disk folders, in order, as one table (zero-copy where possible)."""
    tables = [_read_one(f) for p in paths for f in _arrow_files(Path(p))]
    try:
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as exc:
        raise InputError(f"the Arrow inputs have different columns ({str(exc).splitlines()[0]})") from None


def table_sha256(table: pa.Table) -> str:
    """A hash of the table's schema and rows (its Arrow IPC stream, written in batches of fixed size)."""
    h = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.combine_chunks().to_batches(max_chunksize=65_536):
            writer.write_batch(batch)
    h.update(memoryview(sink.getvalue()))
    return h.hexdigest()


def _rows(table: pa.Table, text_field: str, id_field: str | None, prefix: str) -> pl.DataFrame:
    names = table.column_names
    for col in [text_field] + ([id_field] if id_field else []):
        if col not in names:
            raise InputError(
                f"the data has no column {col!r} (columns: {', '.join(names)}); use --text-field/--id-field"
            )
    ttype = table.schema.field(text_field).type
    if not (pa.types.is_string(ttype) or pa.types.is_large_string(ttype)):
        raise InputError(f"column {text_field!r} has type {ttype}, expected a string column")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename({text_field: TEXT}) if text_field != TEXT else frame
    if id_field:
        ids = frame[id_field].cast(pl.String)
        if ids.null_count() or ids.n_unique() != len(ids):
            raise InputError(f"column {id_field!r} must hold a unique, non-null id for every row")
        frame = (
            frame.with_columns(ids.alias(ID)) if id_field == ID else frame.with_columns(ids.alias(ID)).drop(id_field)
        )
    else:
        if ID in frame.columns:  # keep the source's own id column under a free name
            keep = next(
                f"orig_{ID}{'' if k == 0 else k}"
                for k in range(len(frame.columns) + 1)
                if f"orig_{ID}{'' if k == 0 else k}" not in frame.columns
            )
            frame = frame.rename({ID: keep})
        frame = frame.with_columns(pl.format(f"{prefix}:{{}}", pl.int_range(pl.len())).alias(ID))
    return frame.filter(pl.col(TEXT).is_not_null() & (pl.col(TEXT).str.strip_chars() != ""))


def commit_table(
    store: Store,
    table: pa.Table,
    name: str,
    *,
    text_field: str = TEXT,
    id_field: str | None = None,
    origin: str = "arrow",
    tracker: Tracker = NULL_TRACKER,
) -> Commit:
    """Publish TABLE as a version of dataset NAME (found, not rewritten, if the same data was published).

    Args:
        store: Where to write.
        table: The rows; every column is kept.
        name: Dataset name.
        text_field: The column holding the documents.
        id_field: A column of unique ids (default: `<name>:<row>`).
        origin: Recorded in the stats, not the id (e.g. the input paths, or "datasets.Dataset").
        tracker: Progress.

    Raises:
        InputError: A column is missing or of the wrong type, or ids are not unique.
    """
    check_name(name)
    if not text_field:
        raise UsageError("--text-field must not be empty")
    with tracker.task("Hashing the table", total=None):
        digest = table_sha256(table)
    params: dict[str, Any] = {"text_field": text_field, "id_field": id_field}  # not `origin`: the data is the id

    def build(writer: PartWriter) -> dict[str, Any]:
        frame = _rows(table, text_field, id_field, name)
        with tracker.task("Writing", total=frame.height) as task:
            for lo in range(0, frame.height, MAX_PART_ROWS):
                writer.write(frame.slice(lo, MAX_PART_ROWS))
                task.advance(min(MAX_PART_ROWS, frame.height - lo))
        writer.finish_empty(frame.head(0))
        return {"rows_in": table.num_rows, "dropped_empty": table.num_rows - frame.height, "origin": origin}

    return store.commit(name, operation=OPERATION, params=params, parents=[f"arrow:sha256:{digest}"], build=build)
