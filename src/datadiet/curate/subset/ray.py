"""subset's Ray build: `curate subset --engine ray`, with versions identical to the local engine's.

    curate subset REF (--fraction F | --docs N | --tokens T) --engine ray [--address auto|HOST:PORT]

The driver draws the seeded permutation and the subset size (for `--tokens` from the
parts' character counts, a first pass); output task t filters part t by its slice of the keep
mask and stages the kept rows.

Workers read the parts where the store keeps them (`Dataset.part_sources`), so no row passes
through the driver's machine.

Invoked by `datadiet.curate.subset.op.subset(..., engine="ray")`, which imports this module only
then and commits the version whose build function `build` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import ray

from datadiet.curate.subset import select as subset_mod
from datadiet.engine.ray import adopt_all, connect, get_all, stage_stem

if TYPE_CHECKING:
    from datadiet.curate.subset.op import SubsetConfig
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import TEXT, conform
from datadiet.store import Dataset, PartSource, PartWriter, Staged, StageTarget

# -- tasks: subset ------------------------------------------------------------------------------


@ray.remote
def _chars(source: PartSource) -> np.ndarray:
    return subset_mod.text_chars(source.read([TEXT]))


@ray.remote
def _write_subset(
    source: PartSource, target: StageTarget, stem: str, keep: np.ndarray
) -> tuple[list[Staged], int, int]:
    """Input part -> its kept rows, staged in TARGET; and its characters in all and in the kept rows."""
    frame = conform(source.read())
    chars = subset_mod.text_chars(frame)
    staged = target.stage(frame.filter(pl.Series(keep)), stem)
    return staged, int(chars.sum()), int(chars[keep].sum())


# -- subset -------------------------------------------------------------------------------------


def build(
    source: Dataset, cfg: SubsetConfig, *, address: str | None = None, tracker: Tracker = NULL_TRACKER
) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function of `subset.op.subset` on a Ray cluster: the same rows, Parquet files and stats.

    Ray is started only when the function runs, so a version that is up to date never starts it.

    Args:
        source: The version to take a subset of (its store is a folder every Ray worker mounts, or an object store).
        cfg: The size of the subset and the seed.
        address: The Ray cluster (see `datadiet.engine.ray.connect`).
        tracker: Progress.

    The function raises UsageError as the local engine does (empty dataset, more docs or tokens
    than it holds).
    """

    def run(writer: PartWriter) -> dict[str, Any]:
        n = source.rows
        if n == 0:
            raise subset_mod.empty_error()
        parts = source.part_sources()  # read by the workers where the store keeps them
        part_rows = [p.rows for p in parts]
        starts = np.concatenate([[0], np.cumsum(part_rows)]).astype(np.int64)
        connect(address)
        order = subset_mod.permutation(n, cfg.seed)
        chars = None
        if cfg.tokens is not None:
            chars = np.concatenate(get_all([_chars.remote(p) for p in parts], tracker, "Counting characters (ray)"))
        k = subset_mod.subset_size(n, cfg, order, chars)
        keep = subset_mod.keep_mask(order, k)
        del order
        target = writer.stage_target()
        refs = [
            _write_subset.remote(part, target, stage_stem(t), keep[starts[t] : starts[t + 1]])
            for t, part in enumerate(parts)
        ]
        results = get_all(refs, tracker, "Writing (ray)")
        adopt_all(writer, [r[0] for r in results])
        return subset_mod.summary_stats(n, k, sum(r[1] for r in results), sum(r[2] for r in results))

    return run
