"""The Ray toolkit every `--engine ray` build uses; it knows no operation.

    cpus = connect(address)                       # join or start a cluster
    pieces = split(refs, key, parts)               # hash-partition blocks of an int64 key, in Ray tasks
    out = reduce([pieces, other], fn)              # fn(partition p of every side) per partition
    table = gather(pieces)                         # each partition as one object, for repeated joins
    slices = plan_slices(ds.part_sources(), cpus)  # the local engine's row slices over parts
    results = get_all(refs, tracker, "Writing")    # ray.get with progress, in order
    adopt_all(writer, staged)                      # staged parts adopted in output order
    cancel(refs)                                   # on error: no task may still write

Shuffles are Ray core tasks: a map task splits a block into P hash partitions
(`num_returns=P`), a reduce task concatenates partition p of every block; each costs
milliseconds to schedule, where a Ray Data all-to-all operator costs seconds on a small cluster.
Edge lists (int64 columns `U`, `V`) are the one table shape it knows, for `split(both=True)`.

It imports nothing from `datadiet.curate`, `datadiet.eval` or `datadiet.train` (a test checks).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import ray
import ray.data
import ray.data.context

import datadiet
from datadiet.errors import DatadietError, UsageError
from datadiet.hashing import fmix64
from datadiet.progress import Tracker
from datadiet.runtime import cut_slices
from datadiet.store import STAGE_PREFIX, PartSource, PartWriter, Staged

I64 = npt.NDArray[np.int64]

# The edge list: the one table shape the toolkit knows (`split(both=True)` sends an edge to both ends).
U, V = "u", "v"
EDGES = pa.schema([(U, pa.int64()), (V, pa.int64())])


# -- connecting ---------------------------------------------------------------------------------


def connect(address: str | None = None) -> int:
    """Join (or start) a Ray cluster; return its CPU count.

    Args:
        address: None starts a local cluster unless this process already joined one; "auto"
            joins the cluster started on this machine by `ray start`; "HOST:PORT" a remote one
            (the datadiet package is shipped to its workers).

    Raises:
        DatadietError: the cluster cannot be reached.
    """
    if address not in (None, "auto"):
        _check_reachable(address, connect=not ray.is_initialized())
    if not ray.is_initialized():
        try:
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            else:
                pkg = str(Path(datadiet.__file__).parent)
                ray.init(
                    address=address,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    runtime_env={"py_modules": [pkg]},
                )
        except (ConnectionError, RuntimeError) as exc:
            raise DatadietError(
                f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}; "
                "start one with `ray start --head` or leave out --address"
            ) from exc
    _cluster_messages_to_stderr()
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Ray Data prints two INFO lines per dataset it runs, and warns "no available CPUs" while this
    # engine's own shuffle tasks hold them; progress goes through the tracker instead, and the full
    # log stays in the session's ray-data.log (its file handler is left alone).
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.ERROR)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def check_address(address: str | None) -> None:
    """Check an `--address` value's form without dialling it (commands that reach the cluster late check first).

    Raises:
        UsageError: ADDRESS is neither None, "auto" nor HOST:PORT.
    """
    if address not in (None, "auto"):
        _check_reachable(address, connect=False)


def _cluster_messages_to_stderr() -> None:
    """Send the cluster's error messages to stderr: Ray's driver prints them on stdout.

    Messages such as "A worker died or was killed while executing a task" (then retried) are
    diagnostics, and on stdout they would corrupt a command's `--json`. Ray's driver thread looks
    its printer up in `ray._private.worker` at every message; without that name nothing changes.
    """
    from ray._private import worker as ray_worker

    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "to_stderr", False):
        return

    def to_stderr(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return printer({**data, "is_err": True}, *args, **kwargs)

    to_stderr.to_stderr = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


def _check_reachable(address: str, timeout_s: float = 10.0, *, connect: bool = True) -> None:
    """Fail in seconds on an address nothing listens at: `ray.init` would retry it for minutes.

    The form is always checked; with CONNECT false (this process already joined a cluster) nothing
    is dialled.

    Raises:
        UsageError: ADDRESS is not HOST:PORT (optionally ray://HOST:PORT).
        DatadietError: nothing accepts a connection there within TIMEOUT_S.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), not {address!r}")
    if not connect:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise DatadietError(
            f"cannot join the Ray cluster at {address}: {exc.strerror or exc}; "
            "start one with `ray start --head` or leave out --address"
        ) from exc


@contextmanager
def sort_shuffle() -> Iterator[None]:
    """Ray Data's task-based shuffle for the band groupby.

    The groupby column is already a hash of the band key, so this is a hash-partitioned shuffle;
    Ray's actor-based HASH_SHUFFLE strategy measured 12-15 s per groupby on a 2-CPU cluster
    (aggregator actors start each time), the sort-based one 0.5-1 s for the same 70k band rows.
    """
    ctx = ray.data.DataContext.get_current()
    before = ctx.shuffle_strategy
    ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        yield
    finally:
        ctx.shuffle_strategy = before


# -- arrow helpers -------------------------------------------------------------------------------


def column_array(table: pa.Table, name: str, dtype: Any) -> Any:
    return np.asarray(table.column(name).to_numpy(), dtype=dtype)


def matrix(table: pa.Table, name: str, dtype: Any, width: int) -> Any:
    col = table.column(name).combine_chunks()
    if len(col) == 0:
        return np.zeros((0, width), dtype=dtype)
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=dtype).reshape(-1, width)


