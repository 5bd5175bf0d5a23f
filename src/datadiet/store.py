"""The versioned, content-addressed artefact store.

Layout under the store root (``--store``, else ``$DATADIET_STORE``, else ``./datadiet-store``)::

    datasets/<name>/<version>/part-00000.parquet ... manifest.json
    tokenizers/ tokens/ runs/ stats/ reports/   same rules, other kinds of artefact
    .tmp/        folders being written; never visible as versions
    .locks/      one lock file per version being written

A version id is a hash of the kind, the operation, its canonical parameters (seed included), the
parent refs and the format version, so the same operation on the same input is found instead of
recomputed. A version is written into ``.tmp/`` and renamed into place in one step; inside it the
manifest is written last, and a folder without a manifest is never treated as a version. That
makes every listed version complete even if the writer is killed at any instant.

The store may also live on any filesystem pyarrow knows (``s3://bucket/prefix``, ``gs://...``,
``hdfs://...``, ``file:///abs/path``). Versions are immutable and content-addressed, so such a
store is fronted by a local read-through cache (``$DATADIET_CACHE/<hash of the URI>``, default
``~/.cache/datadiet/...``) that plays the local root's part: ``.tmp/``, ``.locks/`` and run work
folders live there, and a version's files are fetched into it on first use, each checked against
the sha256 in its manifest, so every consumer keeps reading local files. Publishing uploads the
data files first and the manifest last (one small PUT, atomic on object stores; a temporary name
and a move elsewhere), so the rule above holds remotely too: a folder without a manifest is never
a version.

Cluster workers (`--engine ray`) neither download nor go through this machine: they read parts
through `Dataset.part_sources()` (a path, or the object store itself) and stage their output
through `PartWriter.stage_target()` (the temporary folder, or the version's still manifest-less
folder on the remote, where the driver renames the files into place before the manifest).

Used by every operation::

    store = Store(root)                       # a folder, or a URI such as "s3://bucket/datadiet"
    commit = store.commit("ts", operation="subset", params={...}, parents=[ds.ref], build=fn)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl

from datadiet import __version__
from datadiet.errors import DatadietError, RefError, UsageError
from datadiet.schema import FORMAT_VERSION, MANIFEST_FILE, MAX_PART_BYTES, MAX_PART_ROWS, PART_PATTERN, conform

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs
    import pyarrow.parquet as pq

STORE_ENV = "DATADIET_STORE"
DEFAULT_STORE = "datadiet-store"
KINDS = ("datasets", "tokenizers", "tokens", "runs", "evals", "stats", "reports", "sweeps")
TMP_DIR = ".tmp"
LOCK_DIR = ".locks"
STAGE_PREFIX = ".stage"  # staged, not yet adopted parts; a version is never published with one
VERSION_LEN = 16  # 64 bits of sha256: collisions are negligible for any store a person will fill
CACHE_ENV = "DATADIET_CACHE"
UPLOAD_DIR = ".uploads"  # (remote stores) one marker per upload this machine began and has not finished
FETCH_PREFIX = ".fetch-"  # (remote stores) a download in progress inside the cache
# A manifest-less remote folder with no marker here may be another machine's upload in progress;
# gc leaves it alone for a day, far longer than any one version takes to upload.
REMOTE_DEBRIS_GRACE_S = 24 * 3600
FETCH_DEBRIS_GRACE_S = 3600  # a download untouched for an hour belongs to a process that died
# Object stores whose single PUT of a small object is atomic; elsewhere the manifest is written to a
# temporary name and moved into place (a rename on local filesystems and HDFS).
_ATOMIC_PUT = frozenset({"s3", "gcs", "abfs"})
_IO_THREADS = 8  # concurrent transfers: object stores are latency-bound, 8 keeps a 1 Gbit/s link busy
_CHUNK = 8 << 20  # 8 MiB per read/write: few calls per file, flat memory per transfer
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")  # 2+ letters, so a Windows drive "C://" stays a path
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def canonical_json(value: Any) -> str:
    """The one serialisation used for hashing: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so memory stays flat for any size."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_uri(root: str | Path) -> bool:
    """Whether a `--store` value names a pyarrow filesystem URI (`s3://...`) rather than a folder."""
    return isinstance(root, str) and _URI.match(root) is not None


def _first_line(exc: BaseException) -> str:
    # pyarrow's messages can run to dozens of lines (every libjvm path it tried); errors are one line.
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_name(name: str) -> str:
    """Validate a dataset name: letters, digits, `-`, `_`, `.`, not starting with a dot."""
    if not name or name.startswith(".") or not set(name) <= _NAME_OK or len(name) > 100:
        raise UsageError(f"invalid name {name!r}: use 1-100 letters, digits, '-', '_' or '.' (not starting with '.')")
    return name


@dataclass(frozen=True)
class Manifest:
    """Everything recorded about one immutable version."""

    name: str
    version: str
    kind: str
    parents: list[str]
    operation: str
    params: dict[str, Any]
    seed: int | None
    created: str
    package_version: str
    rows: int
    bytes: int
    files: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Dataset:
    """A published version of any kind of artefact (a dataset, a tokenizer, a run, ...).

    `folder` is the version's folder on this machine: the version itself in a local store, its
    place in the cache for a remote one. Read files through `path`, `file` or `parts`, which fetch
    them from a remote store first (and are plain paths for a local one).
    """

    name: str
    version: str
    kind: str
    folder: Path
    manifest: Manifest
    store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def remote(self) -> bool:
        """Whether the version lives on a remote store (its files are fetched into the cache on use)."""
        return self.store is not None and self.store.remote is not None

    @property
    def location(self) -> str:
        """Where the version is published, for people: its folder, or its URI on a remote store."""
        if self.store is not None and self.store.remote is not None:
            return self.store.remote.url(self.kind, self.name, self.version)
        return str(self.folder)

    @property
    def path(self) -> Path:
        """The version's folder with every file present (on a remote store, all are fetched first).

        Prefer `file(name)` or `parts` where only some files are needed: they fetch only those.
        """
        if self.store is not None and self.store.remote is not None:
            self.store._fetch(self, sorted(self.manifest.files))
        return self.folder

    def file(self, rel: str) -> Path:
        """The local path of one file of the version (fetched from a remote store if it has one)."""
        if self.store is not None and self.store.remote is not None and rel in self.manifest.files:
            self.store._fetch(self, [rel])
        return self.folder / rel

    def _part_names(self) -> list[str]:
        return sorted(
            r for r in self.manifest.files if "/" not in r and r.startswith("part-") and r.endswith(".parquet")
        )

    @property
    def parts(self) -> list[Path]:
        if self.store is not None and self.store.remote is not None:
            names = self._part_names()
            self.store._fetch(self, names)
            return [self.folder / n for n in names]
        return sorted(self.folder.glob("part-*.parquet"))

    def part_sources(self) -> list[PartSource]:
        """The Parquet parts as small picklable handles a cluster worker reads wherever the store lives.

        Unlike `parts`, nothing is downloaded here: a local store's handles are paths; a remote
        store's read straight from the object store on whichever machine calls `read`. Each
        handle knows its row count (from the part's footer; remote footers are read concurrently,
        once per `Dataset`: a version never changes, and a Ray dedupe or stats asks twice).
        """
        return list(self._part_sources)

    @functools.cached_property
    def _part_sources(self) -> tuple[PartSource, ...]:
        remote = self.store.remote if self.store is not None else None
        if remote is None:
            sources = [PartSource(p.name, str(p)) for p in self.parts]
        else:
            key = (self.kind, self.name, self.version)
            sources = [
                PartSource(n, remote.path(*key, n), self.manifest.files[n], remote, key) for n in self._part_names()
            ]
        footers = part_metadata(sources)
        return tuple(
            PartSource(s.name, s.path, s.sha256, s.remote, s.key, m.num_rows)
            for s, m in zip(sources, footers, strict=True)
        )

    @property
    def rows(self) -> int:
        return self.manifest.rows

    def scan(self) -> pl.LazyFrame:
        parts = self.parts
        if not parts:
            raise DatadietError(f"{self.ref} has no Parquet parts (it is a {self.kind[:-1]}, not a dataset)")
        return pl.scan_parquet([str(p) for p in parts])

    def read(self) -> pl.DataFrame:
        return self.scan().collect()

    def iter_frames(self) -> Iterator[pl.DataFrame]:
        """Yield the parts one at a time, so a large version never has to fit in memory at once."""
        if self.store is not None and self.store.remote is not None:
            # One part fetched at a time: the first frame comes without waiting for the whole version.
            for name in self._part_names():
                yield pl.read_parquet(self.file(name))
            return
        for part in self.parts:
            yield pl.read_parquet(part)


