"""`--engine ray` for `curate ingest`: the inputs are read and written by Ray tasks, one per group.

    curate ingest PATH... --name NAME --engine ray [--address auto|HOST:PORT]

The driver expands the paths, hashes the inputs (in Ray tasks from 1 GiB of input on; the hashes
make the version id, so an up-to-date ingest stops there) and cuts the local engine's `plan`:
groups of whole files of about 64 MiB on disk, larger files alone, large Parquet files split into
runs of row groups. Then, for each group in order:

- a group that starts at the first document of its files is one task: it reads, validates and
  normalises exactly as the local engine (`ingest.write_group`, the same code) and stages its
  parts through `PartWriter.stage_target()`: the version's temporary folder, or, for a store on
  object storage, the version's (still manifest-less) folder there;
- a run of row groups that continues a split Parquet file needs its ids' starting index, the
  documents of the file's earlier runs: a read task returns its documents to the object store, and
  a write task, which Ray starts once the earlier runs' counts exist, numbers and stages them.

The driver adopts the staged files in plan order (`PartWriter.adopt`), so the parts, their bytes
and the version are the local engine's. Only file names, counts and errors reach the driver; the
text moves from the input filesystem to a worker and from there to the store (plus one hop
through the object store for a continuation run). A bad input fails its task with the local
engine's one-line error; the driver raises the error of the first failing group in input order,
which is the one the local engine meets first, after cancelling the tasks still running.

The inputs must be on a filesystem every worker can reach: a shared mount (hashing them for the
version id needs them on the driver too), or URIs pyarrow opens (`s3://`, `gs://`, `file://`...).
A URI's pyarrow filesystem travels pickled inside each task's pieces and the worker opens the
object itself: credentials named in the URI's query travel with it, otherwise each worker uses its
own (environment, instance role; pyarrow pickles no resolved keys). The driver lists the objects
(and reads big Parquet files' footers) but none of their bytes, nor hashes them from 1 GiB on.
The store may be a shared folder or an object store.

Invoked by `datadiet.curate.ingest.op.ingest(..., engine="ray")`, which imports this module only then:
`hash_files` before the commit (the version id needs the hashes), `build` for the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import ray

from datadiet.curate.ingest import read as local
from datadiet.curate.ingest.read import (
    Batcher,
    Counts,
    Piece,
    Source,
    check_unchanged,
    document_ids,
    finish,
    plan,
    read_piece,
    source_sha256,
    write_group,
)
from datadiet.engine.ray import cancel, connect

if TYPE_CHECKING:
    from datadiet.curate.ingest.op import IngestConfig
from datadiet.errors import DatadietError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import STAGE_PREFIX, PartWriter, Staged, StageTarget

# Groups submitted ahead of the oldest one not yet adopted, per CPU of the cluster: enough to keep
# every CPU busy behind one slow group, while a continuation run's documents wait in the object
# store for a bounded number of groups only.
WINDOW_PER_CPU = 4


@dataclass
class _Result:
    """What a task tells the driver: documents per file, the staged files in order, or its error."""

    counts: Counts = field(default_factory=Counts)
    staged: list[Staged] = field(default_factory=list)
    error: BaseException | None = None


def _worker_error(exc: BaseException, piece: Piece | None) -> BaseException:
    """The local engine's error as is; a file a worker cannot open gets a one-line cluster hint."""
    if isinstance(exc, OSError) and piece is not None:
        return DatadietError(
            f"{piece.path}: cannot be read on a Ray worker ({exc.strerror or exc}); "
            "put the inputs on a filesystem every worker can reach"
        )
    return exc


class _Stager:
    """`StageTarget.stage` for each frame a Batcher emits, named so that plan order is file-name order."""

    def __init__(self, target: StageTarget, group: int) -> None:
        self.target = target
        self.group = group
        self.staged: list[Staged] = []
        self.frames = 0

    def __call__(self, frame: Any) -> None:
        stem = f"{STAGE_PREFIX}-ingest-{self.group:06d}-{self.frames:05d}"
        self.frames += 1
        try:
            files = self.target.stage(frame, stem)
        except OSError as exc:
            raise DatadietError(
                f"cannot write parts into {self.target.directory} on a Ray worker ({exc.strerror or exc}); "
                "the store must be on a filesystem every worker can reach"
            ) from exc
        self.staged.extend(files)


@ray.remote
def _group_task(group: list[Piece], cfg: IngestConfig, batch_bytes: int, target: StageTarget, index: int) -> _Result:
    stager = _Stager(target, index)
    counts = Counts()
    reading: list[Piece] = []

    def pieces() -> Iterator[Piece]:
        for piece in group:
            reading[:] = [piece]
            yield piece

    try:
        write_group(pieces(), cfg, Batcher(stager, batch_bytes, cfg.extra_columns), counts)
    except Exception as exc:  # returned, not raised: the driver re-raises it exactly as the local engine would
        return _Result(error=_worker_error(exc, reading[0] if reading else None))
    return _Result(counts, stager.staged)


