"""Store maintenance: `verify` (hashes and row counts against the manifests) and the pieces of
`curate gc` (abandoned temporary folders, work folders, unreferenced versions, remote debris,
stale cache files, and `remove`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadiet.errors import DatadietError
from datadiet.schema import FORMAT_VERSION, MANIFEST_FILE

if TYPE_CHECKING:
    pass
from datadiet.store.dataset import Dataset
from datadiet.store.model import KINDS, file_sha256
from datadiet.store.remote import (
    FETCH_PREFIX,
    UPLOAD_DIR,
    Remote,
    first_line,
    is_file,
)
from datadiet.store.store import LOCK_DIR, TMP_DIR, Store

# A manifest-less remote folder with no marker here may be another machine's upload in progress;
# gc leaves it alone for a day, far longer than any one version takes to upload.
REMOTE_DEBRIS_GRACE_S = 24 * 3600


FETCH_DEBRIS_GRACE_S = 3600  # a download untouched for an hour belongs to a process that died


def verify(store: Store, ref: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Recompute every file hash and dataset row count against the manifests.

    Returns one entry per checked version: `ref`, `kind`, `ok` and a list of `problems` (missing
    file, hash mismatch, unexpected file, row count differing from the manifest, unreadable part).
    On a remote store the published files are read where they are; a cached copy that differs
    from its manifest is a problem too, and is deleted so the next use fetches it again.
    """
    import pyarrow.parquet as pq

    results: list[dict[str, Any]] = []
    if ref is not None:
        targets = [store.find(ref)]
    else:
        kinds = [kind] if kind else list(KINDS)
        targets = [d for k in kinds for d in store.all(k)]
        # A manifest that cannot be read is damage to report, not a reason to check nothing else.
        for k in kinds:
            for name, version, problem in store.damaged(k):
                results.append({"ref": f"{name}@{version}", "kind": k, "ok": False, "problems": [problem]})
    for ds in targets:
        store._hold(ds)  # `curate gc` must not delete it while it is being checked
        identity = _identity_problems(store, ds)
        if store.remote is not None:
            checked = _verify_remote(store.remote, ds)
            checked["problems"] = identity + checked["problems"]
            checked["ok"] = not checked["problems"]
            results.append({"ref": ds.ref, "kind": ds.kind, **checked})
            continue
        problems: list[str] = list(identity)
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


def _identity_problems(store: Store, ds: Dataset) -> list[str]:
    """What in DS's manifest disagrees with its place and its id: an edited manifest.

    The version id is recomputed from the manifest's kind, operation, parameters and parents; the
    digest (manifests written since it exists) covers every other field: stats, rows, file list.
    """
    m = ds.manifest
    problems = []
    if (m.name, m.version, m.kind) != (ds.name, ds.version, ds.kind):
        problems.append(f"manifest names {m.kind}/{m.name}/{m.version}, not the folder it is in")
    # The id is computed by the format of the release that wrote it (only one so far).
    expected = store.version_id(operation=m.operation, params=m.params, parents=m.parents, kind=m.kind)
    if m.format == FORMAT_VERSION and expected != ds.version:
        problems.append(
            f"manifest edited: its operation, parameters and parents give version {expected}, not {ds.version}"
        )
    if m.digest is not None and m.digest != m.expected_digest():
        problems.append("manifest edited: its digest does not match its content (stats, rows, files or dates)")
    return problems


def _verify_remote(remote: Remote, ds: Dataset) -> dict[str, Any]:
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
            problems.append(f"unreadable part ({first_line(exc)})")
        else:
            if rows != ds.manifest.rows:
                problems.append(f"{rows} rows in the store, manifest says {ds.manifest.rows}")
    return {"ok": not problems, "problems": problems}


def _lock_is_free(store: Store, key: str) -> bool:
    """Whether no process holds the version lock KEY right now (a writer holds it while it works).

    This process's own reading of the version (`Store.resolve`) does not count.
    """
    store.release(key)
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


def abandoned_tmp(store: Store, older_than_s: float = 0.0) -> list[Path]:
    """Temporary folders left by writers that died (none of them is a version)."""
    base = store.root / TMP_DIR
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


def abandoned(store: Store) -> list[Path]:
    """Temporary folders whose writer is gone: their version lock can be taken without waiting."""
    # Names are `<kind>-<name>-<version>-<pid>-<rand>`; the lock key is everything before the pid.
    return [tmp for tmp in abandoned_tmp(store) if _lock_is_free(store, tmp.name.rsplit("-", 2)[0])]


