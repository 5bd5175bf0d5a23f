"""`curate dedupe`: remove exact and near-duplicate documents, and explain what was removed.

    curate dedupe REF [--method exact|minhash] [--threshold 0.8] [--num-perm 128] [--ngram 5]
                      [--shingle word|char] [--bands B --rows R] [--keep first|longest|random]
                      [--verify] [--against OTHER_REF] [--seed S] [--name NAME]
    curate clusters REF [--top 10] [--id ID]

Stages, each timed in the manifest's stats:

1. sign (partition-local, in worker processes): read a slice of a Parquet part, normalise, digest
   the normalised text (exact key), hash shingles, compute MinHash signatures and band keys;
2. exact: group by digest; every document is linked to the first document with its digest;
3. candidates: LSH over one representative per digest, band by band in polars (`cluster.band_edges`);
4. filter: keep candidate edges whose signatures' estimated Jaccard is >= threshold;
5. verify (`--verify`): keep only edges whose exact shingle-set Jaccard is >= threshold;
6. cluster: connected components of the kept edges, one keeper per component (`--keep`);
7. write: the input rows minus the removed ones, part by part, plus `clusters.parquet`.

With `--against OTHER`, stages 2-5 only look for pairs (document of REF, document of OTHER), and
the documents of REF with such a pair are removed; OTHER is not changed.

The package, one file per job: `op.py` (this: the parameters' resolution and the one commit),
`normalize.py` / `minhash.py` / `cluster.py` (text normalisation and shingles, signatures, LSH
banding and union-find), `find.py` (stages 1-6 on this machine), `output.py` (clusters.parquet and
the manifest counters both engines write), `explain.py` (`curate clusters`), `ray.py` (stages 1-7
on a Ray cluster, imported only for `--engine ray`).

Library use (the CLI is a thin wrapper)::

    from datadiet.curate.dedupe.op import dedupe
    from datadiet.curate.dedupe.explain import explain_clusters
    from datadiet.curate.dedupe.minhash import MinhashConfig
    commit = dedupe(store, "tinystories", MinhashConfig(threshold=0.8))
    report = explain_clusters(commit.dataset, top=10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from datadiet.curate.dedupe.find import (
    Found,
    _store_lookup,
    find_contaminated,
    find_duplicates,
    sign_datasets,
)
from datadiet.curate.dedupe.minhash import (
    MinhashConfig,
)
from datadiet.curate.dedupe.output import (
    CLUSTER_ID,
    CLUSTERS_FILE,
    CLUSTERS_SCHEMA,
    JACCARD_ESTIMATE,
    JACCARD_EXACT,
    KEEPER_ID,
    KEPT,
    POSITION,
    summary_stats,
)
from datadiet.engine import check_engine, require_ray
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import Timer
from datadiet.schema import ID
from datadiet.store import Commit, Dataset, PartWriter, Store

OPERATION = "dedupe"


def _read_ids(datasets: Sequence[Dataset]) -> pl.Series:
    ids = [ds.scan().select(pl.col(ID).cast(pl.String)).collect()[ID] for ds in datasets]
    return pl.concat(ids) if ids else pl.Series(ID, [], dtype=pl.String)


def _clusters_frame(found: Found, ids: pl.Series, keeper_ids: pl.Series, against: bool) -> pl.DataFrame:
    n = found.removed.size
    if against:
        rows = np.flatnonzero(found.removed)
        cluster_id = found.keeper[rows] - n
        kept = np.zeros(rows.size, dtype=bool)
        keeper_pos = found.keeper[rows] - n
    else:
        sizes = np.bincount(found.label, minlength=n) if n else np.zeros(0, dtype=np.int64)
        rows = np.flatnonzero(sizes[found.label] > 1) if n else np.zeros(0, dtype=np.int64)
        cluster_id = found.label[rows]
        kept = ~found.removed[rows]
        keeper_pos = found.keeper[rows]
    est = found.estimate[rows]
    exj = found.exact_jaccard[rows]
    frame = pl.DataFrame(
        {
            ID: ids.gather(rows) if rows.size else pl.Series(ID, [], dtype=pl.String),
            POSITION: rows.astype(np.int64),
            CLUSTER_ID: cluster_id.astype(np.int64),
            KEPT: kept,
            KEEPER_ID: keeper_ids.gather(keeper_pos) if rows.size else pl.Series(KEEPER_ID, [], dtype=pl.String),
            JACCARD_ESTIMATE: pl.Series(est, dtype=pl.Float64).fill_nan(None),
            JACCARD_EXACT: pl.Series(exj, dtype=pl.Float64).fill_nan(None),
        },
        schema=CLUSTERS_SCHEMA,
    )
    return frame.sort(CLUSTER_ID, POSITION)


def version_params(cfg: MinhashConfig, against: str | None) -> dict[str, Any]:
    """The parameters a dedupe version's id is made of: CFG's (bands, rows resolved) and `--against`'s full ref."""
    return {**cfg.params(), "against": against}