@dataclass(frozen=True)
class Commit:
    """The result of `Store.commit`: the version and whether it already existed."""

    dataset: Dataset
    up_to_date: bool


def stage_parts(frame: pl.DataFrame, directory: Path, stem: str, kind: str = "datasets") -> list[tuple[Path, int]]:
    """Write rows as Parquet files `<stem>-<j>.parquet` in `directory`, split as a version's parts are.

    The one place parts are encoded and split: `PartWriter.write` stages then adopts, and cluster
    workers stage into the version's temporary folder for the driver to adopt, so a version written
    by workers is byte-identical to one written locally from the same frames.

    Returns:
        (path, rows) per file, in order.
    """
    if not stem.startswith(STAGE_PREFIX):
        raise ValueError(f"staged part names start with {STAGE_PREFIX!r}, got {stem!r}")
    if kind == "datasets":
        frame = conform(frame)
    # Split by both row count and estimated size so no part exceeds the caps.
    est = max(1, frame.estimated_size())
    rows_per_part = max(1, min(MAX_PART_ROWS, int(frame.height * MAX_PART_BYTES / est)))
    staged = []
    for j, offset in enumerate(range(0, max(frame.height, 1), rows_per_part)):
        chunk = frame.slice(offset, rows_per_part)
        path = directory / f"{stem}-{j:05d}.parquet"
        chunk.write_parquet(path, compression="zstd", statistics=True)
        staged.append((path, chunk.height))
    return staged


@dataclass(frozen=True)
class PartSource:
    """One Parquet part of a version, for a cluster worker to read (from `Dataset.part_sources`).

    It pickles small (a path, or a path and the store's pyarrow filesystem), so it can be sent
    to any machine: a local (or shared-filesystem) store's part is read from its path, a remote
    store's straight from the object store, its bytes checked against the manifest's sha256.
    """

    name: str  # part-XXXXX.parquet
    path: str  # the local path, or the path on the remote store's filesystem
    sha256: str | None = None  # (remote) the manifest's hash, checked on every read
    remote: _Remote | None = field(default=None, repr=False)
    key: tuple[str, str, str] | None = None  # (remote) kind, name, version
    rows: int = -1  # from the footer; -1 until read

    @property
    def location(self) -> str:
        """Where the part is, for messages: its path, or its URI on a remote store."""
        if self.remote is not None and self.key is not None:
            return self.remote.url(*self.key, self.name)
        return self.path

    def read_bytes(self) -> bytes:
        """The file's bytes; on a remote store checked against the manifest's sha256.

        Raises:
            DatadietError: the remote file is missing, unreadable or differs from its manifest.
        """
        if self.remote is None or self.key is None:
            return Path(self.path).read_bytes()
        parts = (*self.key, self.name)
        try:
            data = self.remote.read_bytes(*parts)
        except FileNotFoundError as exc:
            raise DatadietError(
                f"{self.location} is missing although the manifest lists it; run `curate verify {parts[1]}@{parts[2]}`"
            ) from exc
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise DatadietError(
                f"{self.location} differs from its manifest (sha256 mismatch), so it was not used; "
                f"run `curate verify {parts[1]}@{parts[2]}`"
            )
        return data

    def read(self, columns: Sequence[str] | None = None, offset: int = 0, length: int | None = None) -> pl.DataFrame:
        """Rows [offset, offset + length) of the part (all by default), only COLUMNS if given.

        A remote part is fetched whole into memory (parts are at most MAX_PART_BYTES, 256 MiB) and
        hashed there; nothing is written to the local disk.
        """
        cols = list(columns) if columns is not None else None
        if self.remote is None:
            if offset == 0 and length is None:
                return pl.read_parquet(self.path, columns=cols)
            lazy = pl.scan_parquet(self.path)
            return (lazy.select(cols) if cols is not None else lazy).slice(offset, length).collect()
        frame = pl.read_parquet(io.BytesIO(self.read_bytes()), columns=cols)
        return frame if offset == 0 and length is None else frame.slice(offset, length)

    def metadata(self) -> pq.FileMetaData:
        """The part's Parquet footer (a few small reads on a remote store)."""
        import pyarrow.parquet as pq

        if self.remote is None or self.key is None:
            return pq.read_metadata(self.path)
        parts = (*self.key, self.name)
        with self.remote.errors("read", *parts), self.remote.fs.open_input_file(self.path) as f:
            return pq.ParquetFile(f).metadata

    def schema(self) -> pa.Schema:
        """The part's Arrow schema, from its footer."""
        return self.metadata().schema.to_arrow_schema()


def part_metadata(sources: Sequence[PartSource]) -> list[pq.FileMetaData]:
    """The footers of SOURCES, in order (read concurrently: on a remote store each is a round trip)."""
    found: list[Any] = [None] * len(sources)

    def read(i: int) -> None:
        found[i] = sources[i].metadata()

    if any(s.remote is not None for s in sources):
        _transfer([functools.partial(read, i) for i in range(len(sources))])
    else:
        for i in range(len(sources)):
            read(i)
    return found


class Staged(NamedTuple):
    """A file a worker staged (`StageTarget.stage`) for the driver to adopt (`PartWriter.adopt_staged`)."""

    name: str  # its name in the staging folder
    rows: int
    sha256: str | None = None  # (remote store) hashed on the worker, so the driver never reads it
    size: int | None = None