def work_folders(store: Store) -> tuple[list[Path], list[Path]]:
    """Idle work folders of runs (`work/runs/<name>-<version>`): (debris, interrupted).

    A published run's folder, or one with no checkpoint, is a leftover and safe to delete; an
    interrupted one holds the checkpoint `--resume` continues from, so it is only deleted when asked. Folders of runs
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
        # A folder without a checkpoint (a run that failed before its first one) resumes nothing.
        resumable = any(folder.glob("*.pt"))
        (published if done or not resumable else interrupted).append(folder)
    return published, interrupted


def unreferenced(store: Store) -> list[Dataset]:
    """Versions that no other artefact names as a parent and that their name does not stand for.

    A name stands for its current version (`Store.current`, the last command's) and its newest.
    """
    everything = [d for k in KINDS for d in store.all(k)]
    referenced = {p for d in everything for p in d.manifest.parents}
    keep = {(d.kind, d.name): {d.version} for d in everything}  # list() is oldest first, so the last wins
    for (kind, name), versions in keep.items():
        current = store.current(name, kind)
        if current is not None:
            versions.add(current)
    return [d for d in everything if d.ref not in referenced and d.version not in keep[(d.kind, d.name)]]


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
                if is_file(info):  # a manifest: a published version
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


@contextlib.contextmanager
def _exclusive(store: Store, key: str) -> Iterator[bool]:
    """Hold version lock KEY exclusively if nobody holds it (a writer, or a reader's shared lock); yields whether."""
    store.release(key)  # this process's own reading of it does not count
    try:
        (store.root / LOCK_DIR).mkdir(parents=True, exist_ok=True)
        fd = os.open(store.root / LOCK_DIR / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise store.disk_error(exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def remove(store: Store, items: Sequence[Path | Dataset | str]) -> tuple[list[Path | Dataset | str], list[str]]:
    """Delete versions (`Dataset`), folders inside the store or its cache (`Path`) and remote debris (URI str).

    A version vanishes atomically: a local one is first renamed into .tmp, a remote one loses its
    manifest first (a folder without a manifest is never a version), then the rest is deleted. A
    version some process is reading (it holds the version's lock shared, see `Store.resolve`) is
    left alone. Returns (what was removed, one line per item that was not and why), so callers
    report what happened, not what was asked.
    """
    done: list[Path | Dataset | str] = []
    failed: list[str] = []
    for item in items:
        if isinstance(item, Dataset):
            with _exclusive(store, f"{item.kind}-{item.name}-{item.version}") as free:
                if not free:
                    failed.append(f"{item.ref}: in use by a running command")
                    continue
                try:
                    _remove_one(store, item)
                except OSError as exc:
                    failed.append(f"{item.ref}: {exc.strerror or exc}")
                    continue
        else:
            try:
                _remove_one(store, item)
            except OSError as exc:
                failed.append(f"{item}: {exc.strerror or exc}")
                continue
            if isinstance(item, Path) and (item.exists() or item.is_symlink()):
                failed.append(f"{item}: could not be deleted")
                continue
        done.append(item)
    return done, failed


def _remove_one(store: Store, item: Path | Dataset | str) -> None:
    """Delete one item (see `remove`); OSError when it could not be."""
    if isinstance(item, Dataset):
        if store.remote is not None:
            key = (item.kind, item.name, item.version)
            store.remote.delete((*key, MANIFEST_FILE), folder=False)
            store.remote.delete(key, folder=True)
            shutil.rmtree(item.folder, ignore_errors=True)
            return
        item = item.folder
    if isinstance(item, str):
        remote = store.remote
        if remote is None or not item.startswith(remote.uri + "/"):
            raise DatadietError(f"refusing to delete {item}: it is outside the store {store.location}")
        parts = tuple(item[len(remote.uri) + 1 :].split("/"))
        if len(parts) != 3 or parts[0] not in KINDS or is_file(remote.info(*parts, MANIFEST_FILE)):
            raise DatadietError(f"refusing to delete {item}: it is not a manifest-less version folder")
        remote.delete(parts, folder=True)
        (store.root / UPLOAD_DIR / "-".join(parts)).unlink(missing_ok=True)
        return
    path = item
    if store.root.resolve() not in path.resolve().parents:
        raise DatadietError(f"refusing to delete {path}: it is outside the store {store.root}")
    if path.is_file():
        path.unlink(missing_ok=True)
        return
    if (path / MANIFEST_FILE).exists():
        grave = store._make_tmp("gc")
        os.rename(path, grave / "v")
        path = grave
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # a read-only store, or files of another user: say so instead of "removed"
        raise OSError(errno.EACCES, f"could not delete {path}")