@ray.remote(num_returns=2)
def _read_task(piece: Piece, cfg: IngestConfig) -> tuple[_Result, pa.Table | None]:
    dropped = [0]
    ids: list[str | None] = []
    texts: list[str] = []
    extras: list[tuple[Any, ...]] = []
    try:
        for doc_id, text, more in read_piece(piece, cfg, dropped):
            ids.append(doc_id)
            texts.append(text)
            extras.append(more)
        columns = {"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.large_string())}
        for k, (name, typ) in enumerate(cfg.extra_columns):  # never "id"/"text": those are reserved
            columns[name] = pa.array([row[k] for row in extras], type=typ)
    except Exception as exc:
        return _Result(error=_worker_error(exc, piece)), None
    counts = Counts({piece.file: len(texts)}, {piece.file: dropped[0]})
    return _Result(counts), pa.table(columns)


@ray.remote
def _write_task(
    read: _Result,
    table: pa.Table | None,
    piece: Piece,
    batch_bytes: int,
    extra: Sequence[tuple[str, Any]],
    target: StageTarget,
    index: int,
    *earlier: _Result,
) -> _Result:
    for done in (*earlier, read):
        if done.error is not None:
            return _Result(error=done.error)
    assert table is not None
    start = sum(done.counts.documents.get(piece.file, 0) for done in earlier)
    stager = _Stager(target, index)
    batcher = Batcher(stager, batch_bytes, extra)
    try:
        ids = document_ids(piece, table.column("id").to_pylist(), start)
        values = [table.column(name).to_pylist() for name, _ in extra]
        for doc_id, text, *more in zip(ids, table.column("text").to_pylist(), *values, strict=True):
            batcher.add(doc_id, text, more)
        batcher.flush()
    except Exception as exc:
        return _Result(error=exc)
    return _Result(read.counts, stager.staged)


@ray.remote
def _hash_task(source: Source) -> tuple[str | None, BaseException | None]:
    try:
        return source_sha256(source), None
    except OSError as exc:
        return None, DatadietError(
            f"{source.name}: cannot be read on a Ray worker ({exc.strerror or exc}); "
            "put the inputs on a filesystem every worker can reach"
        )
    except Exception as exc:  # a URI's one-line InputError (missing object, no credentials) as is
        return None, exc


def hash_files(files: Sequence[Source], *, address: str | None = None, tracker: Tracker = NULL_TRACKER) -> list[str]:
    """sha256 of every input file (local or a URI's object), one Ray task each (no input bytes reach the driver)."""
    connect(address)
    sizes = [f.size for f in files]
    refs = [_hash_task.remote(f) for f in files]
    hashes: list[str] = []
    with tracker.task("Hashing inputs (ray)", total=sum(sizes)) as task:
        for ref, size in zip(refs, sizes, strict=True):
            digest, error = ray.get(ref)
            if error is not None:
                ray.wait(refs, num_returns=len(refs))
                raise error
            assert digest is not None
            hashes.append(digest)
            task.advance(size)
    return hashes


def write_groups(
    writer: PartWriter,
    groups: Sequence[Sequence[Piece]],
    cfg: IngestConfig,
    *,
    address: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Counts:
    """Read and write every group in Ray tasks and adopt their parts in order (see the module docstring).

    Returns:
        Documents and dropped empty documents per input file, as the local engine counts them.

    Raises:
        The error of the first failing group in plan order, as the local engine raises it.
    """
    cpus = connect(address)
    window = max(2, WINDOW_PER_CPU * cpus)
    # The driver's settings travel with every task, so no worker's configuration can move a part end.
    batch_bytes = local.BATCH_BYTES
    target = writer.stage_target()  # the temporary folder, or the version's folder on an object store
    # group -> ref of its _Result, from the task that writes its parts (read tasks write nothing, so
    # only these are cancelled on an error; the driver holds no ref to a read task's documents,
    # which the object store frees once their write task has run)
    results: dict[int, Any] = {}
    earlier: dict[int, list[Any]] = {}  # split file -> refs whose counts hold its earlier runs' documents

    def submit(k: int) -> None:
        group = list(groups[k])
        if not group[0].continues:
            ref = _group_task.remote(group, cfg, batch_bytes, target, k)
            results[k] = ref
            for piece in group:
                if piece.row_groups is not None:
                    earlier.setdefault(piece.file, []).append(ref)
            return
        (piece,) = group
        refs: Any = _read_task.remote(piece, cfg)
        read, table = refs
        before = list(earlier.get(piece.file, []))
        results[k] = _write_task.remote(read, table, piece, batch_bytes, cfg.extra_columns, target, k, *before)
        earlier.setdefault(piece.file, []).append(read)

    counts = Counts()
    submitted = 0
    with tracker.task("Ingesting (ray)", total=sum(p.bytes for g in groups for p in g)) as task:
        try:
            for k, group in enumerate(groups):
                while submitted < len(groups) and submitted < k + window:
                    submit(submitted)
                    submitted += 1
                result: _Result = ray.get(results.pop(k))
                if result.error is not None:
                    raise result.error
                for staged in result.staged:
                    writer.adopt_staged(staged)
                counts.add(result.counts)
                task.advance(sum(p.bytes for p in group))
        except BaseException:
            cancel(list(results.values()))
            raise
    return counts


def build(
    files: Sequence[Source],
    formats: Sequence[str],
    prefixes: Sequence[str],
    cfg: IngestConfig,
    *,
    address: str | None = None,
    tracker: Tracker = NULL_TRACKER,
    hashes: Sequence[str] | None = None,
) -> Callable[[PartWriter], dict[str, Any]]:
    """`ingest.op.ingest`'s build function on a Ray cluster: one task per group of the plan, parts adopted in order.

    Ray is started only when the function runs, so a version that is up to date never starts it
    (unless `hash_files` already did, for inputs of HASH_LOCAL_BYTES or more).
    """

    def run(writer: PartWriter) -> dict[str, Any]:
        groups = plan(files, formats, prefixes, hashes=hashes)  # workers check text/JSONL as they read
        counts = write_groups(writer, groups, cfg, address=address, tracker=tracker)
        if hashes is not None:
            check_unchanged(files, formats, hashes)
        return finish(writer, cfg, files, counts)

    return run
