"""Reading corpus files for `curate ingest`: inputs (local paths, folders, globs, URIs), formats,
streaming readers, the plan of groups both engines share, and the local writing of a plan.

    files = expand_inputs(["data/*.jsonl.gz", "s3://bucket/corpus/"])
    groups = plan(files, [detect_format(f, "auto") for f in files], prefixes)
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from datadiet.curate.ingest.op import IngestConfig
from datadiet.curate.ingest.formats import (
    _READERS,
    READ_BUFFER,
    Document,
    _base_suffix,
    _open_raw,
    _read_parquet,
    _remote_error,
)
from datadiet.errors import InputError, UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import PartWriter, Remote, file_sha256, first_line, is_uri, open_filesystem

FORMATS = ("auto", "text", "jsonl", "parquet")


_EXT_FORMAT = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}


# Text is flushed to a Parquet part every 64 MiB so ingesting 1 GB needs well under 2 GB of RAM.
BATCH_BYTES = 64 * 1024 * 1024


# Inputs are read in groups of about 64 MiB on disk (see `plan`): a cluster task's worth of work
# (~1 s of parsing), and few enough extra part ends that a folder of small files still gives
# parts near the batch size.
GROUP_BYTES = 64 * 1024 * 1024


# Below 1 GiB of input (~1 s of sha256 here) the ray engine hashes on the driver: starting tasks
# would cost more, and an up-to-date ingest then never starts Ray.
HASH_LOCAL_BYTES = 1 << 30


def _known(name: str) -> bool:
    return _base_suffix(PurePosixPath(name))[0] in _EXT_FORMAT


# -- inputs: local files and objects on pyarrow filesystems ---------------------------------------


@dataclass(frozen=True)
class Source:
    """One input file: a local file, or an object on a pyarrow filesystem (`s3://`, `gs://`, `file://`, ...).

    Attributes:
        name: How messages name it: the path as the user gave it, or its URI (the query dropped).
        location: What is opened: the file's absolute path, or its path inside `filesystem`.
        record: How the version id and stats record it: the path as given for a local file (as
            before URIs were accepted), the local path for a `file://` URI (so that a URI and the
            absolute path of the same file are the same version), else `name`.
        size: Bytes on disk (grouping and progress).
        filesystem: The pyarrow filesystem it is on; None for a local file. Picklable for the
            filesystems pyarrow implements, so a Ray worker reads the object itself.
    """

    name: str
    location: str
    record: str
    size: int
    filesystem: Any = field(default=None, compare=False)

    @classmethod
    def local(cls, path: Path) -> Source:
        return cls(str(path), str(path.absolute()), str(path), path.stat().st_size)


def _glob_match(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """`glob.glob(..., recursive=True)` semantics on path components: `**` spans folders, wildcards skip dot names."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        if _glob_match(parts, pattern[1:]):
            return True
        return bool(parts) and not parts[0].startswith(".") and _glob_match(parts[1:], pattern)
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_match(parts[1:], pattern[1:])


def _path_key(rel: str) -> tuple[str, ...]:
    # Sorted by components, as pathlib sorts the local files ("a/x" before "a-b/y").
    return tuple(rel.split("/"))


def _hf_filesystem() -> Any:
    """The Hugging Face Hub as a pyarrow filesystem (`hf://datasets/OWNER/NAME/PATH`), through fsspec.

    `huggingface_hub` (installed with the hf extra) provides `HfFileSystem`; `HF_TOKEN` authenticates
    private repositories. Raises ValueError (reported as "cannot open") when it is not installed.
    """
    import pyarrow.fs as pafs

    try:
        from huggingface_hub import HfFileSystem
    except ImportError:
        raise ValueError("hf:// needs huggingface_hub: pip install 'datadiet[hf]'") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(HfFileSystem()))


