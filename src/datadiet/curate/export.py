"""Export a dataset version to a single file: `curate export REF PATH`.

The format follows PATH's extension: `.parquet`, `.jsonl` (one `{"id", "text", ...}` object per
line) or `.txt` (TinyStories format: each document followed by a line `<|endoftext|>`, which
`curate ingest` reads back to the same texts). A document the text format cannot carry unchanged
— one holding a line that is exactly the separator, or empty, or with leading or trailing
whitespace (ingest strips it) — stops a `.txt` export with an error naming it, rather than coming
back as two documents or a different text; `.jsonl` and `.parquet` carry any text. Parts are
streamed one at a time and the file is written next to PATH and renamed into place, so a failed
export never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import polars as pl

from datadiet.errors import DatadietError, UsageError, os_error_of
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import EOT, ID, TEXT
from datadiet.store import Dataset

EXPORT_FORMATS = (".parquet", ".jsonl", ".txt")


def export(dataset: Dataset, path: Path, tracker: Tracker = NULL_TRACKER) -> int:
    """Write DATASET to PATH in the format of its extension; returns the number of rows written."""
    # Never into the store: a file over a published part would change a version behind its id.
    if dataset.store is not None:
        dataset.store.check_outside(path, "export target")
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UsageError(f"cannot export to {path.name!r}: use a file ending in {', '.join(EXPORT_FORMATS)}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file path such as {path / 'data.jsonl'}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            dataset.scan().sink_parquet(tmp, compression="zstd")
            rows = dataset.rows
        else:
            with open(tmp, "wb") as f, tracker.task(f"Exporting {dataset.ref}", total=dataset.rows) as task:
                for frame in dataset.iter_frames():
                    if suffix == ".jsonl":
                        frame.write_ndjson(f)
                    else:
                        for doc_id, text in zip(frame.get_column(ID), frame.get_column(TEXT), strict=True):
                            _check_text_format(doc_id, text, path)
                            f.write(text.encode("utf-8") + b"\n" + EOT.encode() + b"\n")
                    rows += frame.height
                    task.advance(frame.height)
        os.replace(tmp, path)
    except (OSError, pl.exceptions.ComputeError) as exc:
        # e.g. a file where a folder should be, or a full disk (polars says so in a ComputeError):
        # one line naming PATH, not errno soup.
        os_exc = os_error_of(exc)
        if os_exc is None:
            raise
        raise DatadietError(
            f"cannot write {path}: {os_exc.strerror or os_exc}; choose another path or free space"
        ) from exc
    finally:
        with contextlib.suppress(OSError):  # not only "missing": its folder may be a file
            tmp.unlink()
    return rows


def _check_text_format(doc_id: object, text: str | None, path: Path) -> None:
    """Refuse a document that `curate ingest` would not read back from a `.txt` file as the same text."""
    problem = None
    if not text or not text.strip():
        problem = "is empty"
    elif "\x00" in text:
        problem = "holds a NUL character, which ingest refuses as binary data"
    elif text != text.strip():
        problem = "starts or ends with whitespace, which ingest strips"
    elif EOT in text and any(line.rstrip("\r") == EOT for line in text.split("\n")):
        problem = f"holds a line {EOT!r}, the separator, so it would come back as two documents"
    if problem is not None:
        raise UsageError(
            f"cannot export to {path.name!r} as text: document {doc_id!r} {problem}; "
            "export to .jsonl or .parquet, which keep every text exactly"
        )


def head(dataset: Dataset, n: int) -> pl.DataFrame:
    """The first N rows of a version, reading only as many parts as needed."""
    if n < 0:
        raise UsageError(f"-n must be >= 0, not {n}")
    return dataset.scan().head(n).collect()