@dataclass(frozen=True)
class StageTarget:
    """Where cluster workers stage a version's parts (from `PartWriter.stage_target`); pickles small.

    For a local (or shared-filesystem) store it is the version's temporary folder, and `stage` is
    `stage_parts` there. For a remote store it is the version's own (still manifest-less, so
    invisible) folder on the remote: each file is written to a local temporary file on the worker,
    hashed, uploaded under a name unique to this writer, and deleted locally.
    """

    directory: str  # the local temporary folder, or the version's folder on the remote filesystem
    kind: str
    remote: _Remote | None = field(default=None, repr=False)
    key: tuple[str, str, str] | None = None  # (remote) kind, name, version
    token: str = ""  # (remote) in every staged name: writers of the same version never share a file

    def stage(self, frame: pl.DataFrame, stem: str) -> list[Staged]:
        """`stage_parts(frame, ..., stem)` into this target; the files, in order, for `PartWriter.adopt_staged`."""
        if self.remote is None or self.key is None:
            return [Staged(p.name, rows) for p, rows in stage_parts(frame, Path(self.directory), stem, self.kind)]
        out = []
        with tempfile.TemporaryDirectory(prefix="datadiet-stage-") as tmp:
            for path, rows in stage_parts(frame, Path(tmp), stem, self.kind):
                name = f"{STAGE_PREFIX}-{self.token}{path.name[len(STAGE_PREFIX) :]}"
                digest, size = file_sha256(path), path.stat().st_size
                self.remote.upload(path, (*self.key, name))
                path.unlink()  # one local file at a time, whatever the frame's size
                out.append(Staged(name, rows, digest, size))
        return out


class PartWriter:
    """Writes the files of a version being built, inside its temporary folder.

    On a remote store, parts staged by workers (`stage_target`) stay on the remote: adopting one
    records its final name, hash and size, and `Store.commit` renames it there before the manifest.
    """

    def __init__(
        self,
        directory: Path,
        kind: str,
        *,
        remote: _Remote | None = None,
        key: tuple[str, str, str] | None = None,
        marker: Path | None = None,
    ) -> None:
        self.dir = directory
        self.kind = kind
        self.rows = 0
        self._parts = 0
        self._remote = remote
        self._key = key
        self._marker = marker  # `.uploads/` marker: made before a worker writes to the remote
        self._token = uuid.uuid4().hex[:8]
        self._staging = False  # whether workers may have written to the remote
        self.remote_parts: dict[str, Staged] = {}  # final name -> the staged remote file it is renamed from
        self.remote_dropped: list[str] = []  # staged remote files adopted as nothing (empty frames)

    def stage_target(self) -> StageTarget:
        """Where cluster workers stage parts: every worker can reach it, wherever the store lives."""
        if self._remote is None or self._key is None:
            return StageTarget(str(self.dir), self.kind)
        self._staging = True
        if self._marker is not None:
            # Before any worker uploads: if this process dies, this machine's `gc` knows the debris is its own.
            self._marker.parent.mkdir(parents=True, exist_ok=True)
            self._marker.touch()
        return StageTarget(self._remote.path(*self._key), self.kind, self._remote, self._key, self._token)

    def adopt_staged(self, staged: Staged) -> None:
        """Take a file a worker staged through `stage_target()` as the next part (see `adopt`)."""
        if staged.sha256 is None:
            self.adopt(self.dir / staged.name, staged.rows)
            return
        name = self._next_part(staged.rows)
        if name is None:
            self.remote_dropped.append(staged.name)
        else:
            self.remote_parts[name] = staged

    def _next_part(self, rows: int) -> str | None:
        """The name of the next part, counted in; None for an empty file after the first part.

        Such a file is dropped, as `write` drops empty frames: one rule for local and remote parts.
        """
        if rows == 0 and self._parts > 0:
            return None
        name = PART_PATTERN.format(self._parts)
        self._parts += 1
        self.rows += rows
        return name

    def scan(self) -> pl.LazyFrame:
        """The parts written so far, in order: local files, and parts staged on a remote store read there.

        For checks over the written rows (e.g. unique ids) that must not assume the parts are local;
        on a remote store only the selected columns are fetched.
        """
        frames = [(p.name, pl.scan_parquet(p)) for p in self.dir.glob("part-*.parquet")]
        if self.remote_parts and self._remote is not None and self._key is not None:
            import pyarrow.dataset as pads

            for rel, staged in self.remote_parts.items():
                path = self._remote.path(*self._key, staged.name)
                data = pads.dataset(path, format="parquet", filesystem=self._remote.fs)
                frames.append((rel, pl.scan_pyarrow_dataset(data)))
        if not frames:
            raise DatadietError("internal error: no parts were written; nothing was published")
        return pl.concat([f for _, f in sorted(frames, key=lambda rf: rf[0])])

    def _discard_remote(self) -> None:
        """Delete the files this writer's workers staged on the remote (best effort; `gc` gets the rest)."""
        if self._remote is None or self._key is None or not self._staging:
            return
        with contextlib.suppress(DatadietError, OSError):
            mine = f"{STAGE_PREFIX}-{self._token}-"
            for rel in self._remote.files(*self._key):
                if rel.startswith(mine):
                    self._remote.delete((*self._key, rel), folder=False)

    def write(self, frame: pl.DataFrame) -> None:
        """Append rows as one or more Parquet parts (datasets are conformed to the declared schema)."""
        if frame.height == 0 and self._parts > 0:
            return
        for path, rows in stage_parts(frame, self.dir, f"{STAGE_PREFIX}-{self._parts:05d}", self.kind):
            self.adopt(path, rows)

    def adopt(self, path: Path, rows: int) -> None:
        """Take a file from `stage_parts` (written here or by a worker into `self.dir`) as the next part.

        An empty file after the first part is dropped, as `write` drops empty frames.
        """
        name = self._next_part(rows)
        if name is None:
            path.unlink()
        else:
            os.replace(path, self.dir / name)

    def write_file(self, name: str, data: bytes) -> None:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def finish_empty(self, template: pl.DataFrame | None = None) -> None:
        """Make sure a dataset has at least one (possibly empty) part, so its schema is known."""
        if self.kind == "datasets" and self._parts == 0:
            frame = (
                template
                if template is not None
                else pl.DataFrame({"id": [], "text": []}, schema={"id": pl.String, "text": pl.String})
            )
            self.write(frame.clear())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _disk_error(
    exc: OSError, root: Path, where: str | None = None, fix: str = "pass --store to a writable folder"
) -> DatadietError:
    where = where or f"store {root}"
    if exc.errno == errno.ENOSPC:
        return DatadietError(
            f"no space left on the device of {where}; free some space and rerun (nothing was published)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DatadietError(f"cannot write to {where}: {exc.strerror}; {fix}")
    return DatadietError(f"cannot write to {where}: {exc}; nothing was published")


def _cache_root(uri: str, cache: str | Path | None) -> Path:
    """The local cache of a remote store: CACHE itself, else a folder per URI under $DATADIET_CACHE."""
    if cache is not None:
        return Path(cache).expanduser().absolute()
    base = os.environ.get(CACHE_ENV)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        base = str(Path(xdg) / "datadiet")
    # A folder per store, so two stores never share cached manifests or locks.
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:VERSION_LEN]
    return Path(base).expanduser().absolute() / digest


