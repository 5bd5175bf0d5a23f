"""Random, nested subsets of a dataset: `curate subset REF (--fraction F | --docs N | --tokens T) [--seed S]`.

One seeded permutation of the rows is drawn (numpy's Generator, never Python's hash()), and a
subset is a prefix of it: the `k` rows ranked first. Subsets of one dataset with one seed are
therefore nested (the 25% subset lies inside the 50% one), so that a size effect is not confounded
with which stories were drawn. The kept rows stay in their original order, written one
`PartWriter.write` per input part (its kept rows), so `--engine ray`, whose tasks each filter and
write one input part, gives byte-identical parts (`ray.py`).

The package: `op.py` (this: `SubsetConfig` and the one commit), `select.py` (the permutation, the
size, the keep mask, the stats), `ray.py` (the Ray build).

Sizes:

* `--fraction F` (0 < F <= 1): k = round(F·N) rows (halves round up), at least 1.
* `--docs N`: exactly N rows (1 <= N <= the dataset's size).
* `--tokens T`: the shortest prefix whose estimated tokens reach T, with tokens estimated as
  characters / 4 (GPT-2-style BPE averages about 4 characters per token on English stories); the
  estimate is integer arithmetic on character counts (prefix characters >= 4·T), so it is exact and
  deterministic.

Library use (`subset_frame` is in `select.py`)::

    frame, stats = subset_frame(frame, SubsetConfig(fraction=0.25, seed=1))
    commit = subset(Store(), "tiny", SubsetConfig(docs=1000))
    commit = subset(Store(), "tiny", SubsetConfig(docs=1000), engine="ray")   # same version, on Ray
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from datadiet.config import Count, Fraction, WholeSeed, schema
from datadiet.curate.subset.select import (
    _subset,
)
from datadiet.engine import check_engine, require_ray
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store, read_parts

OPERATION = "subset"


# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_WORDING = {
    "fraction": {
        "type": "--fraction must be a number, not {value!r}",
        "value": "--fraction must be above 0 and at most 1, not {value}; e.g. --fraction 0.25",
    },
    "docs": {
        "type": "--docs must be a whole number, not {value!r}",
        "greater_than_equal": "--docs must be at least 1, not {value}",
    },
    "tokens": {
        "type": "--tokens must be a whole number, not {value!r}",
        "greater_than_equal": "--tokens must be at least 1, not {value}",
    },
    "seed": {
        "type": "--seed must be a whole number, not {value!r}",
        "greater_than_equal": "--seed must be >= 0, not {value}",
    },
}


@schema(wording=_WORDING)
class SubsetConfig:
    """How large a subset to take; exactly one of `fraction`, `docs`, `tokens` is set.

    Attributes:
        fraction: Share of the documents to keep, in (0, 1].
        docs: Number of documents to keep (>= 1).
        tokens: Estimated number of tokens to keep (>= 1; characters / 4).
        seed: Seed of the permutation the subset is a prefix of.
    """

    fraction: Fraction | None = None
    docs: Count | None = None
    tokens: Count | None = None
    seed: WholeSeed = 0

    def __post_init__(self) -> None:
        # Types and bounds are pydantic's (--fraction 1 becomes 1.0, so it gives the version id of
        # --fraction 1.0); what spans fields is checked here.
        given = [
            n
            for n, v in (("--fraction", self.fraction), ("--docs", self.docs), ("--tokens", self.tokens))
            if v is not None
        ]
        if len(given) != 1:
            raise UsageError(f"give exactly one of --fraction, --docs, --tokens (got {', '.join(given) or 'none'})")

    def to_params(self) -> dict[str, Any]:
        """The parameters as stored in the manifest and hashed into the version id."""
        return asdict(self)


def subset(
    store: Store,
    ref: str,
    cfg: SubsetConfig,
    name: str | None = None,
    tracker: Tracker = NULL_TRACKER,
    *,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Commit a subset of REF as a new version (operation "subset", params = CFG, parent = REF's full ref).

    Args:
        store: The store holding REF and receiving the new version.
        ref: `NAME` or `NAME@VERSION` of the input dataset.
        cfg: The size of the subset and the seed.
        name: Name of the new version; defaults to the input's name (a new version of it).
        tracker: Progress reporting.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.curate.subset.ray`);
            the result, version id and Parquet files included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").

    Returns:
        The commit; `up_to_date` is True when the same subset of the same input already existed.
    """
    on_ray = check_engine(engine) == "ray"  # a wrong --engine is reported before a wrong REF
    source = store.resolve(ref)
    params = cfg.to_params()
    if on_ray:
        require_ray()
        from datadiet.curate.subset import ray as ray_build

        build = ray_build.build(source, cfg, address=address, tracker=tracker)
    else:
        build = _local_build(source, cfg, tracker)
    return store.commit(name or source.name, operation=OPERATION, params=params, parents=[source.ref], build=build)


def _local_build(source: Dataset, cfg: SubsetConfig, tracker: Tracker) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function of a subset on this machine: output chunk t is input part t's kept rows."""

    def build(writer: PartWriter) -> dict[str, Any]:
        with tracker.task(f"Reading {source.ref}", total=None):
            frame, part_rows = read_parts(source)
        out, stats, keep = _subset(frame, cfg, tracker)
        del frame
        kept_before = np.concatenate([[0], np.cumsum(keep)])[np.cumsum([0, *part_rows])]
        with tracker.task("Writing", total=len(part_rows)) as task:
            for lo, hi in itertools.pairwise(kept_before.tolist()):
                writer.write(out.slice(lo, hi - lo))
                task.advance()
        return stats

    return build
