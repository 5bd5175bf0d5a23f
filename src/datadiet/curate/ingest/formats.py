"""The input formats of `curate ingest`, streamed: text documents between separator lines, JSON
Lines, Parquet row groups; any text format gzip- or zstd-compressed, local or through `pyarrow.fs`.

    for doc_id, text in _READERS["jsonl"](path, cfg, dropped, location, filesystem): ...
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import PurePath, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from datadiet.curate.ingest.op import IngestConfig
from datadiet.errors import InputError
from datadiet.store import first_line

# What a reader yields per document: (the source's id or None, normalised text, extra field values).
Document = tuple[str | None, str, tuple[Any, ...]]

_COMPRESSION = (".gz", ".zst")


_SURROGATE = re.compile("[\ud800-\udfff]")


# Remote objects are read 8 MiB at a time: an object store serves each read as one ranged GET, and
# at ~50 ms per request 8 MiB keeps a 1 Gbit/s link busy; memory stays 8 MiB per open file.
READ_BUFFER = 8 * 1024 * 1024


def _base_suffix(path: PurePath) -> tuple[str, str]:
    """(format extension, compression extension) of a path such as `a.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    comp = suffixes[-1] if suffixes and suffixes[-1] in _COMPRESSION else ""
    rest = suffixes[:-1] if comp else suffixes
    return (rest[-1] if rest else ""), comp


def _remote_error(name: str, exc: BaseException) -> InputError:
    return InputError(
        f"{name}: cannot read ({first_line(exc, limit=300)}); check the URI, your credentials and the network"
    )


def _open_raw(name: str, location: str, filesystem: Any) -> IO[bytes]:
    """A local file, or a buffered stream of a remote object's raw bytes (never decompressed by pyarrow)."""
    if filesystem is None:
        return open(location, "rb")
    import pyarrow as pa

    try:
        # compression=None: pyarrow would otherwise gunzip .gz itself, and the hash is of the stored bytes.
        stream = filesystem.open_input_stream(location, compression=None)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file or folder") from None
    except (OSError, pa.ArrowException) as exc:
        raise _remote_error(name, exc) from exc
    return io.BufferedReader(stream, READ_BUFFER)


class _ZstdReader(io.RawIOBase):
    """A .zst file decompressed frame by frame; raises EOFError if the last frame is cut short.

    zstandard's own `stream_reader` ends quietly in the middle of a truncated frame, which would
    ingest a prefix of the corpus without a word, and raises `ZstdError` (not an OSError) on garbage.
    """

    # Input is fed 16 KiB at a time: zstd expands at most ~32,000x (RLE blocks), so one step
    # stays below ~512 MiB even on adversarial input, and near 64 KiB on text.
    CHUNK = 16 * 1024

    def __init__(self, src: IO[bytes]) -> None:
        import zstandard

        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._src = src
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


class _HashingReader(io.RawIOBase):
    """A raw stream that hashes every byte read through it (the file as stored, before decompression)."""

    def __init__(self, src: IO[bytes]) -> None:
        self._src = src
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self._src.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.sha256.update(data)
        return n

    def drain(self) -> None:
        while block := self._src.read(READ_BUFFER):
            self.sha256.update(block)


@contextlib.contextmanager
def _open_binary(name: str, location: str, filesystem: Any = None, expect: str | None = None) -> Iterator[IO[bytes]]:
    """The file's decompressed bytes (by its extension); the stored stream is closed on exit.

    With EXPECT (the sha256 the version id was made of), the stored bytes are hashed as they are
    read and, once the caller has read to the end, compared: a file replaced or edited between
    hashing and reading fails the ingest (nothing is published) instead of being published under
    the first file's hash.
    """
    _, comp = _base_suffix(PurePosixPath(location))
    with _open_raw(name, location, filesystem) as stored:
        hashing = _HashingReader(stored) if expect is not None else None
        raw: IO[bytes] = cast(IO[bytes], io.BufferedReader(hashing, READ_BUFFER)) if hashing is not None else stored
        with _decompressed(raw, comp) as data:
            yield data
            if hashing is not None:  # the caller read to the end: check what it read
                raw.read()  # what the decompressor left unread (trailing bytes) counts too
                hashing.drain()
                if hashing.sha256.hexdigest() != expect:
                    raise InputError(
                        f"{name}: changed while it was being ingested (its bytes no longer match the sha256 taken "
                        "before reading); nothing was published; rerun once the file stops changing"
                    )


@contextlib.contextmanager
def _decompressed(raw: IO[bytes], comp: str) -> Iterator[IO[bytes]]:
    """RAW decompressed by the file's compression suffix (`.gz`, `.zst`, or none)."""
    if comp == ".gz":
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield cast(IO[bytes], unzipped)
    elif comp == ".zst":
        with io.BufferedReader(_ZstdReader(raw)) as unzstd:
            yield unzstd
    else:
        yield raw


def _lines(
    path: str, cfg: IngestConfig, location: str, filesystem: Any = None, expect: str | None = None
) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) reading bounded chunks, checking UTF-8 and binary content.

    `location` (on `filesystem`, None: the local disk) is where the file is opened; messages name `path`.
    """
    offset = 0
    with _open_binary(path, location, filesystem, expect) as raw:
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
            if lineno == 1 and not line.endswith(b"\n") and b"\r" in line.rstrip(b"\r"):
                # Lines ended by a lone CR (classic Mac): read as one line, every document would merge.
                raise InputError(
                    f"{path}: lines end in a lone CR (classic Mac line endings), so the file reads as one line; "
                    "convert it to LF endings first (e.g. tr '\\r' '\\n' < in > out)"
                )
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
    path: str, cfg: IngestConfig, dropped: list[int], location: str, filesystem: Any = None, expect: str | None = None
) -> Iterator[Document]:
    none = (None,) * len(cfg.extra_columns)  # a text file has no extra fields: nulls in every extra column
    buf: list[str] = []
    size = 0
    sep = cfg.separator
    for lineno, line in _lines(path, cfg, location, filesystem, expect):
        stripped = line.rstrip("\r\n")
        if stripped == sep:
            doc = "".join(buf).strip()
            buf, size = [], 0
            if doc:
                yield None, doc, none
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
        yield None, doc, none
    elif buf:
        dropped[0] += 1


def _field(record: dict[str, Any], name: str, path: str, where: str, required: bool) -> Any:
    if name not in record:
        if required:
            raise InputError(f"{path}: {where} has no field {name!r}; choose the field with --text-field/--id-field")
        return None
    return record[name]


def json_records(
    path: str, cfg: IngestConfig, location: str, filesystem: Any = None, expect: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSON Lines file's records; blank lines skipped, non-objects refused."""
    for lineno, line in _lines(path, cfg, location, filesystem, expect):
        if lineno == 1:
            # Some editors and exporters start UTF-8 files with a byte-order mark; it is not content.
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); fix or remove that line") from exc
        except (ValueError, RecursionError) as exc:
            # A number of thousands of digits (Python refuses to convert it) or nesting thousands deep.
            why = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc)
            raise InputError(f"{path}: line {lineno} cannot be read as JSON ({why}); fix or remove that line") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {lineno} is a JSON {type(record).__name__}, expected an object")
        yield lineno, record


def _read_jsonl(
    path: str, cfg: IngestConfig, dropped: list[int], location: str, filesystem: Any = None, expect: str | None = None
) -> Iterator[Document]:
    extras = [name for name, _ in cfg.extra_columns]
    for lineno, record in json_records(path, cfg, location, filesystem, expect):
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
            # Missing fields are nulls; types are checked and cast when the batch becomes a part.
            yield doc_id, text, tuple(record.get(name) for name in extras)
        else:
            dropped[0] += 1


def _open_input_file(name: str, location: str, filesystem: Any) -> Any:
    """A remote object opened for random access (a Parquet footer and its column chunks)."""
    import pyarrow as pa

    try:
        return filesystem.open_input_file(location)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file or folder") from None
    except (OSError, pa.ArrowException) as exc:
        raise _remote_error(name, exc) from exc


def _read_parquet(
    path: str,
    cfg: IngestConfig,
    dropped: list[int],
    location: str,
    filesystem: Any = None,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[Document]:
    with contextlib.ExitStack() as stack:
        source: Any = location
        if filesystem is not None:
            source = stack.enter_context(_open_input_file(path, location, filesystem))
        yield from _parquet_rows(path, cfg, dropped, source, row_groups)


def _parquet_rows(
    path: str, cfg: IngestConfig, dropped: list[int], source: Any, row_groups: tuple[int, int] | None
) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
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
    if not _stringlike(pa, ttype):
        raise InputError(f"{path}: column {cfg.text_field!r} has type {ttype}, expected a string column")
    groups = list(range(*row_groups)) if row_groups is not None else None
    # The extra columns this file has (the others are nulls here), read with the id and text.
    extras = [(name, typ) for name, typ in cfg.extra_columns if name in names and name not in wanted]
    # Row numbers in messages count from the file's start, also when this reads a later range of row groups.
    row = sum(pf.metadata.row_group(i).num_rows for i in range(row_groups[0])) if row_groups is not None else 0
    for batch in pf.iter_batches(batch_size=65_536, columns=wanted + [n for n, _ in extras], row_groups=groups):
        # dictionary<string> and string_view columns are text too: decoded to plain strings here.
        texts = batch.column(0).cast(pa.large_string()).to_pylist()
        ids = batch.column(1).to_pylist() if cfg.id_field else [None] * len(texts)
        columns = {name: batch.column(name).cast(typ).to_pylist() for name, typ in extras}
        values = [columns.get(name, [None] * len(texts)) for name, _ in cfg.extra_columns]
        for doc_id, text, *more in zip(ids, texts, *values, strict=True):
            row += 1
            if cfg.id_field and doc_id is None:
                # As for JSONL: a missing id is an error, never silently replaced by a generated one.
                raise InputError(f"{path}: row {row} has a null {cfg.id_field!r}; fill the ids or drop --id-field")
            if text is not None and len(text) > cfg.max_doc_bytes and len(text.encode("utf-8")) > cfg.max_doc_bytes:
                raise InputError(
                    f"{path}: row {row} holds a document longer than {cfg.max_doc_bytes} bytes; "
                    "is this a text corpus? raise --max-doc-bytes if it is"
                )
            text = (text or "").strip()
            if text:
                yield (None if doc_id is None else str(doc_id)), text, tuple(more)
            else:
                dropped[0] += 1


def _stringlike(pa: Any, ttype: Any) -> bool:
    """Whether a Parquet column of type TTYPE holds text: string, large_string, string_view or dictionary of them."""
    if pa.types.is_dictionary(ttype):
        ttype = ttype.value_type
    view = getattr(pa.types, "is_string_view", lambda t: False)(ttype)
    return bool(pa.types.is_string(ttype) or pa.types.is_large_string(ttype) or view)


_READERS = {"text": _read_text, "jsonl": _read_jsonl}