def _manifest_bytes(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


class _Remote:
    """The published versions of a store on a pyarrow filesystem; every failure becomes one line."""

    def __init__(self, fs: pyarrow.fs.FileSystem, base: str, uri: str) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        # Options in the query (gs://b/p?retry_limit_seconds=30) configure the client, not the place.
        self.uri = uri.partition("?")[0].rstrip("/")
        self.atomic_put = fs.type_name in _ATOMIC_PUT

    @classmethod
    def open(cls, root: str, filesystem: pyarrow.fs.FileSystem | None) -> _Remote:
        import pyarrow as pa
        import pyarrow.fs as pafs

        if filesystem is not None:
            scheme = filesystem.type_name.rpartition(":")[2]  # "py::name" for filesystems written in Python
            return cls(filesystem, root, f"{scheme}://{root.lstrip('/')}")
        try:
            fs, base = pafs.FileSystem.from_uri(root)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise UsageError(
                f"cannot open store {root}: {_first_line(exc)}; check the URI "
                "(s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, hdfs://HOST/PATH, file:///ABS/PATH) and your credentials"
            ) from exc
        return cls(fs, base, root)

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def url(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    @contextlib.contextmanager
    def errors(self, action: str, *parts: str, missing_ok: bool = True) -> Iterator[None]:
        import pyarrow as pa

        try:
            yield
        except FileNotFoundError:
            if missing_ok:
                raise  # the caller decides what a missing object means (usually: removed by a concurrent gc)
            raise DatadietError(
                f"cannot {action} {self.url(*parts)}: the folder is gone; check the store URI"
            ) from None
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the cache's disk, not the store
                raise DatadietError(
                    f"no space left on the device to {action} {self.url(*parts)}; free some space "
                    f"(or point ${CACHE_ENV} at a larger disk) and rerun"
                ) from exc
            raise DatadietError(
                f"cannot {action} {self.url(*parts)}: {_first_line(exc)}; check the store URI, credentials and network"
            ) from exc

    def info(self, *parts: str) -> Any:
        with self.errors("read", *parts):
            return self.fs.get_file_info(self.path(*parts))

    def infos(self, paths: Sequence[Sequence[str]]) -> list[Any]:
        if not paths:
            return []
        with self.errors("read", *paths[0][:-1]):
            return list(self.fs.get_file_info([self.path(*p) for p in paths]))

    def _listing(self, parts: Sequence[str], recursive: bool) -> list[tuple[str, Any]]:
        import pyarrow.fs as pafs

        top = self.path(*parts)
        with self.errors("list", *parts):
            found = self.fs.get_file_info(pafs.FileSelector(top, recursive=recursive, allow_not_found=True))
        prefix = top.rstrip("/") + "/"
        return [(i.path[len(prefix) :] if i.path.startswith(prefix) else i.base_name, i) for i in found]

    def subdirs(self, *parts: str) -> list[str]:
        """Names of the folders directly inside PARTS (none when it does not exist)."""
        import pyarrow.fs as pafs

        return sorted(rel for rel, i in self._listing(parts, False) if i.type == pafs.FileType.Directory)

    def files(self, *parts: str) -> dict[str, Any]:
        """Every file under PARTS (recursively) by its path relative to PARTS, with its FileInfo."""
        import pyarrow.fs as pafs

        return {rel: i for rel, i in self._listing(parts, True) if i.type == pafs.FileType.File}

    def read_bytes(self, *parts: str) -> bytes:
        with self.errors("read", *parts), self.fs.open_input_stream(self.path(*parts)) as f:
            data: bytes = f.read()
        return data

    def sha256(self, *parts: str) -> str:
        h = hashlib.sha256()
        with self.errors("read", *parts), self.fs.open_input_stream(self.path(*parts)) as f:
            while block := f.read(_CHUNK):
                h.update(block)
        return h.hexdigest()

    def parquet_rows(self, *parts: str) -> int:
        import pyarrow.parquet as pq

        with self.errors("read", *parts), self.fs.open_input_file(self.path(*parts)) as f:
            rows: int = pq.ParquetFile(f).metadata.num_rows
        return rows

    def download(self, parts: Sequence[str], dest: Path, digest: str) -> None:
        """Copy a remote file to DEST through a temporary name, refusing content whose sha256 is not DIGEST."""
        tmp = dest.parent / f"{FETCH_PREFIX}{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        h = hashlib.sha256()
        try:
            with (
                self.errors("download", *parts),
                self.fs.open_input_stream(self.path(*parts)) as fin,
                open(tmp, "wb") as fout,
            ):
                while block := fin.read(_CHUNK):
                    h.update(block)
                    fout.write(block)
                fout.flush()
                # Cached files are trusted without rehashing, so they must survive a crash whole.
                os.fsync(fout.fileno())
            if h.hexdigest() != digest:
                raise DatadietError(
                    f"{self.url(*parts)} differs from its manifest (sha256 mismatch), so it was not used; "
                    f"run `curate verify {parts[1]}@{parts[2]}`"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def upload(self, src: Path, parts: Sequence[str]) -> None:
        dst = self.path(*parts)
        with self.errors("upload to", *parts, missing_ok=False):
            if not self.atomic_put:
                self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            with open(src, "rb") as fin, self.fs.open_output_stream(dst) as fout:
                while block := fin.read(_CHUNK):
                    fout.write(block)

    def rename(self, src: Sequence[str], dst: Sequence[str]) -> None:
        """Move a file within the store: a rename where the filesystem has one, a server-side copy on S3/GCS.

        Raises:
            FileNotFoundError: SRC is gone (the caller decides what that means).
        """
        import pyarrow as pa

        with self.errors("publish", *dst):
            try:
                self.fs.move(self.path(*src), self.path(*dst))
            except pa.ArrowNotImplementedError:  # e.g. Azure without a hierarchical namespace
                self.fs.copy_file(self.path(*src), self.path(*dst))
                self.fs.delete_file(self.path(*src))

    def put_atomic(self, data: bytes, parts: Sequence[str]) -> None:
        """Write one small object so that readers see all of it or nothing."""
        dst = self.path(*parts)
        with self.errors("publish", *parts, missing_ok=False):
            if self.atomic_put:
                with self.fs.open_output_stream(dst) as f:
                    f.write(data)
                return
            # Elsewhere (local, NFS, HDFS) a direct write can be read half-done: write aside, then move.
            self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            tmp = f"{dst}.{uuid.uuid4().hex[:8]}.part"
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, dst)

    def delete(self, parts: Sequence[str], folder: bool) -> None:
        with self.errors("delete", *parts), contextlib.suppress(FileNotFoundError):
            if folder:
                self.fs.delete_dir(self.path(*parts))
            else:
                self.fs.delete_file(self.path(*parts))


def _is_file(info: Any) -> bool:
    import pyarrow.fs as pafs

    return bool(info.type == pafs.FileType.File)


def _transfer(jobs: Sequence[Callable[[], None]]) -> None:
    """Run transfers concurrently (they wait on the network, not the CPU); the first failure is raised."""
    if len(jobs) <= 1:
        for job in jobs:
            job()
        return
    pool = ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(jobs)))
    try:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure, queued transfers are pointless


