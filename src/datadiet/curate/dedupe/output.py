"""What a dedupe version holds besides its rows, the same whichever engine built it: the
`clusters.parquet` schema (every member of every cluster) and the manifest counters.

    stats = summary_stats(cfg, n, removed, exact, found, timer.seconds)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from datadiet.curate.dedupe.minhash import (
    MinhashConfig,
)
from datadiet.schema import ID

CLUSTERS_FILE = "clusters.parquet"


# clusters.parquet columns
POSITION = "position"


CLUSTER_ID = "cluster_id"


KEPT = "kept"


KEEPER_ID = "keeper_id"


JACCARD_ESTIMATE = "jaccard_estimate"


JACCARD_EXACT = "jaccard_exact"


CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    ID: pl.String(),
    POSITION: pl.Int64(),
    CLUSTER_ID: pl.Int64(),
    KEPT: pl.Boolean(),
    KEEPER_ID: pl.String(),
    JACCARD_ESTIMATE: pl.Float64(),
    JACCARD_EXACT: pl.Float64(),
}


# Manifest stats of a dedupe version.
STAT_DOCS_IN = "docs_in"
STAT_DOCS_OUT = "docs_out"
STAT_REMOVED = "removed"
STAT_REMOVED_EXACT = "removed_exact"
STAT_REMOVED_NEAR = "removed_near"
STAT_CLUSTERS = "clusters"
STAT_LARGEST_CLUSTER = "largest_cluster"
STAT_CANDIDATE_PAIRS = "candidate_pairs"
STAT_REJECTED_BY_ESTIMATE = "rejected_by_estimate"
STAT_REJECTED_BY_VERIFICATION = "rejected_by_verification"


def counters(**found: Any) -> dict[str, Any]:
    """The candidate counters every find starts from (both engines), with FOUND's entries added."""
    return {STAT_CANDIDATE_PAIRS: 0, STAT_REJECTED_BY_ESTIMATE: 0, STAT_REJECTED_BY_VERIFICATION: 0, **found}


def summary_stats(
    cfg: MinhashConfig, n: int, removed: int, exact: int, found: Mapping[str, Any], seconds: Mapping[str, float]
) -> dict[str, Any]:
    """The manifest stats of a dedupe version (the same whichever engine found the duplicates)."""
    bands, rows = cfg.bands_rows() if cfg.method == "minhash" else (None, None)
    return {
        STAT_DOCS_IN: n,
        STAT_DOCS_OUT: n - removed,
        STAT_REMOVED: removed,
        STAT_REMOVED_EXACT: exact,
        STAT_REMOVED_NEAR: removed - exact,
        **found,
        "bands": bands,
        "rows": rows,
        "seconds": dict(seconds),
    }
