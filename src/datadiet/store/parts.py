"""Part I/O: how a version's rows become Parquet parts and how workers read and stage them.

`stage_parts` encodes and splits rows exactly as a version's parts are; `PartWriter` (the object
`Store.commit` hands to a build function) writes or adopts them in order; `PartSource` and
`StageTarget` are the picklable handles cluster workers read and stage through.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl

from datadiet.errors import DatadietError
from datadiet.schema import MAX_PART_BYTES, MAX_PART_ROWS, PART_PATTERN, conform

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs
    import pyarrow.parquet as pq
from datadiet.store.model import file_sha256
from datadiet.store.remote import Remote, transfer

STAGE_PREFIX = ".stage"  # staged, not yet adopted parts; a version is never published with one


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
    remote: Remote | None = field(default=None, repr=False)
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
                return pl.read_parquet(self.path, columns=cols, glob=False)
            lazy = pl.scan_parquet(self.path, glob=False)
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
        transfer([functools.partial(read, i) for i in range(len(sources))])
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
    remote: Remote | None = field(default=None, repr=False)
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
        remote: Remote | None = None,
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
        frames = [(p.name, pl.scan_parquet(p, glob=False)) for p in self.dir.glob("part-*.parquet")]
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