def dedupe(
    store: Store,
    ref: str,
    cfg: MinhashConfig,
    name: str | None = None,
    against: str | None = None,
    *,
    workers: int | None = None,
    tracker: Tracker = NULL_TRACKER,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Write a new version of REF without its duplicates (or, with `against`, without REF's near copies of OTHER).

    Args:
        store: The store holding REF.
        ref: The version to deduplicate ("name" or "name@version").
        cfg: The parameters; all of them (bands and rows resolved) are recorded and form the version id.
        name: Name of the new version; default REF's name.
        against: Another version; REF's documents that duplicate any of its documents are removed.
        workers: Signing processes (default: every core); does not change the result.
        tracker: Progress.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.curate.dedupe.ray`);
            the result, version id included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").

    Returns:
        The new version (`up_to_date` when the same dedupe of the same input already exists).
        Its manifest stats: docs_in, docs_out, removed_exact, removed_near, clusters,
        largest_cluster, candidate_pairs, rejected_by_estimate, rejected_by_verification, seconds
        (per stage). Its `clusters.parquet` lists every member of every cluster.
    """
    source = store.resolve(ref)
    other = store.resolve(against) if against is not None else None
    if other is not None and other.ref == source.ref:
        raise UsageError(f"--against {against} is the version being deduplicated; name a different version")
    params = version_params(cfg, other.ref if other is not None else None)
    parents = [source.ref] + ([other.ref] if other is not None else [])
    if check_engine(engine) == "ray":
        require_ray()
        from datadiet.curate.dedupe import ray as ray_build

        build = ray_build.build(source, cfg, other=other, address=address, tracker=tracker)
    else:
        build = _local_build(source, cfg, other=other, workers=workers, tracker=tracker)
    return store.commit(name or source.name, operation=OPERATION, params=params, parents=parents, build=build)


def _local_build(
    source: Dataset, cfg: MinhashConfig, *, other: Dataset | None, workers: int | None, tracker: Tracker
) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function of a dedupe on this machine (stages 1-7; `find.py` holds 1-6)."""
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (1, 1)

    def find(timer: Timer) -> Found:
        # A function of its own so the signatures (0.5 KB per document) are freed before writing.
        inputs = [source] + ([other] if other is not None else [])
        with timer.stage("sign"):
            signed = sign_datasets(inputs, cfg, bands, rows, workers=workers, tracker=tracker)
        lookup = _store_lookup(inputs, cfg) if cfg.verify else None
        if other is None:
            return find_duplicates(signed, cfg, lookup=lookup, tracker=tracker, timer=timer)
        n = source.rows
        mine, theirs = signed.split(n)
        del signed
        return find_contaminated(mine, theirs, cfg, lookup=lookup, tracker=tracker, timer=timer)

    def build(writer: PartWriter) -> dict[str, Any]:
        timer = Timer()
        n = source.rows
        found = find(timer)
        with timer.stage("write"):
            ids = _read_ids([source])
            keeper_ids = _read_ids([other]) if other is not None else ids
            _clusters_frame(found, ids, keeper_ids, other is not None).write_parquet(
                writer.dir / CLUSTERS_FILE, compression="zstd"
            )
            offset = 0
            with tracker.task("Writing", total=len(source.parts)) as task:
                for frame in source.iter_frames():
                    keep = ~found.removed[offset : offset + frame.height]
                    offset += frame.height
                    writer.write(frame.filter(pl.Series(keep)))
                    task.advance()
        return summary_stats(cfg, n, int(found.removed.sum()), int(found.exact.sum()), found.stats, timer.seconds)

    return build