class Store:
    """A folder of immutable, content-addressed versions (see the module docstring).

    `Store(root)` opens a folder (a local or shared filesystem); a `root` string with a scheme
    (`s3://bucket/prefix`, `gs://...`, `hdfs://...`, `file:///abs/path`), or any `root` with a pyarrow
    `filesystem`, opens a remote store fronted by a local cache (`cache`, else `$DATADIET_CACHE/<hash>`,
    else `~/.cache/datadiet/<hash>`). `root` is always a local folder: the store, or the cache.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        filesystem: pyarrow.fs.FileSystem | None = None,
        cache: str | Path | None = None,
    ) -> None:
        if root is None:
            root = os.environ.get(STORE_ENV) or DEFAULT_STORE
        self.remote: _Remote | None = None
        if filesystem is not None or is_uri(root):
            self.remote = _Remote.open(str(root), filesystem)
            self.location = self.remote.uri
            self.root = _cache_root(self.remote.uri, cache)
            import pyarrow.fs as pafs

            if self.remote.info().type == pafs.FileType.File:
                raise DatadietError(f"store {self.location} is a file, not a folder; point --store at a folder")
            if self.root.exists() and not self.root.is_dir():
                raise DatadietError(
                    f"the cache {self.root} of store {self.location} is a file; set ${CACHE_ENV} to a folder"
                )
            return
        self.root = Path(root).expanduser().absolute()
        self.location = str(self.root)  # where the versions are, for messages: the folder or the URI
        if self.root.exists() and not self.root.is_dir():
            # Checked here so reading commands fail too, instead of listing an empty store.
            raise DatadietError(
                f"store {self.root} is a file, not a folder; point --store or $DATADIET_STORE at a folder"
            )

    def _disk_error(self, exc: OSError) -> DatadietError:
        if self.remote is None:
            return _disk_error(exc, self.root)
        where = f"the cache {self.root} of store {self.location}"
        return _disk_error(exc, self.root, where, f"set ${CACHE_ENV} to a writable folder")

    # -- reading ---------------------------------------------------------------------------------

    def _kind_dir(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown artefact kind {kind!r}")
        return self.root / kind

    def _load(self, kind: str, name: str, version: str, info: Any = None) -> Dataset | None:
        path = self._kind_dir(kind) / name / version
        if self.remote is not None:
            return self._load_remote(kind, name, version, path, info)
        mpath = path / MANIFEST_FILE
        if not mpath.is_file():
            return None
        try:
            manifest = Manifest.load(mpath)
        except FileNotFoundError:
            return None  # removed by a concurrent `curate gc` between the check and the read
        except (ValueError, TypeError, OSError) as exc:
            raise DatadietError(f"manifest {mpath} is unreadable ({exc}); run `curate verify`") from exc
        return Dataset(name=name, version=version, kind=kind, folder=path, manifest=manifest, store=self)

    def _load_remote(self, kind: str, name: str, version: str, folder: Path, info: Any) -> Dataset | None:
        """A remote version from its manifest, read from the cache when the cached copy is current."""
        assert self.remote is not None
        parts = (kind, name, version, MANIFEST_FILE)
        if info is None:
            info = self.remote.info(*parts)
        if not _is_file(info):
            return None
        cached = folder / MANIFEST_FILE
        manifest: Manifest | None = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            st = cached.stat()
            # Manifests never change once published, but gc may delete a version and a writer
            # publish it again; size and modification time tell the two apart without a download.
            if info.mtime_ns is not None and (st.st_mtime_ns, st.st_size) == (info.mtime_ns, info.size):
                manifest = Manifest.load(cached)
        if manifest is None:
            try:
                data = self.remote.read_bytes(*parts)
            except FileNotFoundError:
                return None  # removed by a concurrent `curate gc` between the listing and the read
            try:
                manifest = Manifest.from_dict(json.loads(data))
            except (ValueError, TypeError) as exc:
                raise DatadietError(
                    f"manifest {self.remote.url(*parts)} is unreadable ({exc}); run `curate verify`"
                ) from exc
            self._cache_manifest(folder, data, manifest, info.mtime_ns)
        return Dataset(name=name, version=version, kind=kind, folder=folder, manifest=manifest, store=self)

    def _cache_manifest(self, folder: Path, data: bytes, manifest: Manifest, mtime_ns: int | None) -> None:
        try:
            cached = folder / MANIFEST_FILE
            with contextlib.suppress(OSError, ValueError, TypeError):
                if Manifest.load(cached).files != manifest.files:
                    # A different publication of this version: its cached files may not match.
                    shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{FETCH_PREFIX}{MANIFEST_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            tmp.write_bytes(data)
            if mtime_ns is not None:
                os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, cached)
        except OSError as exc:
            raise self._disk_error(exc) from exc

    def _fetch(self, ds: Dataset, rels: Sequence[str]) -> None:
        """Make sure files RELS of remote version DS are in the cache, each checked against the manifest."""
        remote = self.remote
        assert remote is not None
        missing = [r for r in rels if not (ds.folder / r).is_file()]
        if not missing:
            return
        try:
            for rel in missing:
                (ds.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._disk_error(exc) from exc

        def fetch(rel: str) -> None:
            parts = (ds.kind, ds.name, ds.version, *rel.split("/"))
            try:
                remote.download(parts, ds.folder / rel, ds.manifest.files[rel])
            except FileNotFoundError as exc:
                raise DatadietError(
                    f"{remote.url(*parts)} is missing although the manifest lists it; run `curate verify {ds.ref}`"
                ) from exc

        _transfer([functools.partial(fetch, rel) for rel in missing])

    def published(self, kind: str, name: str, version: str) -> bool:
        """Whether version NAME@VERSION of KIND is published (its manifest exists), without reading it."""
        if self.remote is not None:
            self._kind_dir(kind)
            return _is_file(self.remote.info(kind, name, version, MANIFEST_FILE))
        return (self._kind_dir(kind) / name / version / MANIFEST_FILE).is_file()

    def versions(self, name: str, kind: str = "datasets") -> list[Dataset]:
        """All published versions of NAME, oldest first."""
        base = self._kind_dir(kind) / name
        if self.remote is not None:
            dirs = self.remote.subdirs(kind, name)
            infos = self.remote.infos([(kind, name, v, MANIFEST_FILE) for v in dirs])
            found = [d for v, i in zip(dirs, infos, strict=True) if (d := self._load(kind, name, v, i)) is not None]
            return sorted(found, key=lambda d: (d.manifest.created, d.version))
        if not base.is_dir():
            return []
        found = [d for v in base.iterdir() if v.is_dir() and (d := self._load(kind, name, v.name)) is not None]
        return sorted(found, key=lambda d: (d.manifest.created, d.version))

    def names(self, kind: str = "datasets") -> list[str]:
        base = self._kind_dir(kind)
        if self.remote is not None:
            return [n for n in self.remote.subdirs(kind) if self.versions(n, kind)]
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and self.versions(p.name, kind))

    def all(self, kind: str = "datasets") -> list[Dataset]:
        return [d for n in self.names(kind) for d in self.versions(n, kind)]

    def resolve(self, ref: str, kind: str = "datasets") -> Dataset:
        """Resolve `NAME` (newest version) or `NAME@PREFIX` (any unique version prefix)."""
        name, _, prefix = ref.partition("@")
        if not name:
            raise RefError(f"invalid ref {ref!r}: expected NAME or NAME@VERSION")
        label = kind[:-1]
        versions = self.versions(name, kind)
        if not versions:
            known = ", ".join(self.names(kind)) or "none"
            raise RefError(f"no {label} named {name!r} in store {self.location} (known: {known}); see `curate ls`")
        if not prefix:
            return versions[-1]
        matches = [d for d in versions if d.version.startswith(prefix)]
        if not matches:
            raise RefError(f"{label} {name!r} has no version starting with {prefix!r}; see `curate ls`")
        if len(matches) > 1:
            cands = ", ".join(d.ref for d in matches)
            raise RefError(f"ref {ref!r} is ambiguous: it matches {cands}; give more characters of the version")
        return matches[0]

    def find(self, ref: str) -> Dataset:
        """Resolve a ref in any kind, datasets first (for `show` and `lineage`)."""
        errors: list[RefError] = []
        for kind in KINDS:
            try:
                return self.resolve(ref, kind)
            except RefError as exc:
                errors.append(exc)
        # The most specific complaint wins: an ambiguous prefix, then a known name with no such version.
        for marker in ("ambiguous", "no version starting", "invalid ref"):
            found = [e for e in errors if marker in str(e)]
            if found:
                raise found[0]
        raise RefError(f"nothing named {ref.partition('@')[0]!r} in store {self.location}; see `curate ls`")

    # -- writing ---------------------------------------------------------------------------------

    def version_id(
        self, *, operation: str, params: Mapping[str, Any], parents: Sequence[str], kind: str = "datasets"
    ) -> str:
        payload = canonical_json(
            {
                "format": FORMAT_VERSION,
                "kind": kind,
                "operation": operation,
                "params": dict(params),
                "parents": list(parents),
            }
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:VERSION_LEN]

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive advisory lock shared by every process using this store."""
        lock_dir = self.root / LOCK_DIR
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._disk_error(exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def commit(
        self,
        name: str,
        *,
        operation: str,
        params: Mapping[str, Any],
        parents: Sequence[str],
        build: Callable[[PartWriter], Mapping[str, Any] | None],
        kind: str = "datasets",
    ) -> Commit:
        """Publish a new version built by `build`, or return the existing one with the same id."""
        check_name(name)
        canon: dict[str, Any] = json.loads(canonical_json(dict(params)))
        version = self.version_id(operation=operation, params=canon, parents=parents, kind=kind)
        existing = self._load(kind, name, version)
        if existing is not None:
            return Commit(existing, up_to_date=True)
        with self.lock(f"{kind}-{name}-{version}"):
            # Another process may have published it while we waited for the lock.
            existing = self._load(kind, name, version)
            if existing is not None:
                return Commit(existing, up_to_date=True)
            tmp = self._make_tmp(f"{kind}-{name}-{version}")
            key = (kind, name, version)
            marker = self.root / UPLOAD_DIR / "-".join(key)
            writer = PartWriter(tmp, kind, remote=self.remote, key=key, marker=marker)
            try:
                stats = dict(build(writer) or {})
                writer.finish_empty()
                manifest = self._manifest(tmp, name, version, kind, operation, canon, parents, writer, stats)
                self._publish(tmp, manifest, writer)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                writer._discard_remote()
                raise self._disk_error(exc) from exc
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                writer._discard_remote()
                raise
        published = self._load(kind, name, version)
        assert published is not None
        return Commit(published, up_to_date=False)

    def _make_tmp(self, label: str) -> Path:
        try:
            base = self.root / TMP_DIR
            base.mkdir(parents=True, exist_ok=True)
            tmp = base / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
        except OSError as exc:
            raise self._disk_error(exc) from exc
        return tmp

    def _manifest(
        self,
        tmp: Path,
        name: str,
        version: str,
        kind: str,
        operation: str,
        params: dict[str, Any],
        parents: Sequence[str],
        writer: PartWriter,
        stats: dict[str, Any],
    ) -> Manifest:
        files: dict[str, str] = {}
        total = 0
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            if path.name.startswith(STAGE_PREFIX):
                raise DatadietError(f"internal error: staged part {rel} was never adopted; nothing was published")
            files[rel] = file_sha256(path)
            total += path.stat().st_size
        for rel, staged in writer.remote_parts.items():  # hashed by the workers that wrote them
            assert staged.sha256 is not None and staged.size is not None
            files[rel] = staged.sha256
            total += staged.size
        files = dict(sorted(files.items()))
        seed = params.get("seed")
        return Manifest(
            name=name,
            version=version,
            kind=kind,
            parents=list(parents),
            operation=operation,
            params=params,
            seed=seed if isinstance(seed, int) else None,
            created=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            package_version=__version__,
            rows=writer.rows,
            bytes=total,
            files=files,
            stats=json.loads(canonical_json(stats)),
        )

    def _publish(self, tmp: Path, manifest: Manifest, writer: PartWriter) -> None:
        if self.remote is not None:
            self._publish_remote(tmp, manifest, writer)
            return
        # Data files are made durable before the manifest exists, and the manifest before the
        # rename, so a crash at any point leaves either nothing or a complete version.
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())
        mtmp = tmp / (MANIFEST_FILE + ".part")
        with open(mtmp, "w", encoding="utf-8") as f:
            json.dump(manifest.to_dict(), f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(mtmp, tmp / MANIFEST_FILE)
        final = self._kind_dir(manifest.kind) / manifest.name / manifest.version
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            # A manifest-less leftover from a writer killed mid-rename on a filesystem without an
            # atomic rename; it was never a version, so it is safe to replace.
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(final.parent)

    def _publish_remote(self, tmp: Path, manifest: Manifest, writer: PartWriter) -> None:
        """Upload the data files, then the manifest, last; then keep the files as this machine's cached copy.

        Parts that cluster workers staged on the remote (`PartWriter.stage_target`) are renamed
        there to their final names instead of uploaded. Until the manifest lands the version does
        not exist for any reader, so an upload that fails or is killed leaves only manifest-less
        debris, which `curate gc` removes (the marker in `.uploads/` tells it the debris is this
        machine's and its writer is gone).
        """
        remote = self.remote
        assert remote is not None
        key = (manifest.kind, manifest.name, manifest.version)
        marker = self.root / UPLOAD_DIR / "-".join(key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        there = remote.files(*key)
        if MANIFEST_FILE in there:
            self._published_elsewhere(tmp, marker, writer)
            return
        moves = writer.remote_parts
        try:
            _transfer(
                [
                    functools.partial(remote.rename, (*key, staged.name), (*key, rel))
                    for rel, staged in sorted(moves.items())
                ]
            )
        except FileNotFoundError:
            if _is_file(remote.info(*key, MANIFEST_FILE)):
                self._published_elsewhere(tmp, marker, writer)
                return
            raise DatadietError(
                f"a staged part of {remote.url(*key)} vanished before it was published (another machine writing "
                "the same version?); rerun the command"
            ) from None
        renamed = {staged.name for staged in moves.values()}
        for rel in sorted(set(there) - set(manifest.files) - renamed):
            # Debris of an earlier interrupted upload, and staged files adopted as nothing.
            remote.delete((*key, *rel.split("/")), folder=False)
        local = sorted((r for r in manifest.files if r not in moves), key=lambda r: -(tmp / r).stat().st_size)
        # Largest first: the longest transfers start before the short ones.
        _transfer([functools.partial(remote.upload, tmp / rel, (*key, *rel.split("/"))) for rel in local])
        data = _manifest_bytes(manifest)
        remote.put_atomic(data, (*key, MANIFEST_FILE))
        marker.unlink(missing_ok=True)
        self._keep_in_cache(tmp, manifest, data, local)
        shutil.rmtree(tmp, ignore_errors=True)

    def _published_elsewhere(self, tmp: Path, marker: Path, writer: PartWriter) -> None:
        """Another machine published this version while we built it (same id, so the same content): theirs stands."""
        writer._discard_remote()
        marker.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)

    def _keep_in_cache(self, tmp: Path, manifest: Manifest, data: bytes, rels: Sequence[str]) -> None:
        """Move a just-published version's files RELS (those built here) into the cache: never downloaded here."""
        assert self.remote is not None
        folder = self._kind_dir(manifest.kind) / manifest.name / manifest.version
        with contextlib.suppress(OSError, DatadietError):  # the version is published; caching is optional
            info = self.remote.info(manifest.kind, manifest.name, manifest.version, MANIFEST_FILE)
            self._cache_manifest(folder, data, manifest, info.mtime_ns)
            for rel in rels:
                src, dest = tmp / rel, folder / rel
                with open(src, "rb+") as f:
                    os.fsync(f.fileno())  # cached files are trusted without rehashing
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)

    # -- maintenance -----------------------------------------------------------------------------

    def abandoned_tmp(self, older_than_s: float = 0.0) -> list[Path]:
        """Temporary folders left by writers that died (none of them is a version)."""
        base = self.root / TMP_DIR
        if not base.is_dir():
            return []
        now = time.time()
        found = []
        for p in base.iterdir():
            try:
                age = now - p.stat().st_mtime
            except FileNotFoundError:
                continue  # published (renamed away) or removed since the listing
            if age >= older_than_s:
                found.append(p)
        return sorted(found)

    def children(self, ref: str) -> list[Dataset]:
        """Every artefact that names REF as a parent."""
        return [d for kind in KINDS for d in self.all(kind) if ref in d.manifest.parents]


