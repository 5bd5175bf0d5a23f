"""`curate stats REF`: a dataset version's statistics, computed once and stored as an artefact of
its own (`stats/<name>/<version>/stats.json`), keyed by the version and the token count.

    ds = stats_version(store, store.resolve("tiny"))       # finds or computes; ds.manifest.stats
    ds = stats_version(store, dataset, engine="ray")        # the same values, on a Ray cluster

The package: `op.py` (this: the one commit), `compute.py` (the statistics on this machine, and
their keys), `ray.py` (the same on a Ray cluster, imported only for `--engine ray`).
"""

from __future__ import annotations

import json
from typing import Any

from datadiet.engine import check_engine, require_ray
from datadiet.eval.stats.compute import dataset_stats
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Dataset, PartWriter, Store

OPERATION = "stats"
KIND = "stats"
STATS_FILE = "stats.json"


def stats_version(
    store: Store,
    ds: Dataset,
    *,
    tokens: int | None = None,
    tracker: Tracker = NULL_TRACKER,
    engine: str = "local",
    address: str | None = None,
) -> Dataset:
    """The statistics of dataset version DS, computed only if not stored yet.

    `engine` "ray" computes them on a Ray cluster (`ray.py`, at `address`); the engine is not part
    of the stored version's parameters, and its values are the local ones (two float sums to
    ~1e-15 relative, see that module).
    """
    if check_engine(engine) == "ray":
        require_ray()
        from datadiet.eval.stats import ray as ray_stats

        def compute() -> dict[str, Any]:
            return ray_stats.dataset_stats(ds, tokens=tokens, address=address, tracker=tracker)

    else:

        def compute() -> dict[str, Any]:
            return dataset_stats(ds.read(), tokens=tokens, tracker=tracker)

    def build(writer: PartWriter) -> dict[str, Any]:
        stats = compute()
        writer.write_file(STATS_FILE, json.dumps(stats, indent=2, default=str).encode())
        return stats

    params = {"tokens": tokens}
    commit = store.commit(ds.name, operation=OPERATION, params=params, parents=[ds.ref], build=build, kind=KIND)
    return commit.dataset
