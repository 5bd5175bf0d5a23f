"""The extra columns of an ingest: JSON Lines fields and Parquet columns beyond the text and the id.

DESIGN.md promises that extra source columns pass through. A version has one schema for all its
parts, whichever file or batch a part comes from, so the columns and their types are settled
before anything is written, by one pass over the inputs (`extra_columns`): a Parquet file's footer,
every record of a JSON Lines file. A field's type is the union of what every input holds (an int
in one file and a float in another is a float; null anywhere is fine; nested objects' keys are
merged), and a field whose types cannot be reconciled (a number here, a string there) is one
clear error naming the field and both inputs.

Nested values stay nested, as Arrow structs and lists, not JSON strings: that is what Hugging Face
`datasets` makes of the same JSON Lines file (`load_dataset("json", ...)` gives struct and list
features), so a version exported with `curate export --format hf` has the features its user
would get from the source, and polars can filter on a nested field without parsing.

Fields named like a declared column (`id`, `text`, `source_id`, `copy_index`, `edit_fraction`,
the corruption labels) are not extras: those names mean what datadiet's own columns mean, and an
`id` field beside generated ids was never kept. Pandas' index columns (`__index_level_0__`) are
skipped as Hugging Face `datasets` skips them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datadiet.curate.ingest.formats import _open_input_file, json_records
from datadiet.curate.ingest.read import Source
from datadiet.errors import InputError
from datadiet.schema import CORRUPT_SCHEMA, SCHEMA
from datadiet.store import first_line

if TYPE_CHECKING:
    from datadiet.curate.ingest.op import IngestConfig

# Records whose types are inferred together: pyarrow infers a type per list of values, so the
# pass costs one `pa.array` per field per 8,192 records on top of the JSON parse.
CHUNK = 8192

RESERVED = frozenset({*SCHEMA, *CORRUPT_SCHEMA})

Columns = tuple[tuple[str, pa.DataType], ...]


def extra_columns(files: Sequence[Source], formats: Sequence[str], cfg: IngestConfig) -> Columns:
    """The extra columns (name, Arrow type) of the inputs, in order of first appearance; () if there are none.

    Raises InputError when one field has types that cannot be reconciled across the inputs, or
    when a JSON Lines file cannot be read (the same message the reader would give).
    """
    skip = RESERVED | {cfg.text_field} | ({cfg.id_field} if cfg.id_field else set())
    merged: dict[str, tuple[pa.DataType, str]] = {}  # name -> (type so far, the input it was first seen in)
    for src, fmt in zip(files, formats, strict=True):
        if fmt == "jsonl":
            found = _jsonl_fields(src, cfg, skip)
        elif fmt == "parquet":
            found = _parquet_fields(src, skip)
        else:
            continue
        for name, typ in found:
            _merge(merged, name, typ, src.name)
    return tuple((name, typ) for name, (typ, _) in merged.items())


def params(columns: Columns) -> list[dict[str, str]]:
    """How the version id records the extra columns (only present when there are some: older ids stay)."""
    return [{"name": name, "type": str(typ)} for name, typ in columns]


def _merge(merged: dict[str, tuple[pa.DataType, str]], name: str, typ: pa.DataType, where: str) -> None:
    if name not in merged:
        merged[name] = (typ, where)
        return
    old, first = merged[name]
    try:
        unified = pa.unify_schemas(
            [pa.schema([pa.field(name, old)]), pa.schema([pa.field(name, typ)])], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise InputError(
            f"field {name!r} has incompatible types across the inputs: {old} in {first}, {typ} in {where}; "
            "make it one type in every file (or remove it) and ingest again"
        ) from None
    merged[name] = (unified.field(name).type, first)


def _jsonl_fields(src: Source, cfg: IngestConfig, skip: frozenset[str] | set[str]) -> list[tuple[str, pa.DataType]]:
    """The extra fields of a JSON Lines file and their types, inferred by pyarrow chunk by chunk and merged."""
    merged: dict[str, tuple[pa.DataType, str]] = {}
    chunk: dict[str, list[Any]] = {}
    start = 1

    def infer(lines: str) -> None:
        for name, values in chunk.items():
            try:
                typ = pa.array(values).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise InputError(
                    f"field {name!r} has incompatible types across the inputs: {src.name} {lines} mixes them "
                    f"({first_line(exc, limit=200)}); make it one type in every file (or remove it) and ingest again"
                ) from None
            _merge(merged, name, typ, src.name)
        chunk.clear()

    lineno = 0
    for count, (lineno, record) in enumerate(json_records(src.name, cfg, src.location, src.filesystem), 1):
        for name, value in record.items():
            if name not in skip:
                chunk.setdefault(name, []).append(value)
        if count % CHUNK == 0:
            infer(f"lines {start}-{lineno}")
            start = lineno + 1
    infer(f"lines {start}-{lineno}")
    return [(name, typ) for name, (typ, _) in merged.items()]


def _parquet_fields(src: Source, skip: frozenset[str] | set[str]) -> list[tuple[str, pa.DataType]]:
    """The extra columns of a Parquet file from its footer; an unreadable file has none (its reader reports it)."""
    import pyarrow.parquet as pq

    try:
        if src.filesystem is None:
            schema = pq.read_schema(src.location)
        else:
            with _open_input_file(src.name, src.location, src.filesystem) as f:
                schema = pq.read_schema(f)
    except (pa.ArrowInvalid, OSError, InputError):
        return []
    out = []
    for f in schema:
        if f.name in skip or f.name.startswith("__index_level_"):
            continue
        # A dictionary-encoded column is its values (one file may encode a column, the next not).
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        out.append((f.name, typ))
    return out
