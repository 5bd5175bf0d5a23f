"""duplicate's Ray build: `curate duplicate --engine ray`, with versions identical to the local engine's.

    curate duplicate REF --rate R [--pool P | --copies K] [--append] [--near E] --engine ray [--address auto|HOST:PORT]

The global choices are cheap integer work on positions and counts and stay on the driver; every
step that reads or writes text runs in Ray tasks over the input's Parquet parts, one task per
part unless said otherwise.

duplicate:

1. meta: each part's row count, its original documents' positions (only when it has copies
   already) and where `--doc` is. The driver draws the plan (`inject.plan_positions`: pool,
   slots, copy numbers) exactly as the local engine does.
2. pool: the parts holding pool documents extract those rows (and, with `--near`, their word
   counts and their share of the vocabulary: their words and those of the seeded sample
   documents they hold). Only the pool ids and word counts reach the driver; the rows stay in
   the object store. If the input already has copies, a second pass finds each pool document's
   highest copy_index (`base`), so new copy ids continue from it.
3. near copies (`--near`): the driver sorts the copies by source length into the local
   engine's blocks (`near.edit_plan`) and cuts them into edit tasks. Each edit task receives
   only the pool rows its blocks copy (a multicast keyed by edit task) and the vocabulary,
   edits its blocks (block b draws from its own stream, so the rows are the local ones) and
   sends each copy row to the task of the part it lands in.
4. write: output task t builds input part t's output chunk (`inject.chunk_bounds`): it reads
   the part, places the copies landing there (exact copies from the pool rows routed to it,
   near copies from the edit tasks), and stages the chunk through `PartWriter.stage_target()`
   (the version's temporary folder, or its folder on an object store). The driver adopts the
   files in part order, so the Parquet files are byte-identical to the local engine's, which
   writes the same chunks. Each output task also hash-partitions its distinct `source_id`s, and
   small tasks count them per partition for the `unique_documents` stat.

The version id is the local engine's (the engine is no parameter). Workers read the parts where
the store keeps them (`Dataset.part_sources`: a shared folder, or the object store itself), so no
row passes through the driver's machine.

Invoked by `datadiet.curate.duplicate.op.duplicate(..., engine="ray")`, which imports this module
only then and commits the version whose build function `build` returns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import ray

from datadiet.curate.duplicate import inject
from datadiet.curate.duplicate.inject import JACCARD_TO_SOURCE, POOL_FILE, DuplicationPlan
from datadiet.curate.duplicate.near import edit_plan, edit_texts, merge_vocab, vocab_sample, vocab_words, word_counts
from datadiet.engine.ray import adopt_all, connect, get_all, stage_stem

if TYPE_CHECKING:
    from datadiet.curate.duplicate.op import DuplicateConfig
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import COPY_INDEX, ID, SOURCE_ID, TEXT, conform
from datadiet.store import Dataset, PartSource, PartWriter, StageTarget

# Edit tasks per CPU of the cluster: 2 keeps every core busy while one task is slower.
TASKS_PER_CPU = 2


# ... and at least one edit task per this many (copy, word) cells: about 3 s of editing on one
# core (~10M cells/s: 100k copies of a 170-word story took 1.7 s of CPU at E = 0.1), and a few
# hundred MB of copies, far below a worker's memory.
EDIT_TASK_CELLS = 32_000_000


# Hash partitions of the distinct source ids counted for `unique_documents`, per CPU.
COUNT_PARTS_PER_CPU = 2


# Helper columns of rows in flight (never written).
_POOL, _J, _EDIT, _JAC = "_pool", "_copy", "_edit", "_jaccard"


Refs = list[Any]  # Ray object refs


# -- tasks: duplicate -----------------------------------------------------------------------------


@ray.remote
def _meta(source: PartSource, docs: tuple[str, ...]) -> tuple[int, np.ndarray | None, list[tuple[int, int] | None]]:
    """A part's rows, its originals' positions (None when every row is one) and the first row of each id of DOCS."""
    frame = source.read([ID, COPY_INDEX] if docs else [COPY_INDEX])
    original = frame.get_column(COPY_INDEX).to_numpy() == 0
    originals = None if original.all() else np.flatnonzero(original).astype(np.int64)
    found: list[tuple[int, int] | None] = []
    for doc in docs:
        hits = np.flatnonzero((frame.get_column(ID) == doc).to_numpy())
        found.append((int(hits[0]), int(frame.get_column(COPY_INDEX)[int(hits[0])])) if hits.size else None)
    return frame.height, originals, found


@ray.remote(num_returns=3)
def _extract(
    source: PartSource,
    pool_local: np.ndarray,
    pool_idx: np.ndarray,
    sample_local: np.ndarray,
    with_jaccard: bool,
    near: bool,
) -> tuple[pl.DataFrame, tuple[np.ndarray, pl.Series, np.ndarray], pl.Series | None]:
    """A part's pool rows (sorted by pool index), their ids and word counts, and its share of the vocabulary."""
    frame = conform(source.read())
    if with_jaccard:
        frame = inject.with_jaccard_column(frame)
    rows = frame[pool_local].with_columns(pl.Series(_POOL, pool_idx, dtype=pl.Int64)).sort(_POOL)
    counts = word_counts(rows.get_column(TEXT)) if near else np.zeros(0, dtype=np.int64)
    words = vocab_words(rows.get_column(TEXT), frame.get_column(TEXT)[sample_local]) if near else None
    return rows, (rows.get_column(_POOL).to_numpy(), rows.get_column(ID), counts), words


