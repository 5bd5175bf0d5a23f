"""Ingest corpus files into a new dataset version: `curate ingest PATH... --name NAME [--engine ray]`.

Formats, chosen by extension (or `--format`): TinyStories-style text (`.txt`; documents separated
by a line equal to the separator, `<|endoftext|>` by default), JSON Lines (`.jsonl`, `.ndjson`,
`.json`), Parquet (`.parquet`); any of the text formats may be `.gz` or `.zst` compressed. Folders
are searched recursively and globs are expanded.

Everything streams: documents are collected into bounded batches and written as Parquet parts as
they come, so memory stays near one batch (~64 MiB of text) whatever the input size. The version
id is derived from the sha256 of every input file, so re-ingesting unchanged files is "up to date".

The inputs are read as a `plan` of groups: whole files packed in order into groups of about 64 MiB
on disk, a file of 64 MiB or more alone, and a Parquet file larger than that split into runs of
row groups. A part never spans two groups, so each group can be one task of a cluster
(`--engine ray`, `datadiet.engine.ray_ingest`) that writes exactly the parts written here.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from datadiet.engine import check_engine, load_ray
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
# Inputs are read in groups of about 64 MiB on disk (see `plan`): a cluster task's worth of work
# (~1 s of parsing), and few enough extra part ends that a folder of small files still gives
# parts near the batch size.
GROUP_BYTES = 64 * 1024 * 1024
# Below 1 GiB of input (~1 s of sha256 here) the ray engine hashes on the driver: starting tasks
# would cost more, and an up-to-date ingest then never starts Ray.
HASH_LOCAL_BYTES = 1 << 30
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


def _lines(path: Path, cfg: IngestConfig, location: Path | None = None) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) reading bounded chunks, checking UTF-8 and binary content.

    `location` is where the file is opened (default `path`); messages name `path`.
    """
    offset = 0
    with _open_binary(location or path) as raw:
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


def _read_text(
    path: Path, cfg: IngestConfig, dropped: list[int], location: Path | None = None
) -> Iterator[tuple[str | None, str]]:
    buf: list[str] = []
    size = 0
    sep = cfg.separator
    for lineno, line in _lines(path, cfg, location):
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


def _read_jsonl(
    path: Path, cfg: IngestConfig, dropped: list[int], location: Path | None = None
) -> Iterator[tuple[str | None, str]]:
    for lineno, line in _lines(path, cfg, location):
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


