"""A dataset version to and from a Hugging Face `datasets.Dataset`, and `curate export --format hf`.

    from datadiet.curate.hf.convert import from_hf, to_hf
    hf = to_hf(store.resolve("ts"))                  # datasets.Dataset: id, text, source_id, ... columns
    commit = from_hf(store, hf.filter(...), "ts-hf")  # back into the store, content-addressed
    export_hf(store.resolve("ts"), Path("ts-hf/"))    # a folder datasets.load_from_disk opens

Needs the optional extra: `pip install 'datadiet[hf]'`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from datadiet.curate.hf.arrow import commit_table
from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import TEXT
from datadiet.store import Commit, Dataset, Store


def require_datasets() -> Any:
    """The `datasets` module, or a one-line error saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise UsageError(
            "Hugging Face datasets interop needs the hf extra: pip install 'datadiet[hf]' (or pip install datasets)"
        ) from None
    return datasets


def to_hf(ds: Dataset) -> Any:
    """DS as an in-memory `datasets.Dataset` with all its columns (the Parquet parts read once)."""
    datasets = require_datasets()
    if ds.kind != "datasets":
        raise UsageError(f"{ds.ref} is a {ds.kind[:-1]}, not a dataset")
    table = pq.ParquetDataset([str(p) for p in ds.parts]).read()
    return datasets.Dataset(table)


def from_hf(
    store: Store,
    hf_dataset: Any,
    name: str,
    *,
    text_field: str = TEXT,
    id_field: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Commit:
    """Publish a `datasets.Dataset` as a version of NAME; every column is kept, the data is the id.

    Args:
        store: Where to write.
        hf_dataset: A `datasets.Dataset` (not a `DatasetDict`: pick a split, e.g. `dd["train"]`).
        name: Dataset name.
        text_field: Its column of documents.
        id_field: Its column of unique ids (default: `<name>:<row>`).
        tracker: Progress.
    """
    datasets = require_datasets()
    if isinstance(hf_dataset, datasets.DatasetDict):
        splits = ", ".join(hf_dataset)
        raise UsageError(f"give one split of the DatasetDict (one of {splits}), e.g. dd['train']")
    if not isinstance(hf_dataset, datasets.Dataset):
        raise UsageError(f"expected a datasets.Dataset, got {type(hf_dataset).__name__}")
    # `.data` is the underlying Arrow table; `flatten_indices` applies a pending select/shuffle/filter.
    table = hf_dataset.flatten_indices().data.table
    return commit_table(
        store, table, name, text_field=text_field, id_field=id_field, origin="datasets.Dataset", tracker=tracker
    )


def export_hf(ds: Dataset, path: Path) -> int:
    """Write DS as a `save_to_disk` folder at PATH (made next to it, then renamed in); returns the row count.

    Raises:
        UsageError: PATH exists and is not empty.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} exists and is not an empty folder; give a new folder for --format hf")
    hf = to_hf(ds)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        hf.save_to_disk(str(tmp))
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    except OSError as exc:
        raise DatadietError(f"cannot write {path}: {exc.strerror or exc}; choose another path or free space") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return int(hf.num_rows)
