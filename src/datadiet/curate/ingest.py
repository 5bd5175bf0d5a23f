"""Ingest corpus files into a new dataset version: `curate ingest PATH... --name NAME`.

Formats, chosen by extension (or `--format`): TinyStories-style text (`.txt`; documents separated
by a line equal to the separator, `<|endoftext|>` by default), JSON Lines (`.jsonl`, `.ndjson`,
`.json`), Parquet (`.parquet`); any of the text formats may be `.gz` or `.zst` compressed. Folders
are searched recursively and globs are expanded.

Everything streams: documents are collected into bounded batches and written as Parquet parts as
they come, so memory stays near one batch (~64 MiB of text) whatever the input size. The version
id is derived from the sha256 of every input file, so re-ingesting unchanged files is "up to date".
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from datadiet.errors import InputError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import EOT, ID, TEXT
from datadiet.store import Commit, PartWriter, Store, check_name, file_sha256

FORMATS = ("auto", "text", "jsonl", "parquet")
_EXT_FORMAT = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
_COMPRESSION = (".gz", ".zst")
# Text is flushed to a Parquet part every 64 MiB so ingesting 1 GB needs well under 2 GB of RAM.
BATCH_BYTES = 64 * 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
DEFAULT_MAX_DOC_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class IngestConfig:
    """How to read the input files (every field changes the rows, so all are in the version id)."""

    format: str = "auto"
    separator: str = EOT
    text_field: str = "text"
    id_field: str | None = None
    errors: str = "strict"
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.errors not in ("strict", "replace"):
            raise UsageError(f"--errors must be 'strict' or 'replace', not {self.errors!r}")
        if not self.separator.strip():
            raise UsageError("--separator must not be empty or whitespace")
        if self.max_doc_bytes < 1:
            raise UsageError(f"--max-doc-bytes must be >= 1, not {self.max_doc_bytes}")


def _base_suffix(path: Path) -> tuple[str, str]:
    """(format extension, compression extension) of a path such as `a.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    comp = suffixes[-1] if suffixes and suffixes[-1] in _COMPRESSION else ""
    rest = suffixes[:-1] if comp else suffixes
    return (rest[-1] if rest else ""), comp


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders (recursively, known extensions only) and globs into a sorted file list."""
    files: list[Path] = []
    for raw in paths:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            if not matched:
                raise InputError(f"no files match {text!r}; check the pattern")
            candidates = matched
        else:
            p = Path(text)
            if not p.exists():
                raise InputError(f"{text}: no such file or folder")
            candidates = [p]
        for p in candidates:
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file() and _base_suffix(f)[0] in _EXT_FORMAT)
                if not found:
                    raise InputError(f"{p}: folder holds no .txt, .jsonl or .parquet files (optionally .gz/.zst)")
                files.extend(found)
            elif p.is_file():
                files.append(p)
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def detect_format(path: Path, forced: str) -> str:
    if forced != "auto":
        return forced
    ext, _ = _base_suffix(path)
    if ext not in _EXT_FORMAT:
        raise InputError(f"{path}: unknown file type {ext or '(none)'!r}; use --format text|jsonl|parquet")
    return _EXT_FORMAT[ext]


class _ZstdReader(io.RawIOBase):
    """A .zst file decompressed frame by frame; raises EOFError if the last frame is cut short.

    zstandard's own `stream_reader` ends quietly in the middle of a truncated frame, which would
    ingest a prefix of the corpus without a word, and raises `ZstdError` (not an OSError) on garbage.
    """

    # Input is fed 16 KiB at a time: zstd expands at most ~32,000x (RLE blocks), so one step
    # stays below ~512 MiB even on adversarial input, and near 64 KiB on text.
    CHUNK = 16 * 1024

    def __init__(self, path: Path) -> None:
        import zstandard

        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._src = open(path, "rb")  # noqa: SIM115
        self._in_frame = False
        self._out = b""
        self._pos = 0  # next unread byte of _out

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while self._pos >= len(self._out):
            data = self._src.read(self.CHUNK)
            if not data:
                if self._in_frame:
                    raise EOFError("the zstd stream ends in the middle of a frame (truncated file)")
                return 0
            self._out, self._pos = b"", 0
            try:
                while data:
                    if self._obj.eof:
                        self._obj = self._dctx.decompressobj()
                    self._out += self._obj.decompress(data)
                    self._in_frame = not self._obj.eof
                    data = self._obj.unused_data if self._obj.eof else b""
            except self._zstd.ZstdError as exc:
                raise OSError(f"not valid zstd data ({exc})") from exc
        n = min(len(buf), len(self._out) - self._pos)
        buf[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._src.close()
        super().close()


def _open_binary(path: Path) -> IO[bytes]:
    _, comp = _base_suffix(path)
    if comp == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if comp == ".zst":
        return io.BufferedReader(_ZstdReader(path))
    return open(path, "rb")


def _lines(path: Path, cfg: IngestConfig) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) reading bounded chunks, checking UTF-8 and binary content."""
    offset = 0
    with _open_binary(path) as raw:
        stream = raw
        lineno = 0
        while True:
            try:
                line = stream.readline(cfg.max_doc_bytes + 1)
            except (OSError, EOFError) as exc:
                raise InputError(f"{path}: cannot read ({exc}); is the file complete and not corrupt?") from exc
            if not line:
                return
            lineno += 1
            if len(line) > cfg.max_doc_bytes and not line.endswith(b"\n"):
                raise InputError(
                    f"{path}: line {lineno} is longer than {cfg.max_doc_bytes} bytes; "
                    "is this a text corpus? raise --max-doc-bytes if it is"
                )
            nul = line.find(b"\x00")
            if nul >= 0:
                raise InputError(f"{path}: binary data (NUL byte) at byte {offset + nul}; not a text corpus")
            try:
                text = line.decode("utf-8", errors=cfg.errors)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}: invalid UTF-8 at byte {offset + exc.start}; fix the file or pass --errors replace"
                ) from exc
            offset += len(line)
            yield lineno, text


def _read_text(path: Path, cfg: IngestConfig, dropped: list[int]) -> Iterator[tuple[str | None, str]]:
    buf: list[str] = []
    size = 0
    sep = cfg.separator
    for lineno, line in _lines(path, cfg):
        stripped = line.rstrip("\r\n")
        if stripped == sep:
            doc = "".join(buf).strip()
            buf, size = [], 0
            if doc:
                yield None, doc
            else:
                dropped[0] += 1
            continue
        buf.append(line)
        size += len(line)
        if size > cfg.max_doc_bytes:
            raise InputError(
                f"{path}: document ending near line {lineno} is longer than {cfg.max_doc_bytes} bytes; "
                f"is the separator {sep!r} right? (--separator, --max-doc-bytes)"
            )
    doc = "".join(buf).strip()
    if doc:
        yield None, doc
    elif buf:
        dropped[0] += 1


def _field(record: dict[str, Any], name: str, path: Path, where: str, required: bool) -> Any:
    if name not in record:
        if required:
            raise InputError(f"{path}: {where} has no field {name!r}; choose the field with --text-field/--id-field")
        return None
    return record[name]


def _read_jsonl(path: Path, cfg: IngestConfig, dropped: list[int]) -> Iterator[tuple[str | None, str]]:
    for lineno, line in _lines(path, cfg):
        if lineno == 1:
            # Some editors and exporters start UTF-8 files with a byte-order mark; it is not content.
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); fix or remove that line") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {lineno} is a JSON {type(record).__name__}, expected an object")
        where = f"line {lineno}"
        text = _field(record, cfg.text_field, path, where, required=True)
        if not isinstance(text, str):
            raise InputError(f"{path}: {where} field {cfg.text_field!r} is {type(text).__name__}, expected a string")
        if not text.isascii():
            # JSON may escape a lone surrogate (\ud800), which is valid JSON but not encodable UTF-8.
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                if cfg.errors == "strict":
                    raise InputError(
                        f"{path}: {where} field {cfg.text_field!r} holds an unpaired surrogate escape at character "
                        f"{exc.start}, not valid Unicode; fix the file or pass --errors replace"
                    ) from exc
                text = _SURROGATE.sub("\ufffd", text)
        doc_id = None
        if cfg.id_field:
            raw_id = _field(record, cfg.id_field, path, where, required=True)
            if raw_id is None or isinstance(raw_id, (dict, list)):
                raise InputError(f"{path}: {where} field {cfg.id_field!r} must be a string or number")
            doc_id = str(raw_id)
        text = text.strip()
        if text:
            yield doc_id, text
        else:
            dropped[0] += 1


def _read_parquet(path: Path, cfg: IngestConfig, dropped: list[int]) -> Iterator[tuple[str | None, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    wanted = [cfg.text_field] + ([cfg.id_field] if cfg.id_field else [])
    for col in wanted:
        if col not in names:
            raise InputError(
                f"{path}: Parquet file has no column {col!r} (columns: {', '.join(names)}); "
                "use --text-field/--id-field"
            )
    ttype = pf.schema_arrow.field(cfg.text_field).type
    if not (pa.types.is_string(ttype) or pa.types.is_large_string(ttype)):
        raise InputError(f"{path}: column {cfg.text_field!r} has type {ttype}, expected a string column")
    for batch in pf.iter_batches(batch_size=65_536, columns=wanted):
        texts = batch.column(0).to_pylist()
        ids = batch.column(1).to_pylist() if cfg.id_field else [None] * len(texts)
        for doc_id, text in zip(ids, texts, strict=True):
            text = (text or "").strip()
            if text:
                yield (None if doc_id is None else str(doc_id)), text
            else:
                dropped[0] += 1


_READERS = {"text": _read_text, "jsonl": _read_jsonl, "parquet": _read_parquet}


def _doc_prefixes(files: Sequence[Path], hashes: Sequence[str]) -> list[str]:
    """Readable, stable id prefixes: the file stem, made unique with the content hash if stems clash."""
    stems = [f.name.split(".")[0] for f in files]
    return [s if stems.count(s) == 1 else f"{s}-{h[:8]}" for s, h in zip(stems, hashes, strict=True)]


def ingest(
    store: Store,
    paths: Sequence[str | Path],
    name: str,
    cfg: IngestConfig | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Commit:
    """Read corpus files into a new version of dataset NAME (see the module docstring).

    Ids are the source's own (`id_field`, must be unique) or `<file stem>:<index>`, which is stable
    for an unchanged file. Raises InputError for unreadable input; nothing is published then.
    """
    cfg = cfg or IngestConfig()
    check_name(name)
    files = expand_paths(paths)
    if not files:
        raise InputError("no input files given")
    formats = [detect_format(f, cfg.format) for f in files]
    if cfg.id_field and "text" in formats:
        text_files = [str(f) for f, fmt in zip(files, formats, strict=True) if fmt == "text"]
        raise InputError(
            f"--id-field applies to JSONL and Parquet only, but {text_files[0]} is plain text "
            "(its documents get ids <file>:<index>); drop --id-field for text files"
        )
    total_bytes = sum(f.stat().st_size for f in files)
    with tracker.task("Hashing inputs", total=total_bytes) as task:
        hashes = []
        for f in files:
            hashes.append(file_sha256(f))
            task.advance(f.stat().st_size)
    params = {k: v for k, v in asdict(cfg).items() if k != "max_doc_bytes"}
    params["sources"] = [
        {"path": str(f), "sha256": h, "format": fmt} for f, h, fmt in zip(files, hashes, formats, strict=True)
    ]
    parents = [f"file:sha256:{h}" for h in hashes]
    prefixes = _doc_prefixes(files, hashes)

    def build(writer: PartWriter) -> dict[str, Any]:
        dropped = [0]
        per_file: list[dict[str, Any]] = []
        ids: list[str] = []
        texts: list[str] = []
        batch_bytes = 0
        total_docs = 0

        def flush() -> None:
            nonlocal ids, texts, batch_bytes
            if texts:
                writer.write(pl.DataFrame({ID: ids, TEXT: texts}, schema={ID: pl.String, TEXT: pl.String}))
            ids, texts, batch_bytes = [], [], 0

        with tracker.task("Ingesting", total=total_bytes) as task:
            for f, fmt, prefix in zip(files, formats, prefixes, strict=True):
                before_docs, before_dropped = total_docs, dropped[0]
                for index, (doc_id, text) in enumerate(_READERS[fmt](f, cfg, dropped)):
                    ids.append(doc_id if doc_id is not None else f"{prefix}:{index}")
                    texts.append(text)
                    batch_bytes += len(text)
                    total_docs += 1
                    if batch_bytes >= BATCH_BYTES:
                        flush()
                task.advance(f.stat().st_size)
                per_file.append(
                    {
                        "path": str(f),
                        "documents": total_docs - before_docs,
                        "dropped_empty": dropped[0] - before_dropped,
                    }
                )
            flush()
        if total_docs == 0:
            raise InputError(
                f"no documents found in {', '.join(str(f) for f in files)}; is the file empty or the separator wrong?"
            )
        if cfg.id_field:
            # Uniqueness is checked over the written parts, so it costs one column scan, not a set in RAM.
            dup = (
                pl.scan_parquet(str(writer.dir / "part-*.parquet"))
                .select(pl.len() - pl.col(ID).n_unique())
                .collect()
                .item()
            )
            if dup:
                raise InputError(
                    f"--id-field {cfg.id_field!r} is not unique ({dup} repeated ids); "
                    "drop --id-field to use generated ids"
                )
        return {"documents": total_docs, "dropped_empty": dropped[0], "files": per_file}

    return store.commit(name, operation="ingest", params=params, parents=parents, build=build)
