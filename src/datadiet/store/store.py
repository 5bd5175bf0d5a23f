"""The `Store`: resolve refs to versions and commit new ones (content-addressed, locked, atomic).

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
import fcntl
import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadiet import __version__
from datadiet.errors import DatadietError, RefError, UsageError
from datadiet.schema import FORMAT_VERSION, MANIFEST_FILE

if TYPE_CHECKING:
    import pyarrow.fs
from datadiet.store.dataset import Commit, Dataset
from datadiet.store.disk import disk_error, fsync_dir
from datadiet.store.model import (
    KINDS,
    VERSION_LEN,
    Manifest,
    canonical_json,
    check_name,
    check_ref,
    file_sha256,
    manifest_bytes,
)
from datadiet.store.parts import STAGE_PREFIX, PartWriter
from datadiet.store.remote import (
    CACHE_ENV,
    FETCH_PREFIX,
    UPLOAD_DIR,
    Remote,
    cache_root,
    first_line,
    is_file,
    is_uri,
    transfer,
)

STORE_ENV = "DATADIET_STORE"


DEFAULT_STORE = "datadiet-store"


TMP_DIR = ".tmp"


LOCK_DIR = ".locks"


# <root>/.current/<kind>/<name> holds the version NAME resolves to (the last command's); kept out
# of the kind folders, which hold versions only.
CURRENT_FILE = ".current"


# What a missing artefact of each kind is made with, for the "no … named" error.
_MAKE_HINT = {
    "tokenizers": "make one with `curate tokenizer train DATASET --name NAME` (see `curate tokenizer ls`), "
    "or pass a tokenizer.json path to --tokenizer",
    "runs": "train one with `curate train DATASET --val VAL` (see `curate runs`)",
    "sweeps": "run one with `curate sweep` (see `curate ls --kind sweeps`)",
}


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
        if not str(root).strip():
            # Path("") is the current folder: a store would be made of whatever is there.
            raise UsageError("--store (or $DATADIET_STORE) is empty; give a folder or a URI")
        self.remote: Remote | None = None
        self._reading: dict[str, int] = {}  # version lock key -> fd held shared while this process reads it
        if filesystem is not None or is_uri(root):
            self.remote = Remote.open(str(root), filesystem)
            self.location = self.remote.uri
            self.root = cache_root(self.remote.uri, cache)
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

    def disk_error(self, exc: OSError) -> DatadietError:
        if self.remote is None:
            return disk_error(exc, self.root)
        where = f"the cache {self.root} of store {self.location}"
        return disk_error(exc, self.root, where, f"set ${CACHE_ENV} to a writable folder")

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
            why = first_line(exc, 300, lines=3)  # pydantic says what is wrong on the lines after its title
            raise DatadietError(f"manifest {mpath} is unreadable ({why}); run `curate verify`") from exc
        return Dataset(name=name, version=version, kind=kind, folder=path, manifest=manifest, store=self)

    def _try_load(self, kind: str, name: str, version: str, info: Any = None) -> Dataset | DatadietError | None:
        """`_load`, with a damaged manifest returned as its error instead of raised."""
        try:
            return self._load(kind, name, version, info)
        except DatadietError as exc:
            return exc

    def _load_remote(self, kind: str, name: str, version: str, folder: Path, info: Any) -> Dataset | None:
        """A remote version from its manifest, read from the cache when the cached copy is current."""
        assert self.remote is not None
        parts = (kind, name, version, MANIFEST_FILE)
        if info is None:
            info = self.remote.info(*parts)
        if not is_file(info):
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
                # pydantic says what is wrong on the lines after its title: three lines, joined
                why = first_line(exc, 300, lines=3)
                raise DatadietError(
                    f"manifest {self.remote.url(*parts)} is unreadable ({why}); run `curate verify`"
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
            raise self.disk_error(exc) from exc

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
            raise self.disk_error(exc) from exc

        def fetch(rel: str) -> None:
            parts = (ds.kind, ds.name, ds.version, *rel.split("/"))
            try:
                remote.download(parts, ds.folder / rel, ds.manifest.files[rel])
            except FileNotFoundError as exc:
                raise DatadietError(
                    f"{remote.url(*parts)} is missing although the manifest lists it; run `curate verify {ds.ref}`"
                ) from exc

        transfer([functools.partial(fetch, rel) for rel in missing])

    def published(self, kind: str, name: str, version: str) -> bool:
        """Whether version NAME@VERSION of KIND is published (its manifest exists), without reading it."""
        if self.remote is not None:
            self._kind_dir(kind)
            return is_file(self.remote.info(kind, name, version, MANIFEST_FILE))
        return (self._kind_dir(kind) / name / version / MANIFEST_FILE).is_file()

    def versions(self, name: str, kind: str = "datasets") -> list[Dataset]:
        """All published versions of NAME with a readable manifest, oldest first (see `damaged`)."""
        return self._scan(name, kind)[0]

    def damaged(self, kind: str) -> list[tuple[str, str, str]]:
        """(name, version, problem) of every version of KIND whose manifest cannot be read."""
        return [(n, v, str(e)) for n in self._name_dirs(kind) for v, e in self._scan(n, kind)[1]]

    def _scan(self, name: str, kind: str) -> tuple[list[Dataset], list[tuple[str, DatadietError]]]:
        """NAME's versions of KIND: (readable ones oldest first, [(version, error)] of damaged ones)."""
        check_ref(name)
        base = self._kind_dir(kind) / name
        if self.remote is not None:
            dirs = self.remote.subdirs(kind, name)
            infos = self.remote.infos([(kind, name, v, MANIFEST_FILE) for v in dirs])
            loaded = [(v, self._try_load(kind, name, v, i)) for v, i in zip(dirs, infos, strict=True)]
        elif base.is_dir():
            loaded = [(v.name, self._try_load(kind, name, v.name)) for v in base.iterdir() if v.is_dir()]
        else:
            loaded = []
        found = [d for _, d in loaded if isinstance(d, Dataset)]
        bad = sorted((v, d) for v, d in loaded if isinstance(d, DatadietError))
        return sorted(found, key=lambda d: (d.manifest.created, d.version)), bad

    def _name_dirs(self, kind: str) -> list[str]:
        base = self._kind_dir(kind)
        if self.remote is not None:
            names = self.remote.subdirs(kind)
        else:
            names = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
        return sorted(n for n in names if not n.startswith("."))

    def current(self, name: str, kind: str = "datasets") -> str | None:
        """The version NAME resolves to when given alone: the last command's, where one was recorded."""
        try:
            text = self._current_path(kind, name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        version = text.strip()
        return version if len(version) == VERSION_LEN else None

    def make_current(self, ds: Dataset) -> None:
        """Point DS's name at DS, so that `NAME` means what the last command made or found.

        Best effort on a store this process cannot write (a read-only copy): the version stands,
        and NAME then resolves to it only if it is also the newest. For a store on object storage
        the pointer lives in this machine's cache: each machine's names follow its own commands.
        """
        data = (ds.version + "\n").encode("utf-8")
        if self.current(ds.name, ds.kind) == ds.version:
            return
        with contextlib.suppress(OSError):
            path = self._current_path(ds.kind, ds.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{ds.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def set_current(self, kind: str, name: str, version: str | None) -> None:
        """Point NAME back at VERSION (None: none recorded, so its newest) after a failed command removed its own.

        Best effort, like `make_current`.
        """
        with contextlib.suppress(OSError):
            path = self._current_path(kind, name)
            if version is None:
                path.unlink(missing_ok=True)
                return
            tmp = path.with_name(f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            try:
                tmp.write_text(version + "\n", encoding="utf-8")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def _current_path(self, kind: str, name: str) -> Path:
        self._kind_dir(kind)  # checks the kind
        return self.root / CURRENT_FILE / kind / name

    def names(self, kind: str = "datasets") -> list[str]:
        return [n for n in self._name_dirs(kind) if self._ok_name(n) and self.versions(n, kind)]

    @staticmethod
    def _ok_name(name: str) -> bool:
        try:
            check_ref(name)
        except RefError:
            return False  # a folder no command could have made: not a name of this store
        return True

    def all(self, kind: str = "datasets") -> list[Dataset]:
        return [d for n in self.names(kind) for d in self.versions(n, kind)]

    def resolve(self, ref: str, kind: str = "datasets") -> Dataset:
        """Resolve `NAME` (its current version) or `NAME@PREFIX` (any unique version prefix).

        A name's current version is the one the last command that wrote NAME made or found up to
        date (`make_current`), else its newest. The version stays readable for as long as this
        process lives: a shared lock on it keeps `curate gc` from deleting it under the reader.
        """
        for _ in range(3):
            ds = self._resolve(ref, kind)
            if self._hold(ds):
                return ds
        raise DatadietError(f"{ref} keeps being removed while it is resolved (a running `curate gc`?); rerun")

    def _resolve(self, ref: str, kind: str) -> Dataset:
        name, prefix = check_ref(ref)
        label = kind[:-1]
        versions, damaged = self._scan(name, kind)
        if not versions and not damaged:
            known = ", ".join(self.names(kind)) or "none"
            hint = _MAKE_HINT.get(kind, "see `curate ls`")
            raise RefError(f"no {label} named {name!r} in store {self.location} (known: {known}); {hint}")
        if not prefix:
            current = self.current(name, kind)
            for d in versions:
                if d.version == current:
                    return d
            if damaged:  # the newest might be the damaged one: refuse to guess
                raise damaged[-1][1]
            return versions[-1]
        matches = [d for d in versions if d.version.startswith(prefix)]
        if not matches:
            for v, err in damaged:
                if v.startswith(prefix):
                    raise err
            raise RefError(f"{label} {name!r} has no version starting with {prefix!r}; see `curate ls`")
        if len(matches) > 1:
            cands = ", ".join(d.ref for d in matches)
            raise RefError(f"ref {ref!r} is ambiguous: it matches {cands}; give more characters of the version")
        return matches[0]

    def _hold(self, ds: Dataset) -> bool:
        """Take a shared lock on DS for the rest of this process; False if DS vanished meanwhile.

        `curate gc` takes the same lock exclusively, without waiting, before it deletes a version,
        and leaves a version some process holds. On a store this process cannot write (no lock
        file can be made) reading goes on unlocked: nobody can delete there either.
        """
        key = f"{ds.kind}-{ds.name}-{ds.version}"
        if key in self._reading:
            return True
        try:
            (self.root / LOCK_DIR).mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_DIR / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not self.published(ds.kind, ds.name, ds.version):  # removed before we got the lock
            os.close(fd)
            return False
        self._reading[key] = fd
        return True

    def release(self, key: str | None = None) -> None:
        """Drop the shared lock on version lock KEY this Store holds (all of them by default).

        They also end with the process. A process deleting a version it read itself (gc, tests)
        releases its own lock first: its own reading does not make the version busy.
        """
        for k in [key] if key is not None else list(self._reading):
            fd = self._reading.pop(k, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def check_outside(self, path: str | Path, what: str) -> Path:
        """PATH as given, or a `UsageError` if it lies in the store (symlinks followed): outputs never go there.

        Writing into a version folder would change a published, content-addressed version (an
        exported file over a part, a report beside a manifest) without `verify` or the ids knowing.
        """
        target = Path(path).expanduser()
        resolved = target.resolve()
        for root in {self.root.resolve(), self.root.absolute()}:
            if resolved == root or root in resolved.parents:
                raise UsageError(
                    f"{what} {path} is inside the store {self.location}; choose a path outside it "
                    "(published versions must not change)"
                )
        return target

    def find(self, ref: str) -> Dataset:
        """Resolve a ref in any kind, datasets first (for `show` and `lineage`)."""
        check_ref(ref)
        errors: list[RefError] = []
        for kind in KINDS:
            try:
                return self.resolve(ref, kind)
            except RefError as exc:
                errors.append(exc)
        # The most specific complaint wins: an ambiguous prefix, then a known name with no such version.
        for marker in ("ambiguous", "no version starting"):
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
            raise self.disk_error(exc) from exc
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
            self.make_current(existing)
            return Commit(existing, up_to_date=True)
        with self.lock(f"{kind}-{name}-{version}"):
            # Another process may have published it while we waited for the lock.
            existing = self._load(kind, name, version)
            if existing is not None:
                self.make_current(existing)
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
                raise self.disk_error(exc) from exc
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                writer._discard_remote()
                raise
        published = self._load(kind, name, version)
        assert published is not None
        self.make_current(published)
        return Commit(published, up_to_date=False)

    def _make_tmp(self, label: str) -> Path:
        try:
            base = self.root / TMP_DIR
            base.mkdir(parents=True, exist_ok=True)
            tmp = base / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
        except OSError as exc:
            raise self.disk_error(exc) from exc
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
        manifest = Manifest(
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
        return manifest.sealed()

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
        fsync_dir(final.parent)

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
            transfer(
                [
                    functools.partial(remote.rename, (*key, staged.name), (*key, rel))
                    for rel, staged in sorted(moves.items())
                ]
            )
        except FileNotFoundError:
            if is_file(remote.info(*key, MANIFEST_FILE)):
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
        transfer([functools.partial(remote.upload, tmp / rel, (*key, *rel.split("/"))) for rel in local])
        data = manifest_bytes(manifest)
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

    def children(self, ref: str) -> list[Dataset]:
        """Every artefact that names REF as a parent."""
        return [d for kind in KINDS for d in self.all(kind) if ref in d.manifest.parents]
