"""Ingest corpus files into a new dataset version: `curate ingest PATH... --name NAME [--engine ray]`.

Formats, chosen by extension (or `--format`): TinyStories-style text (`.txt`; documents separated
by a line equal to the separator, `<|endoftext|>` by default), JSON Lines (`.jsonl`, `.ndjson`,
`.json`), Parquet (`.parquet`); any of the text formats may be `.gz` or `.zst` compressed. Folders
are searched recursively and globs are expanded. Arrow files (`.arrow`) and folders written by
Hugging Face `datasets`' `save_to_disk` are read as one table with every column kept
(`datadiet.curate.hf.arrow`).

Inputs may also be URIs that pyarrow opens (`s3://bucket/corpus/*.jsonl.gz`, `gs://bucket/dir/`,
`file:///abs/dir/`): folders and globs work as locally, and every object is streamed through
`pyarrow.fs` (hashed, decompressed and parsed as it arrives, in 8 MiB reads), never copied first.

Everything streams: documents are collected into bounded batches and written as Parquet parts as
they come, so memory stays near one batch (~64 MiB of text) whatever the input size. The version
id is derived from the sha256 of every input file, so re-ingesting unchanged files is "up to date".

The inputs are read as a `plan` of groups: whole files packed in order into groups of about 64 MiB
on disk, a file of 64 MiB or more alone, and a Parquet file larger than that split into runs of
row groups. A part never spans two groups, so each group can be one task of a cluster
(`--engine ray`, `ray.py`) that writes exactly the parts written here.

The package: `op.py` (this: `IngestConfig` and the one commit), `read.py` (inputs, formats,
readers, the plan of groups and the local writing), `ray.py` (the Ray build).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field, fields, replace
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from pydantic import AfterValidator, PlainValidator, Strict

from datadiet.config import Count, choice, schema
from datadiet.curate.hf.arrow import commit_table, is_arrow_input, read_arrow
from datadiet.curate.ingest import columns, read
from datadiet.curate.ingest.read import (
    FORMATS,
    Batcher,
    Counts,
    Source,
    _doc_prefixes,
    check_unchanged,
    detect_format,
    expand_inputs,
    finish,
    plan,
    source_sha256,
    write_group,
)
from datadiet.engine import check_engine, require_ray
from datadiet.errors import InputError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import EOT
from datadiet.store import Commit, PartWriter, Store, check_name

OPERATION = "ingest"
DECODE_ERRORS = ("strict", "replace")  # --errors: invalid UTF-8 is an error, or becomes U+FFFD
DEFAULT_MAX_DOC_BYTES = 16 * 1024 * 1024


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace")
    return value


def _columns(value: Any) -> columns.Columns:
    # Arrow types are no pydantic type: the pairs are checked here, and pydantic checks nothing else.
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(c, (tuple, list)) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], pa.DataType)
        for c in value
    )
    if not ok:
        raise ValueError("must be (name, Arrow type) pairs")
    return tuple((name, typ) for name, typ in value)


# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_WORDING = {
    "format": {
        "type": f"--format must be one of {', '.join(FORMATS)}, not {{value!r}}",
        "value": f"--format must be one of {', '.join(FORMATS)}, not {{value!r}}",
    },
    "separator": {
        "type": "--separator must be text, not {value!r}",
        "value": "--separator must not be empty or whitespace",
    },
    "errors": {
        "type": "--errors must be 'strict' or 'replace', not {value!r}",
        "value": "--errors must be 'strict' or 'replace', not {value!r}",
    },
    "max_doc_bytes": {
        "type": "--max-doc-bytes must be a whole number, not {value!r}",
        "greater_than_equal": "--max-doc-bytes must be >= 1, not {value}",
    },
}


@schema(wording=_WORDING)
class IngestConfig:
    """How to read the input files (every field changes the rows, so all are in the version id).

    Types and bounds are pydantic's (`config.schema`).
    """

    format: Annotated[str, Strict(), choice(FORMATS)] = "auto"
    separator: Annotated[str, Strict(), AfterValidator(_not_blank)] = EOT
    text_field: Annotated[str, Strict()] = "text"
    id_field: Annotated[str, Strict()] | None = None
    errors: Annotated[str, Strict(), choice(DECODE_ERRORS)] = "strict"
    max_doc_bytes: Count = DEFAULT_MAX_DOC_BYTES
    #: The extra columns (name, Arrow type) every part gets: found in the inputs by `ingest`
    #: (`columns.extra_columns`), not set by hand; recorded in the version id as `extra_columns`.
    extra_columns: Annotated[columns.Columns, PlainValidator(_columns)] = field(default=(), compare=False)


# -- the operation --------------------------------------------------------------------------------


def ingest(
    store: Store,
    paths: Sequence[str | Path],
    name: str,
    cfg: IngestConfig | None = None,
    tracker: Tracker = NULL_TRACKER,
    *,
    engine: str = "local",
    address: str | None = None,
    filesystem: Any = None,
) -> Commit:
    """Read corpus files into a new version of dataset NAME (see the module docstring).

    Ids are the source's own (`id_field`, must be unique) or `<file stem>:<index>`, which is stable
    for an unchanged file. Raises InputError for unreadable input; nothing is published then.

    The version id is made of the options, each file's sha256 and format, and how it was named:
    the path as given for a local file, the local path for a `file://` URI (so `file:///abs/a.txt`
    and `/abs/a.txt` are one version), the URI without its query otherwise.

    Args:
        store: Where to write.
        paths: Files, folders or globs: local paths, or URIs pyarrow opens (`s3://`, `gs://`,
            `hdfs://`, `file:///ABS/PATH`), streamed through `pyarrow.fs`.
        name: Dataset name.
        cfg: How to read the files.
        tracker: Progress.
        engine: "local" or "ray" (`datadiet.curate.ingest.ray`: one cluster task per group of
            pieces); the version, rows and part files are the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").
        filesystem: A pyarrow filesystem that every path is a path in (for example an in-memory
            one); None: local paths and URIs.
    """
    cfg = cfg or IngestConfig()
    check_name(name)
    on_ray = check_engine(engine) == "ray"
    if filesystem is None and paths and any(is_arrow_input(p) for p in paths):
        # Hugging Face datasets' Arrow files and save_to_disk folders: a table with every column kept.
        if not all(is_arrow_input(p) for p in paths):
            raise InputError("give either Arrow files / save_to_disk folders or other files to one ingest, not both")
        table = read_arrow(paths)
        origin = ", ".join(str(p) for p in paths)
        return commit_table(
            store, table, name, text_field=cfg.text_field, id_field=cfg.id_field, origin=origin, tracker=tracker
        )
    if on_ray:
        require_ray()
    files = expand_inputs(paths, filesystem)
    if not files:
        raise InputError("no input files given")
    formats = [detect_format(f, cfg.format) for f in files]
    if cfg.id_field and "text" in formats:
        text_files = [f.name for f, fmt in zip(files, formats, strict=True) if fmt == "text"]
        raise InputError(
            f"--id-field applies to JSONL and Parquet only, but {text_files[0]} is plain text "
            "(its documents get ids <file>:<index>); drop --id-field for text files"
        )
    sizes = [f.size for f in files]
    total_bytes = sum(sizes)
    if on_ray and total_bytes >= read.HASH_LOCAL_BYTES:
        from datadiet.curate.ingest import ray as ray_hash

        hashes = ray_hash.hash_files(files, address=address, tracker=tracker)
    else:
        with tracker.task("Hashing inputs", total=total_bytes) as task:
            hashes = []
            for f, size in zip(files, sizes, strict=True):
                hashes.append(source_sha256(f))
                task.advance(size)
    # Settled before the id: the id says which columns the rows have, so a store whose version of
    # these files lacks them (written before extras were kept) is not "up to date".
    cfg = replace(cfg, extra_columns=columns.extra_columns(files, formats, cfg))
    params: dict[str, Any] = {
        f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("max_doc_bytes", "extra_columns")
    }
    if cfg.extra_columns:  # only then: inputs without extra fields keep their ids
        params["extra_columns"] = columns.params(cfg.extra_columns)
    params["sources"] = [
        {"path": f.record, "sha256": h, "format": fmt} for f, h, fmt in zip(files, hashes, formats, strict=True)
    ]
    parents = [f"file:sha256:{h}" for h in hashes]
    prefixes = _doc_prefixes(files, hashes)

    if on_ray:
        from datadiet.curate.ingest import ray as ray_build

        build = ray_build.build(files, formats, prefixes, cfg, address=address, tracker=tracker, hashes=hashes)
    else:
        build = _local_build(files, formats, prefixes, cfg, tracker, hashes)
    return store.commit(name, operation=OPERATION, params=params, parents=parents, build=build)


def _local_build(
    files: Sequence[Source],
    formats: Sequence[str],
    prefixes: Sequence[str],
    cfg: IngestConfig,
    tracker: Tracker,
    hashes: Sequence[str],
) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function of an ingest on this machine: the plan's groups in order, batched into parts.

    What is read is checked against the hashes the version id was made of (`plan(hashes=...)`,
    `check_unchanged`), so a file replaced between hashing and reading fails instead of publishing
    its rows under the other file's hash.
    """

    def build(writer: PartWriter) -> dict[str, Any]:
        groups = plan(files, formats, prefixes, hashes=hashes)
        counts = Counts()
        batcher = Batcher(writer.write, columns=cfg.extra_columns)
        with tracker.task("Ingesting", total=sum(p.bytes for g in groups for p in g)) as task:
            for group in groups:
                write_group(group, cfg, batcher, counts)
                task.advance(sum(p.bytes for p in group))
        check_unchanged(files, formats, hashes)
        return finish(writer, cfg, files, counts)

    return build
