"""The remote backend: a store (or an input) on any filesystem pyarrow knows (s3://, gs://, hdfs://, file:///).

`Remote` wraps a pyarrow filesystem with the few operations the store needs (atomic put, rename,
listing, chunked transfer); `is_uri` tells a URI from a path; `first_line` shortens a backend
error to the one line a user sees. Used by the store and by ingest's URI inputs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadiet.errors import DatadietError, UsageError

if TYPE_CHECKING:
    import pyarrow.fs
from datadiet.store.model import VERSION_LEN

CACHE_ENV = "DATADIET_CACHE"


UPLOAD_DIR = ".uploads"  # (remote stores) one marker per upload this machine began and has not finished


FETCH_PREFIX = ".fetch-"  # (remote stores) a download in progress inside the cache


# Object stores whose single PUT of a small object is atomic; elsewhere the manifest is written to a
# temporary name and moved into place (a rename on local filesystems and HDFS).
_ATOMIC_PUT = frozenset({"s3", "gcs", "abfs"})


_IO_THREADS = 8  # concurrent transfers: object stores are latency-bound, 8 keeps a 1 Gbit/s link busy


_CHUNK = 8 << 20  # 8 MiB per read/write: few calls per file, flat memory per transfer


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")  # 2+ letters, so a Windows drive "C://" stays a path


def is_uri(root: str | Path) -> bool:
    """Whether a `--store` value names a pyarrow filesystem URI (`s3://...`) rather than a folder."""
    return isinstance(root, str) and _URI.match(root) is not None


def first_line(exc: BaseException, limit: int | None = None, *, lines: int = 1) -> str:
    """The first line (or LINES lines, joined) of an error's message, at most LIMIT characters, for a one-line error.

    pyarrow's messages can run to dozens of lines (every credential provider or libjvm path it
    tried), and a cloud client's first line to 1,000 characters of retry metadata; pydantic's say
    what is wrong only on their second and third lines.
    """
    text = str(exc).strip().splitlines()
    line = " ".join(text[:lines]) if text else type(exc).__name__
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def open_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem of URI and the path in it; pyarrow's own error if it cannot (callers word it)."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path


# What a backend failure raises: failure(action, url, exc) -> the error (see `Remote`).
Failure = Callable[[str, str, BaseException], Exception]


def cache_root(uri: str, cache: str | Path | None) -> Path:
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


def _fetch_tmp(dest: Path) -> Path:
    """A temporary name beside DEST, unique to this process and call (gc knows the prefix)."""
    return dest.parent / f"{FETCH_PREFIX}{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class Remote:
    """The files below BASE on a pyarrow filesystem: a store's published versions, or ingest's inputs.

    Every failure becomes one line: by default the store's (`cannot read URL: WHY; check the store
    URI, ...`, a missing object left to the caller); with FAILURE, whatever it makes of every
    failure, a missing object included (ingest's: the input as the user gave it, exit 2).
    """

    def __init__(self, fs: pyarrow.fs.FileSystem, base: str, uri: str, failure: Failure | None = None) -> None:
        self.fs = fs
        self.base = base.rstrip("/") or base  # "/" (a filesystem's root) stays itself
        # Options in the query (gs://b/p?retry_limit_seconds=30) configure the client, not the place.
        self.uri = uri.partition("?")[0].rstrip("/")
        self.atomic_put = fs.type_name in _ATOMIC_PUT
        self.failure = failure

    @classmethod
    def open(cls, root: str, filesystem: pyarrow.fs.FileSystem | None) -> Remote:
        import pyarrow as pa

        if filesystem is not None:
            scheme = filesystem.type_name.rpartition(":")[2]  # "py::name" for filesystems written in Python
            return cls(filesystem, root, f"{scheme}://{root.lstrip('/')}")
        try:
            fs, base = open_filesystem(root)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise UsageError(
                f"cannot open store {root}: {first_line(exc)}; check the URI "
                "(s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, hdfs://HOST/PATH, file:///ABS/PATH) and your credentials"
            ) from exc
        return cls(fs, base, root)

    def path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts]) if parts else self.base

    def url(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    @contextlib.contextmanager
    def errors(self, action: str, *parts: str, missing_ok: bool = True) -> Iterator[None]:
        import pyarrow as pa

        try:
            yield
        except (OSError, pa.ArrowException) as exc:
            if self.failure is not None:
                raise self.failure(action, self.url(*parts), exc) from exc
            if isinstance(exc, FileNotFoundError):
                if missing_ok:
                    raise  # the caller decides what a missing object means (usually: removed by a concurrent gc)
                raise DatadietError(
                    f"cannot {action} {self.url(*parts)}: the folder is gone; check the store URI"
                ) from None
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # the cache's disk, not the store
                raise DatadietError(
                    f"no space left on the device to {action} {self.url(*parts)}; free some space "
                    f"(or point ${CACHE_ENV} at a larger disk) and rerun"
                ) from exc
            raise DatadietError(
                f"cannot {action} {self.url(*parts)}: {first_line(exc)}; check the store URI, credentials and network"
            ) from exc

    def info(self, *parts: str) -> Any:
        with self.errors("read", *parts):
            return self.fs.get_file_info(self.path(*parts))

    def infos(self, paths: Sequence[Sequence[str]]) -> list[Any]:
        if not paths:
            return []
        with self.errors("read", *paths[0][:-1]):
            return list(self.fs.get_file_info([self.path(*p) for p in paths]))

    def listing(self, parts: Sequence[str], recursive: bool) -> list[tuple[str, Any]]:
        """(path relative to PARTS, FileInfo) of everything below PARTS (none when it does not exist)."""
        import pyarrow.fs as pafs

        top = self.path(*parts)
        with self.errors("list", *parts):
            found = self.fs.get_file_info(pafs.FileSelector(top, recursive=recursive, allow_not_found=True))
        prefix = top.rstrip("/") + "/"
        return [(i.path[len(prefix) :] if i.path.startswith(prefix) else i.base_name, i) for i in found]

    def subdirs(self, *parts: str) -> list[str]:
        """Names of the folders directly inside PARTS (none when it does not exist)."""
        import pyarrow.fs as pafs

        return sorted(rel for rel, i in self.listing(parts, False) if i.type == pafs.FileType.Directory)

    def files(self, *parts: str) -> dict[str, Any]:
        """Every file under PARTS (recursively) by its path relative to PARTS, with its FileInfo."""
        import pyarrow.fs as pafs

        return {rel: i for rel, i in self.listing(parts, True) if i.type == pafs.FileType.File}

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
        tmp = _fetch_tmp(dest)
        h = hashlib.sha256()
        try:
            # Cached files are trusted without rehashing, so they must survive a crash whole.
            self._stream_to(parts, tmp, h, durable=True)
            if h.hexdigest() != digest:
                raise DatadietError(
                    f"{self.url(*parts)} differs from its manifest (sha256 mismatch), so it was not used; "
                    f"run `curate verify {parts[1]}@{parts[2]}`"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _stream_to(self, parts: Sequence[str], tmp: Path, h: Any = None, durable: bool = False) -> None:
        """Copy a remote file to the local file TMP block by block, feeding each block to H if given."""
        with (
            self.errors("download", *parts),
            self.fs.open_input_stream(self.path(*parts)) as fin,
            open(tmp, "wb") as fout,
        ):
            while block := fin.read(_CHUNK):
                if h is not None:
                    h.update(block)
                fout.write(block)
            if durable:
                fout.flush()
                os.fsync(fout.fileno())

    def upload(self, src: Path, parts: Sequence[str]) -> None:
        dst = self.path(*parts)
        with self.errors("upload to", *parts, missing_ok=False):
            if not self.atomic_put:
                self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            with open(src, "rb") as fin, self.fs.open_output_stream(dst) as fout:
                while block := fin.read(_CHUNK):
                    fout.write(block)

    def put(self, src: Path, parts: Sequence[str]) -> None:
        """Upload SRC over a file rewritten in place (a run's checkpoint): readers see the old or the new one.

        One PUT on object stores; elsewhere an upload to a temporary name, then a move over the old file.
        """
        if self.atomic_put:
            self.upload(src, parts)
            return
        tmp = (*parts[:-1], f"{parts[-1]}.{uuid.uuid4().hex[:8]}.part")
        try:
            self.upload(src, tmp)
            self.rename(tmp, parts)
        finally:
            self.delete(tmp, folder=False)

    def get(self, parts: Sequence[str], dest: Path) -> bool:
        """Copy a file that no manifest lists (a run's checkpoint) to DEST through a temporary name.

        Returns:
            False when there is no such file.
        """
        tmp = _fetch_tmp(dest)
        try:
            self._stream_to(parts, tmp)
            os.replace(tmp, dest)
            return True
        except FileNotFoundError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

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


def is_file(info: Any) -> bool:
    import pyarrow.fs as pafs

    return bool(info.type == pafs.FileType.File)


def transfer(jobs: Sequence[Callable[[], None]]) -> None:
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