def lineage(store: Store, ref: str) -> list[dict[str, Any]]:
    """The chain of artefacts from REF back to its source files, REF first (breadth-first, no repeats).

    Each entry has `ref`, `kind`, `operation`, `params` and `parents`; source files appear as
    entries of kind `file` with their path and sha256 taken from the ingest parameters.
    """
    start = store.find(ref)
    out: list[dict[str, Any]] = []
    queue: list[Dataset] = [start]
    seen: set[str] = set()
    while queue:
        ds = queue.pop(0)
        if ds.ref in seen:
            continue
        seen.add(ds.ref)
        m = ds.manifest
        out.append(
            {
                "ref": ds.ref,
                "kind": ds.kind,
                "operation": m.operation,
                "params": m.params,
                "parents": m.parents,
                "rows": m.rows,
            }
        )
        sources = {s.get("sha256"): s.get("path") for s in m.params.get("sources", []) if isinstance(s, dict)}
        for parent in m.parents:
            if parent.startswith("file:sha256:"):
                digest = parent.removeprefix("file:sha256:")
                if parent not in seen:
                    seen.add(parent)
                    out.append(
                        {
                            "ref": parent,
                            "kind": "file",
                            "operation": "source",
                            "params": {"path": sources.get(digest)},
                            "parents": [],
                            "rows": None,
                        }
                    )
            elif "@" in parent:
                try:
                    queue.append(store.find(parent))
                except RefError:
                    out.append(
                        {"ref": parent, "kind": "missing", "operation": "?", "params": {}, "parents": [], "rows": None}
                    )
    return out