@ray.remote
def _base(source: PartSource, pool_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(pool index, highest copy_index of rows copied from it) for the pool documents with rows in a part."""
    frame = source.read([SOURCE_ID, COPY_INDEX])
    found = (
        frame.filter(pl.col(SOURCE_ID).is_in(pool_ids.implode()))
        .group_by(SOURCE_ID)
        .agg(pl.col(COPY_INDEX).max().alias("base"))
        .join(pl.DataFrame({SOURCE_ID: pool_ids, _POOL: np.arange(pool_ids.len())}), on=SOURCE_ID)
        .drop_nulls("base")
    )
    return found.get_column(_POOL).to_numpy().astype(np.int64), found.get_column("base").to_numpy().astype(np.int64)


@ray.remote
def _route(rows: pl.DataFrame, wanted: list[np.ndarray]) -> Any:
    """Rows (sorted by pool index) -> one frame per destination, with the pool indices it wants."""
    keys = rows.get_column(_POOL).to_numpy()
    out = [rows[np.searchsorted(keys, w)] for w in wanted]
    return out[0] if len(out) == 1 else tuple(out)


@ray.remote
def _edit(
    vocab: pl.Series,
    sources: np.ndarray,
    bounds: list[tuple[int, int]],
    first_block: int,
    cfg: DuplicateConfig,
    copy_ids: np.ndarray,
    dest: np.ndarray,
    n_dest: int,
    *pool: pl.DataFrame,
) -> Any:
    """Edit some consecutive blocks of near copies; their rows split by the output task they go to.

    Args:
        vocab: The vocabulary (`near.merge_vocab`).
        sources: Pool index copied by each edit row.
        bounds: The blocks as ranges of edit rows; the first is block `first_block`.
        cfg: The duplication.
        copy_ids: Copy number j of each edit row.
        dest: Which of this task's `n_dest` destinations each edit row goes to.
        pool: Frames of the pool rows these blocks copy.

    Returns:
        One frame per destination, then (edit fractions, Jaccards) in edit-row order.
    """
    rows = pl.concat(list(pool), how="vertical").sort(_POOL)
    local = np.searchsorted(rows.get_column(_POOL).to_numpy(), sources)
    texts, edit, jac = edit_texts(rows.get_column(TEXT), vocab, local, bounds, first_block, cfg.near, cfg.seed)
    copies = (
        rows[local]
        .drop(_POOL)
        .with_columns(
            texts,
            pl.Series(_J, copy_ids, dtype=pl.Int64),
            pl.Series(_EDIT, edit, dtype=pl.Float32),
            pl.Series(_JAC, jac, dtype=pl.Float32),
        )
    )
    by_dest = np.argsort(dest, kind="stable")
    cuts = np.searchsorted(dest[by_dest], np.arange(n_dest + 1))
    pieces = [copies[by_dest[cuts[d] : cuts[d + 1]]] for d in range(n_dest)]
    return (*pieces, (edit, jac))


@ray.remote
def _write_duplicate(
    source: PartSource,
    target: StageTarget,
    stem: str,
    cfg: DuplicateConfig,
    with_jaccard: bool,
    positions: np.ndarray,
    k: np.ndarray,
    copy_pool: np.ndarray,
    buckets: int,
    *pieces: pl.DataFrame,
) -> Any:
    """Input part -> its output chunk, staged in TARGET; also its copy rows and distinct source ids by bucket.

    Args:
        source: The input part.
        target: Where the version's parts are staged (`PartWriter.stage_target`).
        stem: Name stem of the staged files.
        cfg: The duplication.
        with_jaccard: Whether the output has the `jaccard_to_source` column.
        positions: Chunk row of each copy landing here, in copy order.
        k: Copy number of each.
        copy_pool: Pool index of each (exact copies).
        buckets: Hash partitions of the distinct source ids.
        pieces: Exact copies: the pool rows they copy; near copies: the edited copy rows.
    """
    frame = conform(source.read())
    if with_jaccard:
        frame = inject.with_jaccard_column(frame)
    copies = frame.clear()
    if positions.size:
        if cfg.near > 0:
            made = pl.concat(list(pieces), how="vertical").sort(_J)
            edit, jac = made.get_column(_EDIT).to_numpy(), made.get_column(_JAC).to_numpy()
            copies = made.drop(_J, _EDIT, _JAC)
        else:
            pool = pl.concat(list(pieces), how="vertical").sort(_POOL)
            copies = pool[np.searchsorted(pool.get_column(_POOL).to_numpy(), copy_pool)].drop(_POOL)
            edit, jac = np.zeros(k.size, dtype=np.float32), np.ones(k.size, dtype=np.float32)
        copies = inject.label_copies(copies, k, edit, jac, with_jaccard)
    out = inject.place(frame, copies, positions, cfg.append)
    staged = target.stage(out, stem)
    copy_rows = int((out.get_column(COPY_INDEX) > 0).sum())
    return (staged, copy_rows, *_hash_split(out.get_column(SOURCE_ID).unique(), buckets))


def _hash_split(values: pl.Series, parts: int) -> list[pl.Series]:
    bucket = (values.hash(seed=0) % parts).to_numpy().astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    cuts = np.searchsorted(bucket[order], np.arange(parts + 1))
    return [values[order[cuts[b] : cuts[b + 1]]] for b in range(parts)]


@ray.remote
def _count_distinct(*pieces: pl.Series) -> int:
    return int(pl.concat(list(pieces)).n_unique())


def _multicast(rows: dict[int, Any], home: np.ndarray, dest: np.ndarray, pool: np.ndarray) -> dict[int, Refs]:
    """Send pool rows to the tasks that need them: each (dest, pool index) pair once, from its home part.

    Args:
        rows: Part -> its pool rows (a ref to a frame sorted by pool index).
        home: Part holding each pool document.
        dest: Destination of each wanted row (several pairs may repeat).
        pool: Pool index of each wanted row.

    Returns:
        Destination -> refs of the frames sent to it.
    """
    h = home[pool]
    o = np.lexsort((pool, dest, h))
    h, d, q = h[o], dest[o], pool[o]
    first = np.ones(o.size, dtype=bool)
    first[1:] = (h[1:] != h[:-1]) | (d[1:] != d[:-1]) | (q[1:] != q[:-1])
    h, d, q = h[first], d[first], q[first]
    out: dict[int, Refs] = {}
    # One routing task per home part, with one return per destination it feeds.
    for lo, hi in _runs(h):
        d_runs = _runs(d[lo:hi])
        dests = [int(d[lo + a]) for a, _ in d_runs]
        wanted = [q[lo + a : lo + b] for a, b in d_runs]
        sent: Any = _route.options(num_returns=len(dests)).remote(rows[int(h[lo])], wanted)
        for dst, ref in zip(dests, [sent] if len(dests) == 1 else sent, strict=True):
            out.setdefault(dst, []).append(ref)
    return out


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """The [lo, hi) ranges of equal neighbours in VALUES."""
    cuts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1, [values.size]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]


# -- duplicate ----------------------------------------------------------------------------------


def build(
    source: Dataset, cfg: DuplicateConfig, *, address: str | None = None, tracker: Tracker = NULL_TRACKER
) -> Callable[[PartWriter], dict[str, Any]]:
    """`duplicate.op.duplicate`'s build function on a Ray cluster: the same rows, files, pool.parquet, stats.

    Ray is started only when the function runs, so a version that is up to date never starts it.

    Args:
        source: The version to duplicate into (its store is a folder every Ray worker mounts, or an object store).
        cfg: The duplication.
        address: The Ray cluster (see `datadiet.engine.ray.connect`).
        tracker: Progress.

    The function raises UsageError as the local engine does (empty dataset, pool too large, `--doc`
    not an original).
    """

    def run(writer: PartWriter) -> dict[str, Any]:
        if source.rows == 0:
            inject.plan_positions(0, np.zeros(0, dtype=np.int64), cfg)  # raises the local engine's error
        cpus = connect(address)
        return _duplicate(writer, source, cfg, cpus, tracker)

    return run


def _duplicate(
    writer: PartWriter, source: Dataset, cfg: DuplicateConfig, cpus: int, tracker: Tracker
) -> dict[str, Any]:
    parts = source.part_sources()  # read by the workers where the store keeps them
    near = cfg.near > 0
    lay, plan = _plan(parts, cfg, tracker)  # 1. meta, and the plan on the driver
    with_jaccard = near or JACCARD_TO_SOURCE in parts[0].schema().names
    pool = _read_pool(lay, plan, cfg, with_jaccard, tracker)  # 2. pool rows, ids, word counts, vocabulary

    # Where every copy lands: output task (input part) and row of its chunk.
    bounds = inject.chunk_bounds(lay.part_rows, plan, cfg.append)
    dest = np.searchsorted(bounds, plan.copy_pos, side="right") - 1

    # 3. the copies' rows: pool rows routed to the output tasks, or edited in edit tasks and sent there.
    n_copies = plan.copy_pool.size
    edit = np.zeros(n_copies, dtype=np.float32)
    jac = np.ones(n_copies, dtype=np.float32)
    if n_copies and near:
        incoming, edit, jac = _near_copies(
            cfg, plan, pool.lengths, pool.home, pool.rows, pool.shares, dest, cpus, tracker
        )
    elif n_copies:
        incoming = _multicast(pool.rows, pool.home, dest, plan.copy_pool)
    else:
        incoming = {}

    # 4. write: one output task per input part; the driver adopts their files in order.
    results, copy_rows, unique = _write_chunks(
        writer, lay, cfg, plan, pool.k, with_jaccard, bounds, dest, incoming, cpus, tracker
    )
    adopt_all(writer, results)
    writer.write_file(POOL_FILE, inject.pool_file_bytes(inject.pool_table(pool.ids, plan.copy_pool)))
    return inject.summary_stats(
        cfg,
        n=lay.n,
        rows_out=plan.rows_out,
        pool_ids=pool.ids,
        copy_pool=plan.copy_pool,
        unique_documents=unique,
        copy_rows=copy_rows,
        edit=edit,
        jaccard=jac,
    )


@dataclass(frozen=True)
class _Layout:
    """The input's parts as the driver sees them: sources, row counts and global start of each."""

    parts: list[PartSource]
    part_rows: list[int]
    starts: np.ndarray
    n: int
    has_copies: bool  # some part already holds copies: new copy numbers continue from them


def _plan(parts: list[PartSource], cfg: DuplicateConfig, tracker: Tracker) -> tuple[_Layout, DuplicationPlan]:
    """Stage 1: each part's rows, originals and fixed documents; the plan drawn as the local engine draws it."""
    names = inject.fixed_docs(cfg)
    metas = get_all([_meta.remote(p, names) for p in parts], tracker, "Planning (ray)")
    part_rows = [m[0] for m in metas]
    starts = np.concatenate([[0], np.cumsum(part_rows)]).astype(np.int64)
    n = int(starts[-1])
    originals = np.concatenate(
        [
            (np.arange(r, dtype=np.int64) if m[1] is None else m[1]) + s
            for m, r, s in zip(metas, part_rows, starts[:-1], strict=True)
        ]
    )
    # Each fixed id's first row over the parts in order, as the local engine finds it.
    docs = [
        next(((int(starts[t]) + hit[0], hit[1]) for t, m in enumerate(metas) if (hit := m[2][i]) is not None), None)
        for i in range(len(names))
    ]
    plan = inject.plan_positions(n, originals, cfg, docs)
    return _Layout(parts, part_rows, starts, n, any(m[1] is not None for m in metas)), plan


@dataclass(frozen=True)
class _Pool:
    """The pool as the later stages need it: refs to its rows per home part, ids, word counts, copy numbers."""

    rows: dict[int, Any]
    shares: Refs
    home: np.ndarray
    ids: pl.Series
    lengths: np.ndarray
    k: np.ndarray


def _read_pool(
    lay: _Layout, plan: DuplicationPlan, cfg: DuplicateConfig, with_jaccard: bool, tracker: Tracker
) -> _Pool:
    """Stage 2: the parts holding pool documents extract them (and their vocabulary shares); copy numbers."""
    near, parts, starts = cfg.near > 0, lay.parts, lay.starts
    p = plan.pool_pos.size
    home = np.searchsorted(starts, plan.pool_pos, side="right") - 1
    sample = vocab_sample(lay.n, cfg.seed) if near else np.zeros(0, dtype=np.int64)
    sample_home = np.searchsorted(starts, sample, side="right") - 1
    rows: dict[int, Any] = {}
    infos: dict[int, Any] = {}
    shares: Refs = []
    for t in np.unique(np.concatenate([home, sample_home])).tolist():
        mine = np.flatnonzero(home == t)
        local_sample = sample[sample_home == t] - starts[t]
        refs: Any = _extract.remote(parts[t], plan.pool_pos[mine] - starts[t], mine, local_sample, with_jaccard, near)
        rows[t], infos[t] = refs[0], refs[1]
        shares.append(refs[2])
    pool_ids_parts: list[pl.Series] = []
    lengths = np.zeros(p, dtype=np.int64)
    pool_of = np.zeros(0, dtype=np.int64)
    for idx, ids, counts in get_all(list(infos.values()), tracker, "Reading the pool (ray)"):
        pool_of = np.concatenate([pool_of, idx])
        pool_ids_parts.append(ids)
        if near:
            lengths[idx] = counts
    pool_ids = pl.concat(pool_ids_parts)[np.argsort(pool_of)]  # P >= 1
    base = np.zeros(p, dtype=np.int64)
    if lay.has_copies:
        ids_ref = ray.put(pool_ids)
        for idx, top in get_all([_base.remote(part, ids_ref) for part in parts], tracker, "Copy numbers (ray)"):
            np.maximum.at(base, idx, top)
    return _Pool(rows, shares, home, pool_ids, lengths, inject.copy_numbers(base, plan.copy_pool, p))


def _write_chunks(
    writer: PartWriter,
    lay: _Layout,
    cfg: DuplicateConfig,
    plan: DuplicationPlan,
    k: np.ndarray,
    with_jaccard: bool,
    bounds: np.ndarray,
    dest: np.ndarray,
    incoming: dict[int, Refs],
    cpus: int,
    tracker: Tracker,
) -> tuple[list[Any], int, int]:
    """Stage 4: one output task per input part; its staged files, and the copy rows and distinct sources."""
    parts = lay.parts
    by_dest = np.argsort(dest, kind="stable")  # copy order within each output task
    cuts = np.searchsorted(dest[by_dest], np.arange(len(parts) + 1))
    count_parts = max(1, min(len(parts), COUNT_PARTS_PER_CPU * cpus))
    written, distinct = [], []
    target = writer.stage_target()
    for t, part in enumerate(parts):
        js = by_dest[cuts[t] : cuts[t + 1]]
        outs = _write_duplicate.options(num_returns=2 + count_parts).remote(
            part,
            target,
            stage_stem(t),
            cfg,
            with_jaccard,
            plan.copy_pos[js] - bounds[t],
            k[js],
            plan.copy_pool[js],
            count_parts,
            *incoming.get(t, []),
        )
        written.append(outs[:2])
        distinct.append(outs[2:])
    results = get_all([w[0] for w in written], tracker, "Writing (ray)")
    copy_rows = sum(ray.get([w[1] for w in written]))
    unique = sum(ray.get([_count_distinct.remote(*[d[b] for d in distinct]) for b in range(count_parts)]))
    return results, copy_rows, unique


def _near_copies(
    cfg: DuplicateConfig,
    plan: inject.DuplicationPlan,
    lengths: np.ndarray,
    home: np.ndarray,
    rows: dict[int, Any],
    shares: Refs,
    dest: np.ndarray,
    cpus: int,
    tracker: Tracker,
) -> tuple[dict[int, Refs], np.ndarray, np.ndarray]:
    """Edit the near copies in Ray tasks, the local engine's blocks and streams.

    Returns:
        Output task -> refs of its copy rows; the edit fractions and Jaccards in copy order.
    """
    order, sources, blocks = edit_plan(lengths, plan.copy_pool)
    vocab = _merge_vocab.remote(*shares)
    cells = int(lengths[sources].sum())
    n_tasks = min(len(blocks), max(TASKS_PER_CPU * cpus, math.ceil(cells / EDIT_TASK_CELLS)))
    groups = np.linspace(0, len(blocks), n_tasks + 1).round().astype(np.int64)
    spans = [(int(a), int(b)) for a, b in itertools.pairwise(groups) if b > a]
    row_lo = np.array([blocks[a][0] for a, _ in spans], dtype=np.int64)
    # Edit task of each edit row, then the pool rows each edit task needs.
    task_of_row = np.searchsorted(row_lo, np.arange(sources.size), side="right") - 1
    pool_in = _multicast(rows, home, task_of_row, sources)
    incoming: dict[int, Refs] = {}
    stats_refs = []
    for g, (a, b) in enumerate(spans):
        lo, hi = blocks[a][0], blocks[b - 1][1]
        copies = order[lo:hi]
        dests, local_dest = np.unique(dest[copies], return_inverse=True)
        outs = _edit.options(num_returns=dests.size + 1).remote(
            vocab,
            sources[lo:hi],
            [(x - lo, y - lo) for x, y in blocks[a:b]],
            a,
            cfg,
            copies,
            local_dest.reshape(-1),
            int(dests.size),
            *pool_in[g],
        )
        for d, ref in zip(dests.tolist(), outs[:-1], strict=True):
            incoming.setdefault(d, []).append(ref)
        stats_refs.append(outs[-1])
    parts = get_all(stats_refs, tracker, "Editing near copies (ray)")
    inverse = np.empty(order.size, dtype=np.int64)
    inverse[order] = np.arange(order.size, dtype=np.int64)
    edit = np.concatenate([e for e, _ in parts])[inverse]
    jac = np.concatenate([j for _, j in parts])[inverse]
    return incoming, edit, jac


@ray.remote
def _merge_vocab(*shares: pl.Series) -> pl.Series:
    return merge_vocab(list(shares))
