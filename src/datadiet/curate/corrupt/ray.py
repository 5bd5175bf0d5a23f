"""corrupt's Ray build: `curate corrupt --engine ray`, with versions identical to the local engine's.

    curate corrupt REF --kind typos|shuffle|truncate|mix --rate R [--from OTHER] --engine ray [--address A]

The driver draws the row plan (`build.plan_rows`: which rows truncate or mix act on and, for mix,
which document of OTHER each receives) from the row counts alone, as the local engine does, and
cuts the rows into the local engine's writes (`build.write_spans`: each input part's end rounded
down to a block of 256 rows). Output task t reads its rows where the store keeps them (its part,
less the rows of its last unfinished block, plus the few rows the previous part left over),
corrupts them with the local `build.corrupt_frame` (randomness keyed by row number, so the bytes
are the local ones) and stages them; the driver adopts the staged files in order, so the
Parquet files are byte-identical to the local engine's.

For mix, one task per part of OTHER sends each output task the documents it receives, so no row
passes through the driver's machine.

Invoked by `datadiet.curate.corrupt.op.corrupt(..., engine="ray")`, which imports this module
only then and commits the version whose build function `build` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import ray

from datadiet.curate.corrupt.build import RowPlan, Tally, corrupt_frame, plan_rows, write_spans
from datadiet.engine.ray import adopt_all, connect, get_all, stage_stem

if TYPE_CHECKING:
    from datadiet.curate.corrupt.op import CorruptConfig
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, PartSource, PartWriter, Staged, StageTarget

Refs = list[Any]  # Ray object refs

# -- tasks ----------------------------------------------------------------------------------------


@ray.remote
def _pick(source: PartSource, wanted: list[np.ndarray]) -> Any:
    """One part of OTHER -> for each destination, its rows WANTED (`id`, `text`), in that order."""
    frame = source.read([ID, TEXT])
    out = [frame[w] for w in wanted]
    return out[0] if len(out) == 1 else tuple(out)


@ray.remote
def _write_corrupt(
    pieces: list[tuple[PartSource, int, int]],
    target: StageTarget,
    stem: str,
    cfg: CorruptConfig,
    first_row: int,
    plan: RowPlan,
    other_ref: str | None,
    *incoming: pl.DataFrame,
) -> tuple[list[Staged], Tally]:
    """Rows FIRST_ROW… (slices of input parts) -> corrupted, staged in TARGET; and their counters.

    Args:
        pieces: (part, offset, length) of the rows, in order.
        target: Where the version's parts are staged (`PartWriter.stage_target`).
        stem: Name stem of the staged files.
        cfg: The corruption.
        first_row: The dataset row of the first one.
        plan: The dataset's row plan, cut to these rows; for mix `other` indexes the incoming rows.
        other_ref: For mix: OTHER's full ref, written into `corrupt_from`.
        incoming: For mix: the rows of OTHER these rows receive, one frame per part of OTHER.
    """
    frames = [source.read(offset=offset, length=length) for source, offset, length in pieces]
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    other = pl.concat(list(incoming), how="vertical") if incoming else None
    if other is None and cfg.kind == "mix":  # none of these rows is replaced
        other = pl.DataFrame(schema={ID: pl.String, TEXT: pl.String})
    tally = Tally()
    # One thread: Ray gives the task one CPU, and its other tasks the others.
    out = corrupt_frame(frame, cfg, first_row, plan, other, other_ref, tally, workers=1)
    return target.stage(out, stem), tally


# -- corrupt --------------------------------------------------------------------------------------


def build(
    source: Dataset,
    cfg: CorruptConfig,
    other: Dataset | None = None,
    *,
    address: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Callable[[PartWriter], dict[str, Any]]:
    """`corrupt.op.corrupt`'s build function on a Ray cluster: the same rows, Parquet files and stats.

    Ray is started only when the function runs, so a version that is up to date never starts it.

    Args:
        source: The version to corrupt (its store is a folder every Ray worker mounts, or an object store).
        cfg: The corruption.
        other: For mix: the dataset whose documents are mixed in (resolved and checked by `op`).
        address: The Ray cluster (see `datadiet.engine.ray.connect`).
        tracker: Progress.
    """

    def run(writer: PartWriter) -> dict[str, Any]:
        parts = source.part_sources()  # read by the workers where the store keeps them
        part_rows = [p.rows for p in parts]
        starts = np.concatenate([[0], np.cumsum(part_rows)]).astype(np.int64)
        spans = write_spans(part_rows)
        plan = plan_rows(int(starts[-1]), other.rows if other is not None else 0, cfg.kind, cfg.rate, cfg.seed)
        connect(address)
        cuts = [np.searchsorted(plan.rows, [lo, hi]) for lo, hi in spans]
        incoming, local = _route_other(other, plan, cuts) if other is not None else ({}, {})
        target = writer.stage_target()
        refs = []
        for t, ((lo, hi), (a, b)) in enumerate(zip(spans, cuts, strict=True)):
            mine = RowPlan(plan.rows[a:b], local.get(t, plan.other[a:b]), plan.round[a:b])
            refs.append(
                _write_corrupt.remote(
                    _pieces(parts, starts, lo, hi),
                    target,
                    stage_stem(t),
                    cfg,
                    lo,
                    mine,
                    other.ref if other is not None else None,
                    *incoming.get(t, []),
                )
            )
        results = get_all(refs, tracker, f"Corrupting ({cfg.kind} {cfg.rate:g}, ray)")
        adopt_all(writer, [staged for staged, _ in results])
        tally = Tally()
        for _, counted in results:
            tally.add(counted)
        # The tasks counted OTHER's documents by their local numbers: the plan has the real ones.
        tally.other_used = set(np.unique(plan.other).tolist())
        return tally.stats(cfg, other.rows if other is not None else None)

    return run


def _pieces(parts: list[PartSource], starts: np.ndarray, lo: int, hi: int) -> list[tuple[PartSource, int, int]]:
    """(part, offset, length) of the dataset rows [LO, HI), in order."""
    out = []
    for i in range(int(np.searchsorted(starts, lo, side="right")) - 1, len(parts)):
        a, b = max(lo, int(starts[i])), min(hi, int(starts[i + 1]))
        if a >= hi:
            break
        if b > a:
            out.append((parts[i], a - int(starts[i]), b - a))
    return out


def _route_other(
    other: Dataset, plan: RowPlan, cuts: list[np.ndarray]
) -> tuple[dict[int, Refs], dict[int, np.ndarray]]:
    """Send each output task the documents of OTHER it receives: one `_pick` task per part of OTHER.

    Returns:
        Output task -> refs of its incoming frames (by part of OTHER, ascending), and output task
        -> where each of its chosen rows' document is in their concatenation.
    """
    parts = other.part_sources()
    starts = np.concatenate([[0], np.cumsum([p.rows for p in parts])]).astype(np.int64)
    wanted: dict[int, list[tuple[int, np.ndarray]]] = {}
    local: dict[int, np.ndarray] = {}
    for t, (a, b) in enumerate(cuts):
        rows = plan.other[a:b]
        home = np.searchsorted(starts, rows, side="right") - 1
        order = np.argsort(home, kind="stable")  # the concatenation holds rows[order]
        local[t] = np.argsort(order).astype(np.int64)
        for p in np.unique(home).tolist():
            wanted.setdefault(p, []).append((t, rows[order][home[order] == p] - starts[p]))
    incoming: dict[int, Refs] = {}
    for p in sorted(wanted):
        dests = wanted[p]
        sent: Any = _pick.options(num_returns=len(dests)).remote(parts[p], [w for _, w in dests])
        for (t, _), ref in zip(dests, [sent] if len(dests) == 1 else sent, strict=True):
            incoming.setdefault(t, []).append(ref)
    return incoming, local