def verify(store: Store, ref: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Recompute every file hash and dataset row count against the manifests.

    Returns one entry per checked version: `ref`, `kind`, `ok` and a list of `problems` (missing
    file, hash mismatch, unexpected file, row count differing from the manifest, unreadable part).
    On a remote store the published files are read where they are; a cached copy that differs
    from its manifest is a problem too, and is deleted so the next use fetches it again.
    """
    import pyarrow.parquet as pq

    if ref is not None:
        targets = [store.find(ref)]
    else:
        targets = [d for k in ([kind] if kind else list(KINDS)) for d in store.all(k)]
    results = []
    for ds in targets:
        if store.remote is not None:
            results.append({"ref": ds.ref, "kind": ds.kind, **_verify_remote(store.remote, ds)})
            continue
        problems: list[str] = []
        expected = ds.manifest.files
        present = {p.relative_to(ds.folder).as_posix() for p in ds.folder.rglob("*") if p.is_file()} - {MANIFEST_FILE}
        for rel in sorted(present - set(expected)):
            problems.append(f"unexpected file {rel}")
        for rel, digest in sorted(expected.items()):
            path = ds.folder / rel
            if not path.is_file():
                problems.append(f"missing file {rel}")
            elif file_sha256(path) != digest:
                problems.append(f"hash mismatch in {rel}")
        if ds.kind == "datasets" and not any("part-" in p for p in problems):
            try:
                rows = sum(pq.ParquetFile(p).metadata.num_rows for p in ds.parts)
            except Exception as exc:  # a corrupt part can raise anything pyarrow knows of
                problems.append(f"unreadable part ({exc})")
            else:
                if rows != ds.manifest.rows:
                    problems.append(f"{rows} rows on disk, manifest says {ds.manifest.rows}")
        results.append({"ref": ds.ref, "kind": ds.kind, "ok": not problems, "problems": problems})
    return results


def _verify_remote(remote: _Remote, ds: Dataset) -> dict[str, Any]:
    key = (ds.kind, ds.name, ds.version)
    problems: list[str] = []
    expected = ds.manifest.files
    present = set(remote.files(*key)) - {MANIFEST_FILE}
    for rel in sorted(present - set(expected)):
        problems.append(f"unexpected file {rel}")
    for rel, digest in sorted(expected.items()):
        if rel not in present:
            problems.append(f"missing file {rel}")
            continue
        try:
            ok = remote.sha256(*key, *rel.split("/")) == digest
        except FileNotFoundError:
            problems.append(f"missing file {rel}")
            continue
        if not ok:
            problems.append(f"hash mismatch in {rel}")
        cached = ds.folder / rel
        if cached.is_file() and file_sha256(cached) != digest:
            cached.unlink(missing_ok=True)
            problems.append(f"cached copy of {rel} in {ds.folder} differed from the manifest (deleted from the cache)")
    if ds.kind == "datasets" and not any("part-" in p for p in problems):
        try:
            rows = sum(remote.parquet_rows(*key, rel) for rel in ds._part_names())
        except Exception as exc:  # a corrupt part can raise anything pyarrow knows of
            problems.append(f"unreadable part ({_first_line(exc)})")
        else:
            if rows != ds.manifest.rows:
                problems.append(f"{rows} rows in the store, manifest says {ds.manifest.rows}")
    return {"ok": not problems, "problems": problems}


def _lock_is_free(store: Store, key: str) -> bool:
    """Whether no process holds the version lock KEY right now (a writer holds it while it works)."""
    lock = store.root / LOCK_DIR / f"{key}.lock"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def abandoned(store: Store) -> list[Path]:
    """Temporary folders whose writer is gone: their version lock can be taken without waiting."""
    # Names are `<kind>-<name>-<version>-<pid>-<rand>`; the lock key is everything before the pid.
    return [tmp for tmp in store.abandoned_tmp() if _lock_is_free(store, tmp.name.rsplit("-", 2)[0])]


def work_folders(store: Store) -> tuple[list[Path], list[Path]]:
    """Idle work folders of runs (`work/runs/<name>-<version>`): (already published, interrupted).

    A published run's folder is a leftover and safe to delete; an interrupted one holds the
    checkpoint `--resume` continues from, so it is only deleted when asked. Folders of runs
    training right now (their lock is held) are in neither list.
    """
    base = store.root / "work" / "runs"
    if not base.is_dir():
        return [], []
    published: list[Path] = []
    interrupted: list[Path] = []
    for folder in sorted(base.iterdir()):
        name, _, version = folder.name.rpartition("-")
        if not folder.is_dir() or not name or not _lock_is_free(store, f"runs-{name}-{version}"):
            continue
        done = store.published("runs", name, version)
        (published if done else interrupted).append(folder)
    return published, interrupted


def unreferenced(store: Store) -> list[Dataset]:
    """Versions that no other artefact names as a parent and that are not the newest of their name."""
    everything = [d for k in KINDS for d in store.all(k)]
    referenced = {p for d in everything for p in d.manifest.parents}
    newest = {(d.kind, d.name): d.ref for d in everything}  # list() is oldest first, so the last wins
    return [d for d in everything if d.ref not in referenced and newest[(d.kind, d.name)] != d.ref]


def remote_debris(store: Store, older_than_s: float = REMOTE_DEBRIS_GRACE_S) -> tuple[list[str], list[str]]:
    """Manifest-less version folders on a remote store: (safe to delete, kept for now), as URIs.

    Safe: left by an upload this machine began and whose writer is gone (its `.uploads/` marker
    remains and its lock is free), or untouched for OLDER_THAN_S seconds. Kept: the others, which
    may be an upload running on another machine (locks do not reach across machines).
    Empty for a local store, where such debris can only be in `.tmp/`.
    """
    remote = store.remote
    if remote is None:
        return [], []
    now = time.time()
    stale: list[str] = []
    recent: list[str] = []
    for kind in KINDS:
        for name in remote.subdirs(kind):
            versions = remote.subdirs(kind, name)
            infos = remote.infos([(kind, name, v, MANIFEST_FILE) for v in versions])
            for version, info in zip(versions, infos, strict=True):
                if _is_file(info):  # a manifest: a published version
                    continue
                key = f"{kind}-{name}-{version}"
                if not _lock_is_free(store, key):
                    continue  # being written on this machine right now
                mine = (store.root / UPLOAD_DIR / key).exists()
                times = [i.mtime_ns for i in remote.files(kind, name, version).values() if i.mtime_ns is not None]
                age = now - max(times) / 1e9 if times else float("inf")
                (stale if mine or age >= older_than_s else recent).append(remote.url(kind, name, version))
    return stale, recent


def stale_cache(store: Store) -> list[Path]:
    """Cached copies no longer needed: versions gone from the remote store, and dead downloads.

    Empty for a local store (it has no cache).
    """
    if store.remote is None:
        return []
    found: list[Path] = []
    now = time.time()
    for kind in KINDS:
        base = store.root / kind
        if not base.is_dir():
            continue
        for folder in sorted(v for n in base.iterdir() if n.is_dir() for v in n.iterdir() if v.is_dir()):
            if not _lock_is_free(store, f"{kind}-{folder.parent.name}-{folder.name}"):
                continue  # being published from this machine: its files are moving in
            if not store.published(kind, folder.parent.name, folder.name):
                found.append(folder)
                continue
            for f in folder.rglob(f"{FETCH_PREFIX}*"):
                with contextlib.suppress(FileNotFoundError):
                    if now - f.stat().st_mtime >= FETCH_DEBRIS_GRACE_S:
                        found.append(f)
    markers = store.root / UPLOAD_DIR
    for m in sorted(markers.iterdir()) if markers.is_dir() else []:
        # A marker outlives its upload when the writer died before uploading anything or just after
        # publishing; one whose folder holds debris goes with that debris (see `remote_debris`).
        kind, _, rest = m.name.partition("-")
        name, _, version = rest.rpartition("-")
        if kind not in KINDS or not _lock_is_free(store, m.name):
            continue
        if store.published(kind, name, version) or not store.remote.files(kind, name, version):
            found.append(m)
    return found


def remove(store: Store, items: Sequence[Path | Dataset | str]) -> None:
    """Delete versions (`Dataset`), folders inside the store or its cache (`Path`) and remote debris (URI str).

    A version vanishes atomically: a local one is first renamed into .tmp, a remote one loses its
    manifest first (a folder without a manifest is never a version), then the rest is deleted.
    """
    for item in items:
        if isinstance(item, Dataset):
            if store.remote is not None:
                key = (item.kind, item.name, item.version)
                store.remote.delete((*key, MANIFEST_FILE), folder=False)
                store.remote.delete(key, folder=True)
                shutil.rmtree(item.folder, ignore_errors=True)
                continue
            item = item.folder
        if isinstance(item, str):
            remote = store.remote
            if remote is None or not item.startswith(remote.uri + "/"):
                raise DatadietError(f"refusing to delete {item}: it is outside the store {store.location}")
            parts = tuple(item[len(remote.uri) + 1 :].split("/"))
            if len(parts) != 3 or parts[0] not in KINDS or _is_file(remote.info(*parts, MANIFEST_FILE)):
                raise DatadietError(f"refusing to delete {item}: it is not a manifest-less version folder")
            remote.delete(parts, folder=True)
            (store.root / UPLOAD_DIR / "-".join(parts)).unlink(missing_ok=True)
            continue
        path = item
        if store.root.resolve() not in path.resolve().parents:
            raise DatadietError(f"refusing to delete {path}: it is outside the store {store.root}")
        if path.is_file():
            path.unlink(missing_ok=True)
            continue
        if (path / MANIFEST_FILE).exists():
            grave = store._make_tmp("gc")
            os.rename(path, grave / "v")
            path = grave
        shutil.rmtree(path, ignore_errors=True)