def _read_parquet(
    path: Path,
    cfg: IngestConfig,
    dropped: list[int],
    location: Path | None = None,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[tuple[str | None, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(location or path)
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
    groups = list(range(*row_groups)) if row_groups is not None else None
    for batch in pf.iter_batches(batch_size=65_536, columns=wanted, row_groups=groups):
        texts = batch.column(0).to_pylist()
        ids = batch.column(1).to_pylist() if cfg.id_field else [None] * len(texts)
        for doc_id, text in zip(ids, texts, strict=True):
            text = (text or "").strip()
            if text:
                yield (None if doc_id is None else str(doc_id)), text
            else:
                dropped[0] += 1


_READERS = {"text": _read_text, "jsonl": _read_jsonl}


def _doc_prefixes(files: Sequence[Path], hashes: Sequence[str]) -> list[str]:
    """Readable, stable id prefixes: the file stem, made unique with the content hash if stems clash."""
    stems = [f.name.split(".")[0] for f in files]
    return [s if stems.count(s) == 1 else f"{s}-{h[:8]}" for s, h in zip(stems, hashes, strict=True)]


# -- reading plan: pieces and groups --------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """What one reader reads: a whole input file, or a run of row groups of a large Parquet file.

    Attributes:
        file: Position of the file among the inputs.
        path: The file as the user named it (messages and the version's stats use it).
        location: Its absolute path, which is what gets opened (a cluster worker's working folder
            is not the driver's).
        format: text, jsonl or parquet.
        prefix: Id prefix of its documents (`<prefix>:<index within the file>`).
        row_groups: [start, stop) row groups of a split Parquet file; None for the whole file.
        bytes: Its share of the file's bytes on disk (grouping and progress).
    """

    file: int
    path: str
    location: str
    format: str
    prefix: str
    row_groups: tuple[int, int] | None = None
    bytes: int = 0

    @property
    def continues(self) -> bool:
        """Whether it starts after the file's first document (its ids do not start at index 0)."""
        return self.row_groups is not None and self.row_groups[0] > 0


def read_piece(piece: Piece, cfg: IngestConfig, dropped: list[int]) -> Iterator[tuple[str | None, str]]:
    """The (source id or None, normalised text) of a piece's documents; empty ones count in `dropped[0]`."""
    path, location = Path(piece.path), Path(piece.location)
    if piece.format == "parquet":
        return _read_parquet(path, cfg, dropped, location, piece.row_groups)
    return _READERS[piece.format](path, cfg, dropped, location)


def document_ids(piece: Piece, ids: Sequence[str | None], start: int) -> list[str]:
    """The stored ids of a piece's documents: the source's own, else `<prefix>:<index in the file>`."""
    return [doc_id if doc_id is not None else f"{piece.prefix}:{index}" for index, doc_id in enumerate(ids, start)]


def _row_group_runs(location: Path, group_bytes: int) -> list[tuple[tuple[int, int], int]] | None:
    """Consecutive row groups of a Parquet file in runs of >= group_bytes on disk, or None to read it whole."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(location)
    except Exception:  # an unreadable file is read whole, so its reader reports it in its turn
        return None
    runs: list[tuple[tuple[int, int], int]] = []
    start = size = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        size += sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
        if size >= group_bytes:
            runs.append(((start, i + 1), size))
            start, size = i + 1, 0
    if start < meta.num_row_groups:
        runs.append(((start, meta.num_row_groups), size))
    return runs if len(runs) > 1 else None


def plan(
    files: Sequence[Path], formats: Sequence[str], prefixes: Sequence[str], group_bytes: int | None = None
) -> list[list[Piece]]:
    """The inputs as groups of pieces, in input order: what one cluster task reads, and where a part ends.

    A Parquet file larger than `group_bytes` (default GROUP_BYTES) is split into runs of row groups;
    every piece of `group_bytes` or more, and every piece that continues a split file, is a group of
    its own; smaller files are packed, in order, into groups of about `group_bytes`. Depends only on
    the files (sizes and Parquet footers), so every engine cuts the same groups.
    """
    group_bytes = GROUP_BYTES if group_bytes is None else group_bytes
    pieces: list[Piece] = []
    for i, (f, fmt, prefix) in enumerate(zip(files, formats, prefixes, strict=True)):
        size = f.stat().st_size
        location = str(f.absolute())
        runs = _row_group_runs(f.absolute(), group_bytes) if fmt == "parquet" and size > group_bytes else None
        if runs is None:
            pieces.append(Piece(i, str(f), location, fmt, prefix, None, size))
            continue
        # Progress counts the footer too: the last run takes whatever the runs' sizes leave of the file.
        shares = [s for _, s in runs[:-1]]
        shares.append(max(0, size - sum(shares)))
        pieces.extend(
            Piece(i, str(f), location, fmt, prefix, rgs, s) for (rgs, _), s in zip(runs, shares, strict=True)
        )
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    held = 0
    for piece in pieces:
        alone = piece.continues or piece.bytes >= group_bytes
        if alone and current:
            groups.append(current)
            current, held = [], 0
        current.append(piece)
        held += piece.bytes
        if alone or held >= group_bytes:
            groups.append(current)
            current, held = [], 0
    if current:
        groups.append(current)
    return groups


class Batcher:
    """Collects documents and hands them on as frames of about `batch_bytes` characters of text.

    Every engine writes exactly these frames (one `PartWriter.write` or `stage_parts` call each),
    which is what makes their versions byte-identical.
    """

    def __init__(self, emit: Callable[[pl.DataFrame], None], batch_bytes: int | None = None) -> None:
        self.emit = emit
        self.batch_bytes = BATCH_BYTES if batch_bytes is None else batch_bytes
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.held = 0

    def add(self, doc_id: str, text: str) -> None:
        self.ids.append(doc_id)
        self.texts.append(text)
        self.held += len(text)
        if self.held >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        if self.texts:
            self.emit(pl.DataFrame({ID: self.ids, TEXT: self.texts}, schema={ID: pl.String, TEXT: pl.String}))
        self.ids, self.texts, self.held = [], [], 0


@dataclass
class Counts:
    """Documents kept and empty documents dropped, per input file (by its position)."""

    documents: dict[int, int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        for mine, theirs in ((self.documents, other.documents), (self.dropped, other.dropped)):
            for f, k in theirs.items():
                mine[f] = mine.get(f, 0) + k


def write_group(group: Iterable[Piece], cfg: IngestConfig, batcher: Batcher, counts: Counts) -> None:
    """Read a group's pieces into `batcher` and flush it (a group always ends a part).

    A piece's generated ids continue from `counts.documents` of its file (0 for a file's first piece).
    """
    for piece in group:
        dropped = [0]
        index = counts.documents.get(piece.file, 0)
        for doc_id, text in read_piece(piece, cfg, dropped):
            batcher.add(doc_id if doc_id is not None else f"{piece.prefix}:{index}", text)
            index += 1
        counts.documents[piece.file] = index
        counts.dropped[piece.file] = counts.dropped.get(piece.file, 0) + dropped[0]
    batcher.flush()


def finish(writer: PartWriter, cfg: IngestConfig, files: Sequence[Path], counts: Counts) -> dict[str, Any]:
    """Check the written version (documents found, unique source ids) and return its stats."""
    total_docs = sum(counts.documents.values())
    if total_docs == 0:
        raise InputError(
            f"no documents found in {', '.join(str(f) for f in files)}; is the file empty or the separator wrong?"
        )
    if cfg.id_field:
        # Uniqueness is checked over the written parts, so it costs one column scan, not a set in RAM.
        dup = writer.scan().select(pl.len() - pl.col(ID).n_unique()).collect().item()
        if dup:
            raise InputError(
                f"--id-field {cfg.id_field!r} is not unique ({dup} repeated ids); drop --id-field to use generated ids"
            )
    per_file = [
        {"path": str(f), "documents": counts.documents.get(i, 0), "dropped_empty": counts.dropped.get(i, 0)}
        for i, f in enumerate(files)
    ]
    return {"documents": total_docs, "dropped_empty": sum(counts.dropped.values()), "files": per_file}


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
) -> Commit:
    """Read corpus files into a new version of dataset NAME (see the module docstring).

    Ids are the source's own (`id_field`, must be unique) or `<file stem>:<index>`, which is stable
    for an unchanged file. Raises InputError for unreadable input; nothing is published then.

    Args:
        store: Where to write.
        paths: Files, folders or globs.
        name: Dataset name.
        cfg: How to read the files.
        tracker: Progress.
        engine: "local" or "ray" (`datadiet.engine.ray_ingest`: one cluster task per group of
            pieces); the version, rows and part files are the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").
    """
    cfg = cfg or IngestConfig()
    check_name(name)
    ray_ingest = load_ray("ray_ingest") if check_engine(engine) == "ray" else None
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
    sizes = [f.stat().st_size for f in files]
    total_bytes = sum(sizes)
    if ray_ingest is not None and total_bytes >= HASH_LOCAL_BYTES:
        hashes = ray_ingest.hash_files(files, address=address, tracker=tracker)
    else:
        with tracker.task("Hashing inputs", total=total_bytes) as task:
            hashes = []
            for f, size in zip(files, sizes, strict=True):
                hashes.append(file_sha256(f))
                task.advance(size)
    params = {k: v for k, v in asdict(cfg).items() if k != "max_doc_bytes"}
    params["sources"] = [
        {"path": str(f), "sha256": h, "format": fmt} for f, h, fmt in zip(files, hashes, formats, strict=True)
    ]
    parents = [f"file:sha256:{h}" for h in hashes]
    prefixes = _doc_prefixes(files, hashes)

    def build(writer: PartWriter) -> dict[str, Any]:
        groups = plan(files, formats, prefixes)
        if ray_ingest is not None:
            counts = ray_ingest.write_groups(writer, groups, cfg, address=address, tracker=tracker)
            return finish(writer, cfg, files, counts)
        counts = Counts()
        batcher = Batcher(writer.write)
        with tracker.task("Ingesting", total=total_bytes) as task:
            for group in groups:
                write_group(group, cfg, batcher, counts)
                task.advance(sum(p.bytes for p in group))
        return finish(writer, cfg, files, counts)

    return store.commit(name, operation="ingest", params=params, parents=parents, build=build)