class _Remote:
    """The inputs below one URI or one filesystem path: the store's remote backend at the fixed part
    of the path, and the wildcard components after it. A failure names the input as given (exit 2)."""

    def __init__(self, raw: str, filesystem: Any) -> None:
        import pyarrow as pa
        import pyarrow.fs as pafs

        self.raw = raw
        query = head = ""
        path = raw
        if filesystem is None:
            # The query (s3://b/p?region=x) configures the client and is no part of the place, so "?"
            # is never a wildcard in a URI.
            path, _, query = raw.partition("?")
            scheme, _, rest = path.partition("://")
            netloc, _, path = rest.partition("/")
            if any(ch in netloc for ch in "*?["):
                raise InputError(f"{raw}: wildcards go in the path, not in the bucket or host; name the bucket")
            head = f"{scheme}://{netloc}"
        comps = [c for c in path.split("/") if c]
        magic = next((i for i, c in enumerate(comps) if any(ch in c for ch in "*?[")), len(comps))
        #: Wildcard components after the fixed part (empty: RAW names one file or folder).
        self.pattern = comps[magic:]
        fixed = "/".join(comps[:magic])
        if filesystem is None:
            # `uri` + "/" + a path relative to the base names a file: "file://" + "/abs/a.txt", "s3://b" + "/k".
            self.uri = f"{head}/{fixed}" if fixed else head
            try:
                if scheme == "hf":
                    fs, base = _hf_filesystem(), f"{netloc}/{fixed}"
                else:
                    fs, base = open_filesystem(f"{head}/{fixed}" + (f"?{query}" if query else ""))
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise InputError(
                    f"{raw}: cannot open ({first_line(exc, limit=300)}); check the URI "
                    "(s3://BUCKET/PATH, gs://BUCKET/PATH, hf://datasets/OWNER/NAME/PATH, file:///ABS/PATH) "
                    "and your credentials"
                ) from exc
        else:
            fs = filesystem
            base = ("/" if path.startswith("/") else "") + fixed
            self.uri = f"{filesystem.type_name.rpartition(':')[2]}://{fixed}"  # "py::name" for Python filesystems
        self.remote = Remote(fs, base, self.uri, failure=lambda _action, _url, exc: _remote_error(raw, exc))
        self.base: str = self.remote.base
        self.local = isinstance(fs, pafs.LocalFileSystem)

    def source(self, location: str, size: int) -> Source:
        rel = self._rel(self.base, location)
        name = f"{self.uri}/{rel}" if rel else self.uri
        return Source(name, location, location if self.local else name, size, self.remote.fs)

    def _list(self, location: str, recursive: bool) -> list[Any]:
        rel = self._rel(self.base, location)
        return [info for _, info in self.remote.listing([rel] if rel else [], recursive)]

    def _rel(self, base: str, path: str) -> str:
        return path[len(base) :].lstrip("/") if path.startswith(base) else path

    def folder(self, location: str) -> list[Source]:
        """Every file of a known type under a folder, sorted as the local engine sorts a folder's files."""
        import pyarrow.fs as pafs

        found = [i for i in self._list(location, True) if i.type == pafs.FileType.File and _known(i.base_name)]
        if not found:
            name = self.source(location, 0).name
            raise InputError(f"{name}: folder holds no .txt, .jsonl or .parquet files (optionally .gz/.zst)")
        found.sort(key=lambda i: _path_key(self._rel(location, i.path)))
        return [self.source(i.path, i.size) for i in found]

    def expand(self) -> list[Source]:
        import pyarrow.fs as pafs

        if not self.pattern:
            info = self.remote.info()
            if info.type == pafs.FileType.NotFound:
                raise InputError(f"{self.raw}: no such file or folder")
            if info.type == pafs.FileType.Directory:
                return self.folder(self.base)
            return [self.source(self.base, info.size)]
        recursive = len(self.pattern) > 1 or "**" in self.pattern
        # "dir/**" matches dir itself too, as glob's does: the whole folder, before what else matches.
        itself = _glob_match([], self.pattern) and self.remote.info().type == pafs.FileType.Directory
        matched = [
            i
            for i in self._list(self.base, recursive)
            if _glob_match(self._rel(self.base, i.path).split("/"), self.pattern)
        ]
        if not matched and not itself:
            raise InputError(f"no files match {self.raw!r}; check the pattern")
        matched.sort(key=lambda i: _path_key(self._rel(self.base, i.path)))
        out = self.folder(self.base) if itself else []
        for i in matched:
            if i.type == pafs.FileType.Directory:
                out.extend(self.folder(i.path))
            elif i.type == pafs.FileType.File:
                out.append(self.source(i.path, i.size))
        return out


