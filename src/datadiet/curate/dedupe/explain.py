"""`curate clusters`: explain a dedupe version from its clusters.parquet — the largest clusters,
and for any document its keeper, similarity and a word diff.

    report = explain_clusters(commit.dataset, top=10)
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from datadiet.curate.dedupe.op import OPERATION
from datadiet.curate.dedupe.output import (
    CLUSTER_ID,
    CLUSTERS_FILE,
    JACCARD_ESTIMATE,
    JACCARD_EXACT,
    KEEPER_ID,
    KEPT,
)
from datadiet.errors import DatadietError, UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, Store

# -- explaining clusters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster (or, for `--against`, one matched document of OTHER) of a dedupe version."""

    cluster_id: int
    size: int
    removed: int
    keeper_id: str
    min_jaccard_estimate: float | None
    member_ids: list[str]
    keeper_preview: str


@dataclass(frozen=True)
class Match:
    """A document of the input and the kept document it was clustered with.

    `diff` is the word-level diff from the keeper to this document: ("equal", words) in both,
    ("delete", words) only in the keeper, ("insert", words) only in this document.
    """

    id: str
    kept: bool
    cluster_id: int
    keeper_id: str
    jaccard_estimate: float | None
    jaccard_exact: float | None
    text: str
    keeper_text: str
    diff: list[tuple[str, str]]


@dataclass(frozen=True)
class ClusterReport:
    """What `curate clusters` shows."""

    ref: str
    parent: str
    against: str | None
    params: dict[str, Any]
    stats: dict[str, Any]
    clusters: int
    top: list[ClusterSummary]
    match: Match | None
    note: str | None


def word_diff(keeper: str, text: str) -> list[tuple[str, str]]:
    """Word-level diff from `keeper` to `text` as (op, words) segments, op in equal/delete/insert."""
    a, b = keeper.split(), text.split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", " ".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", " ".join(b[j1:j2])))
    return out


def _texts_by_id(dataset: Dataset, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    frame = (
        dataset.scan()
        .select(pl.col(ID).cast(pl.String), pl.col(TEXT).fill_null(""))
        .filter(pl.col(ID).is_in(list(ids)))
        .collect()
    )
    return dict(zip(frame[ID].to_list(), frame[TEXT].to_list(), strict=True))


def explain_clusters(
    dataset: Dataset, top: int = 10, id: str | None = None, *, store: Store | None = None
) -> ClusterReport:
    """The largest clusters of a dedupe version and, for one document, the kept document it matched.

    Args:
        dataset: A version written by `dedupe`.
        top: How many of the largest clusters to list (>= 0).
        id: A document id of the deduplicated input to explain (removed or kept).
        store: The store holding the version's parents (default: the store `dataset` lies in).

    Returns:
        The report; `match` is None when no `id` was asked or it is in no cluster (see `note`).
    """
    if not isinstance(top, int) or top < 0:
        raise UsageError(f"--top must be a non-negative integer, not {top!r}")
    path = dataset.path / CLUSTERS_FILE
    if dataset.manifest.operation != OPERATION or not path.is_file():
        raise UsageError(
            f"{dataset.ref} was not written by `curate dedupe` (no {CLUSTERS_FILE}); run `curate dedupe` first"
        )
    store = store or dataset.store or Store(dataset.folder.parents[2])
    parents = dataset.manifest.parents
    against = dataset.manifest.params.get("against")
    try:
        parent = store.resolve(parents[0])
        keeper_source = store.resolve(parents[1]) if against and len(parents) > 1 else parent
    except UsageError as exc:
        raise DatadietError(f"the input of {dataset.ref} is no longer in the store ({exc})") from exc
    frame = pl.read_parquet(path, glob=False)
    groups = (
        frame.group_by(CLUSTER_ID)
        .agg(
            pl.len().alias("size"),
            (~pl.col(KEPT)).sum().alias("removed"),
            pl.col(KEEPER_ID).first(),
            pl.col(JACCARD_ESTIMATE).min().alias("min_est"),
            pl.col(ID).head(5).alias("members"),
        )
        .sort(["size", CLUSTER_ID], descending=[True, False])
    )
    head = groups.head(top)
    previews = _texts_by_id(keeper_source, head[KEEPER_ID].to_list())
    summaries = [
        ClusterSummary(
            cluster_id=int(r[CLUSTER_ID]),
            # With --against the matched OTHER document is not a row, so count it in.
            size=int(r["size"]) + (1 if against else 0),
            removed=int(r["removed"]),
            keeper_id=str(r[KEEPER_ID]),
            min_jaccard_estimate=r["min_est"],
            member_ids=list(r["members"]),
            keeper_preview=" ".join(previews.get(str(r[KEEPER_ID]), "").split())[:100],
        )
        for r in head.iter_rows(named=True)
    ]
    match, note = _explain_one(frame, id, parent, keeper_source, dataset.ref) if id is not None else (None, None)
    return ClusterReport(
        ref=dataset.ref,
        parent=parent.ref,
        against=against,
        params=dict(dataset.manifest.params),
        stats=dict(dataset.manifest.stats),
        clusters=groups.height,
        top=summaries,
        match=match,
        note=note,
    )


def _explain_one(
    frame: pl.DataFrame, id: str, parent: Dataset, keeper_source: Dataset, ref: str
) -> tuple[Match | None, str | None]:
    """Document ID's cluster, keeper, similarity and word diff; or a note that it was in no cluster."""
    row = frame.filter(pl.col(ID) == id)
    if row.height == 0:
        if not _texts_by_id(parent, [id]):
            raise UsageError(f"no document with id {id!r} in {parent.ref}; ids are listed in {ref}'s clusters")
        return None, f"{id} is in no cluster: it had no duplicate and was kept"
    r = row.row(0, named=True)
    text = _texts_by_id(parent, [id]).get(id, "")
    keeper_text = _texts_by_id(keeper_source, [r[KEEPER_ID]]).get(r[KEEPER_ID], "")
    match = Match(
        id=id,
        kept=bool(r[KEPT]),
        cluster_id=int(r[CLUSTER_ID]),
        keeper_id=str(r[KEEPER_ID]),
        jaccard_estimate=r[JACCARD_ESTIMATE],
        jaccard_exact=r[JACCARD_EXACT],
        text=text,
        keeper_text=keeper_text,
        diff=word_diff(keeper_text, text),
    )
    return match, None
