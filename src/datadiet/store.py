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

Used by every operation::

    store = Store(root)
    commit = store.commit("ts", operation="subset", params={...}, parents=[ds.ref], build=fn)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from datadiet import __version__
from datadiet.errors import DatadietError, RefError, UsageError
from datadiet.schema import FORMAT_VERSION, MANIFEST_FILE, MAX_PART_BYTES, MAX_PART_ROWS, PART_PATTERN, conform

STORE_ENV = "DATADIET_STORE"
DEFAULT_STORE = "datadiet-store"
KINDS = ("datasets", "tokenizers", "tokens", "runs", "evals", "stats", "reports", "sweeps")
TMP_DIR = ".tmp"
LOCK_DIR = ".locks"
STAGE_PREFIX = ".stage"  # staged, not yet adopted parts; a version is never published with one
VERSION_LEN = 16  # 64 bits of sha256: collisions are negligible for any store a person will fill
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
    """A published version of any kind of artefact (a dataset, a tokenizer, a run, ...)."""

    name: str
    version: str
    kind: str
    path: Path
    manifest: Manifest

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

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


class PartWriter:
    """Writes the files of a version being built, inside its temporary folder."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.dir = directory
        self.kind = kind
        self.rows = 0
        self._parts = 0

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
        if rows == 0 and self._parts > 0:
            path.unlink()
            return
        os.replace(path, self.dir / PART_PATTERN.format(self._parts))
        self._parts += 1
        self.rows += rows

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


def _disk_error(exc: OSError, root: Path) -> DatadietError:
    if exc.errno == errno.ENOSPC:
        return DatadietError(
            f"no space left on the device of store {root}; free some space and rerun (nothing was published)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DatadietError(f"cannot write to store {root}: {exc.strerror}; pass --store to a writable folder")
    return DatadietError(f"cannot write to store {root}: {exc}; nothing was published")


class Store:
    """A folder of immutable, content-addressed versions (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            root = os.environ.get(STORE_ENV) or DEFAULT_STORE
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            # Checked here so reading commands fail too, instead of listing an empty store.
            raise DatadietError(
                f"store {self.root} is a file, not a folder; point --store or $DATADIET_STORE at a folder"
            )

    # -- reading ---------------------------------------------------------------------------------

    def _kind_dir(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown artefact kind {kind!r}")
        return self.root / kind

    def _load(self, kind: str, name: str, version: str) -> Dataset | None:
        path = self._kind_dir(kind) / name / version
        mpath = path / MANIFEST_FILE
        if not mpath.is_file():
            return None
        try:
            manifest = Manifest.load(mpath)
        except FileNotFoundError:
            return None  # removed by a concurrent `curate gc` between the check and the read
        except (ValueError, TypeError, OSError) as exc:
            raise DatadietError(f"manifest {mpath} is unreadable ({exc}); run `curate verify`") from exc
        return Dataset(name=name, version=version, kind=kind, path=path, manifest=manifest)

    def versions(self, name: str, kind: str = "datasets") -> list[Dataset]:
        """All published versions of NAME, oldest first."""
        base = self._kind_dir(kind) / name
        if not base.is_dir():
            return []
        found = [d for v in base.iterdir() if v.is_dir() and (d := self._load(kind, name, v.name)) is not None]
        return sorted(found, key=lambda d: (d.manifest.created, d.version))

    def names(self, kind: str = "datasets") -> list[str]:
        base = self._kind_dir(kind)
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
            raise RefError(f"no {label} named {name!r} in store {self.root} (known: {known}); see `curate ls`")
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
        raise RefError(f"nothing named {ref.partition('@')[0]!r} in store {self.root}; see `curate ls`")

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
            raise _disk_error(exc, self.root) from exc
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
            try:
                writer = PartWriter(tmp, kind)
                stats = dict(build(writer) or {})
                writer.finish_empty()
                manifest = self._manifest(tmp, name, version, kind, operation, canon, parents, writer, stats)
                self._publish(tmp, manifest)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise _disk_error(exc, self.root) from exc
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
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
            raise _disk_error(exc, self.root) from exc
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

    def _publish(self, tmp: Path, manifest: Manifest) -> None:
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
    """
    import pyarrow.parquet as pq

    if ref is not None:
        targets = [store.find(ref)]
    else:
        targets = [d for k in ([kind] if kind else list(KINDS)) for d in store.all(k)]
    results = []
    for ds in targets:
        problems: list[str] = []
        expected = ds.manifest.files
        present = {p.relative_to(ds.path).as_posix() for p in ds.path.rglob("*") if p.is_file()} - {MANIFEST_FILE}
        for rel in sorted(present - set(expected)):
            problems.append(f"unexpected file {rel}")
        for rel, digest in sorted(expected.items()):
            path = ds.path / rel
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
        done = (store.root / "runs" / name / version / MANIFEST_FILE).is_file()
        (published if done else interrupted).append(folder)
    return published, interrupted


def unreferenced(store: Store) -> list[Dataset]:
    """Versions that no other artefact names as a parent and that are not the newest of their name."""
    everything = [d for k in KINDS for d in store.all(k)]
    referenced = {p for d in everything for p in d.manifest.parents}
    newest = {(d.kind, d.name): d.ref for d in everything}  # list() is oldest first, so the last wins
    return [d for d in everything if d.ref not in referenced and newest[(d.kind, d.name)] != d.ref]


def remove(store: Store, paths: Sequence[Path]) -> None:
    """Delete folders inside the store: a version is first renamed into .tmp so it vanishes atomically."""
    for path in paths:
        if store.root.resolve() not in path.resolve().parents:
            raise DatadietError(f"refusing to delete {path}: it is outside the store {store.root}")
        if (path / MANIFEST_FILE).exists():
            grave = store._make_tmp("gc")
            os.rename(path, grave / "v")
            path = grave
        shutil.rmtree(path, ignore_errors=True)