def fixed_list(a: npt.NDArray[Any]) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(a).reshape(-1)), a.shape[1])


def edge_table(u: I64, v: I64) -> pa.Table:
    return pa.table({U: pa.array(u, pa.int64()), V: pa.array(v, pa.int64())}, schema=EDGES)


def concat_blocks(tables: Sequence[pa.Table]) -> pa.Table:
    return pa.concat_tables(list(tables), promote_options="default")


# -- hash-partitioned shuffles on Ray core tasks ------------------------------------------------


def _split(
    table: pa.Table, key: str, parts: int, both: bool = False, columns: Sequence[str] | None = None
) -> tuple[pa.Table, ...]:
    if columns is not None:  # ship only what the reduce side reads
        table = table.select([c for c in columns if c in table.column_names])
    if both:  # an edge list seen from both ends, keyed by the first (for large-star)
        u, v = column_array(table, U, np.int64), column_array(table, V, np.int64)
        table = edge_table(np.concatenate([u, v]), np.concatenate([v, u]))
    k = column_array(table, key, np.int64).astype(np.uint64) if table.num_rows else np.zeros(0, dtype=np.uint64)
    part = (fmix64(k) % np.uint64(parts)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    return tuple(table.take(pa.array(order[bounds[p] : bounds[p + 1]])) for p in range(parts))


@ray.remote
def _split_task(
    table: pa.Table, key: str, parts: int, both: bool, columns: Sequence[str] | None
) -> tuple[pa.Table, ...]:
    return _split(table, key, parts, both, columns)


@ray.remote
def _reduce_task(fn: Callable[..., Any], sizes: list[int], *tables: pa.Table) -> Any:
    sides, i = [], 0
    for s in sizes:
        sides.append(concat_blocks(tables[i : i + s]))
        i += s
    return fn(*sides)


Split = list[list[Any]]  # [block][partition] object refs


def split(
    refs: Sequence[Any], key: str, parts: int, both: bool = False, columns: Sequence[str] | None = None
) -> Split:
    """Hash-partition every block by `key` (int64 column) into `parts` pieces, in Ray tasks.

    With `both`, the blocks are edge lists and each edge is sent to both its ends (keyed by the
    first); with `columns`, only those columns are shipped.
    """
    out: Split = []
    for r in refs:
        pieces: Any = _split_task.options(num_returns=parts).remote(r, key, parts, both, columns)
        out.append(list(pieces))
    return out


def reduce(sides: Sequence[Split], fn: Callable[..., Any], num_returns: int = 1) -> list[Any]:
    """Run fn(side_0_partition_p, side_1_partition_p, ...) for every partition p, in Ray tasks."""
    parts = len(sides[0][0])
    out = []
    for p in range(parts):
        args = [blocks[p] for side in sides for blocks in side]
        task = _reduce_task.options(num_returns=num_returns)
        out.append(task.remote(fn, [len(side) for side in sides], *args))
    return out


def firsts(refs: Sequence[Any], k: int) -> list[Any]:
    """The k-th return of each multi-return task in REFS."""
    return [r[k] for r in refs]


def _whole(table: pa.Table) -> pa.Table:
    return table


def gather(pieces: Split) -> Split:
    """The same partitions, each as one object (the pieces are freed once nothing else holds them).

    A table read by several joins (the signatures by position: 3 joins, texts included with
    --verify) is otherwise pulled piece by piece from every node by each join; as one object per
    partition, Ray's locality-aware scheduling runs each later join on the node holding it, as
    that object is the bulk of the task's arguments, so only the edges travel.
    """
    return [reduce([pieces], _whole)]


# -- the pipeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """Rows [offset, offset + length) of one part, at global positions start, start + 1, ..."""

    source: PartSource
    offset: int
    length: int
    start: int


def plan_slices(sources: Sequence[PartSource], workers: int) -> list[Slice]:
    """The slices of `runtime.cut_slices` (the local engine's cuts) over parts (`Dataset.part_sources`, concatenated).

    Row counts come from the parts' footers: nothing is downloaded to this machine.
    """
    return [Slice(sources[i], off, n, start) for i, off, n, start in cut_slices([s.rows for s in sources], workers)]


# -- driver helpers -----------------------------------------------------------------------------


def get_all(refs: Sequence[Any], tracker: Tracker, label: str) -> list[Any]:
    """ray.get with progress: results in the order of REFS."""
    out: dict[Any, Any] = {}
    pending = list(refs)
    with tracker.task(label, total=len(pending)) as task:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[ref] = ray.get(ref)
                task.advance()
    return [out[r] for r in refs]


def cancel(refs: Sequence[Any]) -> None:
    """Cancel tasks and wait until none runs: none may write into the folder the store then removes."""
    for ref in refs:
        ray.cancel(ref)
    if refs:
        ray.wait(list(refs), num_returns=len(refs), timeout=60)


def stage_stem(t: int) -> str:
    """The staging name of output chunk T of a Ray build (adopted by the driver in chunk order)."""
    return f"{STAGE_PREFIX}-ray-{t:05d}"


def adopt_all(writer: PartWriter, staged: Sequence[Sequence[Staged]]) -> None:
    """Adopt every task's staged files, task by task, in order: the version's parts in output order."""
    for files in staged:
        for item in files:
            writer.adopt_staged(item)