def _expand_local(text: str) -> list[Path]:
    """The files TEXT names: itself if it exists (even if it holds `*?[`), else the files its glob matches."""
    literal = Path(text)
    if literal.exists() or literal.is_symlink() or not any(ch in text for ch in "*?["):
        # The literal path first: `data[1].txt` is that file, not a pattern matching `data1.txt`.
        if not literal.exists():
            raise InputError(f"{text}: no such file or folder")
        candidates = [literal]
    else:
        candidates = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not candidates:
            raise InputError(f"no files match {text!r}; check the pattern")
    files: list[Path] = []
    for p in candidates:
        if p.is_dir():
            found = _folder_files(p)
            if not found:
                raise InputError(f"{p}: folder holds no .txt, .jsonl or .parquet files (optionally .gz/.zst)")
            files.extend(found)
        elif p.is_file():
            files.append(p)
    return files


def _folder_files(folder: Path) -> list[Path]:
    """The data files under FOLDER, in sorted order; every one readable, none reached from outside it.

    Symlink policy: a link inside the folder is followed when it stays inside the folder (a file
    linked there is read; a linked folder is not walked twice); a link leading outside it is an
    error, so a folder never pulls in files it does not hold. Name such a file on the command line
    to read it. A file or folder that cannot be read is an error too, never skipped in silence.
    """
    root = folder.resolve()
    found: list[Path] = []
    unreadable: list[str] = []
    outside: list[str] = []

    def note(exc: OSError) -> None:
        unreadable.append(f"{exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=note, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            link = here / d
            if link.is_symlink() and root not in link.resolve().parents and link.resolve() != root:
                outside.append(f"{link} -> {link.resolve()}")
        for name in filenames:
            path = here / name
            if not _known(name):
                continue
            if path.is_symlink():
                target = path.resolve()
                if root not in target.parents:
                    outside.append(f"{path} -> {target}")
                    continue
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                unreadable.append(f"{path}: {exc.strerror or exc}")
                continue
            found.append(path)
    if outside:
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        raise InputError(
            f"{folder}: symlink {outside[0]} leads outside the folder{more}; a folder is read only for what it "
            "holds: copy the file in, or name it on the command line"
        )
    if unreadable:
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise InputError(
            f"{folder}: cannot read {unreadable[0]}{more}; fix the permissions, or name the files to ingest"
        )
    return sorted(found)


def expand_inputs(paths: Sequence[str | Path], filesystem: Any = None) -> list[Source]:
    """Expand files, folders (recursively, known extensions only) and globs into the input files, in order.

    A string with a scheme (`s3://bucket/corpus/*.jsonl.gz`, `gs://...`, `file:///abs/dir/`) is read
    through `pyarrow.fs`; with `filesystem`, every path is a path inside that filesystem. Folders
    and wildcards behave as for local paths (`**` spans folders). A file named twice is read once.
    """
    sources: list[Source] = []
    for raw in paths:
        if filesystem is not None or is_uri(raw):
            sources.extend(_Remote(str(raw), filesystem).expand())
        else:
            sources.extend(Source.local(p) for p in _expand_local(str(raw)))
    seen: set[Any] = set()
    unique = []
    for src in sources:
        local = src.filesystem is None or _is_local_fs(src.filesystem)
        key = Path(src.location).resolve() if local else (src.filesystem.type_name, src.location)
        if key not in seen:
            seen.add(key)
            unique.append(src)
    return unique


def _is_local_fs(filesystem: Any) -> bool:
    import pyarrow.fs as pafs

    return isinstance(filesystem, pafs.LocalFileSystem)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Expand local folders (recursively, known extensions only) and globs into a sorted file list.

    Local paths only; `expand_inputs` takes URIs too.
    """
    uris = [str(p) for p in paths if is_uri(p)]
    if uris:
        raise UsageError(f"{uris[0]} is a URI; expand_paths takes local paths, expand_inputs takes URIs")
    return [Path(src.name) for src in expand_inputs(paths)]


def detect_format(path: str | PurePath | Source, forced: str) -> str:
    if forced != "auto":
        return forced
    name = path.name if isinstance(path, Source) else str(path)
    ext, _ = _base_suffix(PurePosixPath(name.partition("?")[0]) if is_uri(name) else PurePath(name))
    if ext not in _EXT_FORMAT:
        raise InputError(f"{name}: unknown file type {ext or '(none)'!r}; use --format text|jsonl|parquet")
    return _EXT_FORMAT[ext]


def source_sha256(src: Source) -> str:
    """Hex sha256 of an input file's bytes as stored (compressed files are not decompressed)."""
    if src.filesystem is None:
        return file_sha256(Path(src.location))
    h = hashlib.sha256()
    with _open_raw(src.name, src.location, src.filesystem) as f:
        try:
            while block := f.read(READ_BUFFER):
                h.update(block)
        except OSError as exc:
            raise _remote_error(src.name, exc) from exc
    return h.hexdigest()


def _doc_prefixes(files: Sequence[Source], hashes: Sequence[str]) -> list[str]:
    """Readable, stable id prefixes: the file stem, made unique with the content hash if stems clash.

    A URI's file gets the stem of its last path component, so its ids are those of the same file on disk.
    """
    stems = [PurePosixPath(f.location).name.split(".")[0] for f in files]
    return [s if stems.count(s) == 1 else f"{s}-{h[:8]}" for s, h in zip(stems, hashes, strict=True)]


# -- reading plan: pieces and groups --------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """What one reader reads: a whole input file, or a run of row groups of a large Parquet file.

    Attributes:
        file: Position of the file among the inputs.
        path: The file as the user named it, or its URI (messages use it).
        location: Its absolute path, which is what gets opened (a cluster worker's working folder
            is not the driver's), or its path on `filesystem`.
        format: text, jsonl or parquet.
        prefix: Id prefix of its documents (`<prefix>:<index within the file>`).
        row_groups: [start, stop) row groups of a split Parquet file; None for the whole file.
        bytes: Its share of the file's bytes on disk (grouping and progress).
        filesystem: The pyarrow filesystem of a URI's file (pickled into a cluster task, so the
            worker reads the object itself); None for a local file.
        sha256: The file's hash the version id was made of: a text or JSONL file is checked against
            it as it is read (a Parquet file, read in pieces, by `check_unchanged` afterwards).
    """

    file: int
    path: str
    location: str
    format: str
    prefix: str
    row_groups: tuple[int, int] | None = None
    bytes: int = 0
    filesystem: Any = field(default=None, compare=False)
    sha256: str | None = field(default=None, compare=False)

    @property
    def continues(self) -> bool:
        """Whether it starts after the file's first document (its ids do not start at index 0)."""
        return self.row_groups is not None and self.row_groups[0] > 0


def read_piece(piece: Piece, cfg: IngestConfig, dropped: list[int]) -> Iterator[Document]:
    """The (source id or None, normalised text, extra values) of a piece's documents; empty ones count in `dropped[0]`.

    The extra values follow `cfg.extra_columns` (None where the document has no such field).
    """
    if piece.format == "parquet":
        return _read_parquet(piece.path, cfg, dropped, piece.location, piece.filesystem, piece.row_groups)
    return _READERS[piece.format](piece.path, cfg, dropped, piece.location, piece.filesystem, piece.sha256)


def document_ids(piece: Piece, ids: Sequence[str | None], start: int) -> list[str]:
    """The stored ids of a piece's documents: the source's own, else `<prefix>:<index in the file>`."""
    return [doc_id if doc_id is not None else f"{piece.prefix}:{index}" for index, doc_id in enumerate(ids, start)]


def _row_group_runs(src: Source, group_bytes: int) -> list[tuple[tuple[int, int], int]] | None:
    """Consecutive row groups of a Parquet file in runs of >= group_bytes on disk, or None to read it whole."""
    import pyarrow.parquet as pq

    try:
        if src.filesystem is None:
            meta = pq.read_metadata(src.location)
        else:
            with src.filesystem.open_input_file(src.location) as f:
                meta = pq.read_metadata(f)
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
    files: Sequence[Path | Source],
    formats: Sequence[str],
    prefixes: Sequence[str],
    group_bytes: int | None = None,
    hashes: Sequence[str] | None = None,
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
        src = Source.local(f) if isinstance(f, Path) else f
        size = src.size
        runs = _row_group_runs(src, group_bytes) if fmt == "parquet" and size > group_bytes else None
        if runs is None:
            sha = hashes[i] if hashes is not None else None
            pieces.append(Piece(i, src.name, src.location, fmt, prefix, None, size, src.filesystem, sha))
            continue
        # Progress counts the footer too: the last run takes whatever the runs' sizes leave of the file.
        shares = [s for _, s in runs[:-1]]
        shares.append(max(0, size - sum(shares)))
        pieces.extend(
            Piece(i, src.name, src.location, fmt, prefix, rgs, s, src.filesystem)
            for (rgs, _), s in zip(runs, shares, strict=True)
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

    def __init__(
        self,
        emit: Callable[[pl.DataFrame], None],
        batch_bytes: int | None = None,
        columns: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.emit = emit
        self.batch_bytes = BATCH_BYTES if batch_bytes is None else batch_bytes
        #: The ingest's extra columns (name, Arrow type), the same for every frame of a version.
        self.columns = tuple(columns)
        self._clear()

    def _clear(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.extras: list[list[Any]] = [[] for _ in self.columns]
        self.held = 0

    def add(self, doc_id: str, text: str, extras: Sequence[Any] = ()) -> None:
        self.ids.append(doc_id)
        self.texts.append(text)
        for values, value in zip(self.extras, extras, strict=True):
            values.append(value)
        self.held += len(text)
        if self.held >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        if self.texts:
            frame = pl.DataFrame({ID: self.ids, TEXT: self.texts}, schema={ID: pl.String, TEXT: pl.String})
            if self.columns:
                frame = frame.with_columns(_extra_series(self.columns, self.extras))
            self.emit(frame)
        self._clear()


def _extra_series(columns: Sequence[tuple[str, Any]], values: Sequence[list[Any]]) -> list[pl.Series]:
    """The extra columns of a batch, each cast to the ingest's one Arrow type for it (so every part agrees)."""
    import pyarrow as pa

    out = []
    for (name, typ), column in zip(columns, values, strict=True):
        try:
            array = pa.array(column, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            # The schema pass saw every value, so this is a file changed since, or a value pyarrow infers
            # but cannot convert (an integer beyond 64 bits).
            why = first_line(exc)
            raise InputError(f"field {name!r}: a value does not fit its column type {typ} ({why})") from None
        out.append(pl.Series(name, pl.from_arrow(array)))
    return out


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
        for doc_id, text, extras in read_piece(piece, cfg, dropped):
            batcher.add(doc_id if doc_id is not None else f"{piece.prefix}:{index}", text, extras)
            index += 1
        counts.documents[piece.file] = index
        counts.dropped[piece.file] = counts.dropped.get(piece.file, 0) + dropped[0]
    batcher.flush()


def check_unchanged(files: Sequence[Source], formats: Sequence[str], hashes: Sequence[str]) -> None:
    """Re-hash the Parquet inputs after reading: one replaced meanwhile fails the ingest.

    Text and JSONL inputs are checked as they are read (`Piece.sha256`); a Parquet file is read by
    row groups, out of order and possibly by several tasks, so it is hashed again instead.
    """
    for src, fmt, expected in zip(files, formats, hashes, strict=True):
        if fmt == "parquet" and source_sha256(src) != expected:
            raise InputError(
                f"{src.name}: changed while it was being ingested (its bytes no longer match the sha256 taken "
                "before reading); nothing was published; rerun once the file stops changing"
            )


def finish(writer: PartWriter, cfg: IngestConfig, files: Sequence[Source], counts: Counts) -> dict[str, Any]:
    """Check the written version (documents found, unique source ids) and return its stats."""
    total_docs = sum(counts.documents.values())
    if total_docs == 0:
        raise InputError(
            f"no documents found in {', '.join(f.name for f in files)}; is the file empty or the separator wrong?"
        )
    if cfg.id_field:
        # Uniqueness is checked over the written parts, so it costs one column scan, not a set in RAM.
        dup = writer.scan().select(pl.len() - pl.col(ID).n_unique()).collect().item()
        if dup:
            raise InputError(
                f"--id-field {cfg.id_field!r} is not unique ({dup} repeated ids); drop --id-field to use generated ids"
            )
    per_file = [
        {"path": f.record, "documents": counts.documents.get(i, 0), "dropped_empty": counts.dropped.get(i, 0)}
        for i, f in enumerate(files)
    ]
    return {"documents": total_docs, "dropped_empty": sum(counts.dropped.values()), "files": per_file}
