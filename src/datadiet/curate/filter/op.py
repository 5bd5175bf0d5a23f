"""`curate filter`: keep the documents that pass polars SQL conditions and quality heuristics.

    from datadiet.curate.filter.op import FilterConfig, filter_dataset
    cfg = FilterConfig.from_specs(where=["length(text) >= 200"], rules=["gopher"])
    commit = filter_dataset(store, "ts", cfg)          # a new version of ts; removed.parquet says why

Each input part is measured and written on its own (memory stays one part's), output part t holding
input part t's kept rows. Every removed row is listed in `removed.parquet` with the first condition it
failed (in the order given), all conditions it failed and its measures; the manifest's stats hold a
per-condition table: how many documents failed it, how many it removed first, and how many failed it
alone. The version id hashes the conditions and bounds, so the same filter is found, not rerun.
"""

from __future__ import annotations

from typing import Annotated, Any

import polars as pl
from pydantic import AfterValidator, InstanceOf, Strict

from datadiet.config import schema
from datadiet.curate.filter.rules import RULES, Rule, measure, parse_rule
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID
from datadiet.store import Commit, Dataset, PartWriter, Store

OPERATION = "filter"
REMOVED_FILE = "removed.parquet"
# Bumped when a rule's definition changes, so versions made by other definitions get other ids.
RULES_SCHEME = 1
STAT_ROWS_IN = "rows_in"
STAT_ROWS_OUT = "rows_out"
STAT_REMOVED = "removed"
STAT_CONDITIONS = "conditions"


def _conditions(where: tuple[str, ...]) -> tuple[str, ...]:
    # In order, as given: an empty one is said by the wording below; one that is not SQL by
    # `condition`'s own line (a UsageError, which pydantic lets through), before anything is read.
    for expr in where:
        if not expr.strip():
            raise ValueError("must not be empty")
        condition(expr)
    return where


# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_EMPTY = '--where must not be empty; e.g. --where "length(text) >= 200"'
_WORDING = {
    "where": {
        "tuple_type": "--where must be a list of SQL conditions, not {value!r}",
        "type": _EMPTY,
        "value": _EMPTY,
    },
}


@schema(wording=_WORDING)
class FilterConfig:
    """The conditions a kept document meets: polars SQL `where` expressions, then quality rules.

    Types are pydantic's (`config.schema`); each `where` is parsed when the config is built, so a
    typo fails before anything is read.

    Attributes:
        where: SQL conditions over the dataset's columns (`pl.sql_expr`), e.g. "length(text) >= 200";
            a row where one is false or null is removed.
        rules: Heuristics with their bounds (`rules.RULES`).
    """

    where: Annotated[tuple[Annotated[str, Strict()], ...], AfterValidator(_conditions)] = ()
    rules: tuple[InstanceOf[Rule], ...] = ()

    def __post_init__(self) -> None:
        # What spans fields (or the rules together) is checked here.
        if not self.where and not self.rules:
            raise UsageError("give at least one --where or --rule (see `curate filter --help`)")
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UsageError(f"--rule {dup[0]} is given twice; give each rule once with its bounds")

    @classmethod
    def from_specs(
        cls, where: list[str] | tuple[str, ...] = (), rules: list[str] | tuple[str, ...] = ()
    ) -> FilterConfig:
        """From the CLI's strings: `--where EXPR`, `--rule NAME[:min=A,max=B]` or a preset (`gopher`, `all`)."""
        return cls(tuple(where), tuple(r for spec in rules for r in parse_rule(spec)))

    @property
    def labels(self) -> list[str]:
        """The conditions in order, as they appear in `removed.parquet` and the stats."""
        return [f"where {e}" for e in self.where] + [r.label for r in self.rules]

    def to_params(self) -> dict[str, Any]:
        return {
            "where": list(self.where),
            "rules": [{"name": r.name, "min": r.min, "max": r.max} for r in self.rules],
            "rules_scheme": RULES_SCHEME,
        }


def condition(expr: str) -> pl.Expr:
    """A `--where` string as a polars expression (SQL syntax: `length(text) > 100 AND source_id = id`)."""
    try:
        return pl.sql_expr(expr)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--where {expr!r} is not a valid SQL condition ({reason})") from None


def failures(frame: pl.DataFrame, cfg: FilterConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fails, measures): one boolean column per condition (True = the row fails it), and the rules' measures."""
    cols: dict[str, pl.Series] = {}
    for expr, label in zip(cfg.where, cfg.labels, strict=False):
        try:
            ok = frame.select(condition(expr).fill_null(False).cast(pl.Boolean)).to_series()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            columns = ", ".join(frame.columns)
            raise UsageError(
                f"--where {expr!r} cannot be evaluated on this dataset ({reason}); its columns are {columns}"
            ) from None
        cols[label] = ~ok
    measures = measure(frame, [r.name for r in cfg.rules])
    for r in cfg.rules:
        m = measures[r.name]
        fail = pl.Series(r.label, [False] * frame.height, dtype=pl.Boolean)
        if r.min is not None:
            fail = fail | (m < r.min)
        if r.max is not None:
            fail = fail | (m > r.max)
        cols[r.label] = fail
    return pl.DataFrame(cols) if cols else pl.DataFrame(), measures


class _Tally:
    """Per-condition counts over all parts."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.failed = dict.fromkeys(labels, 0)
        self.first = dict.fromkeys(labels, 0)
        self.only = dict.fromkeys(labels, 0)

    def add(self, fails: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.Series]:
        """Count FAILS; return (removed mask, first failed label, all failed labels) per row."""
        n_failed = fails.select(pl.sum_horizontal(pl.all().cast(pl.UInt32))).to_series()
        first = pl.Series("rule", [None] * fails.height, dtype=pl.String)
        for label in reversed(self.labels):
            first = pl.select(pl.when(fails[label]).then(pl.lit(label)).otherwise(first)).to_series()
        for label in self.labels:
            col = fails[label]
            self.failed[label] += int(col.sum())
            self.only[label] += int((col & (n_failed == 1)).sum())
            self.first[label] += int((first == label).fill_null(False).sum())
        every = fails.select(
            pl.concat_list([pl.when(pl.col(lb)).then(pl.lit(lb)) for lb in self.labels]).list.drop_nulls()
        ).to_series()
        return n_failed > 0, first, every

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "condition": lb,
                "failed": self.failed[lb],
                "removed_first": self.first[lb],
                "failed_only_this": self.only[lb],
            }
            for lb in self.labels
        ]


def _build(source: Dataset, cfg: FilterConfig, tracker: Tracker) -> Any:
    def build(writer: PartWriter) -> dict[str, Any]:
        tally = _Tally(cfg.labels)
        removed: list[pl.DataFrame] = []
        rows_in = rows_out = 0
        with tracker.task(f"Filtering {source.ref}", total=source.rows) as task:
            for frame in source.iter_frames():
                fails, measures = failures(frame, cfg)
                drop, first, every = tally.add(fails)
                writer.write(frame.filter(~drop))
                removed.append(
                    pl.DataFrame({ID: frame[ID], "rule": first, "rules": every}).hstack(measures).filter(drop)
                )
                rows_in += frame.height
                rows_out += frame.height - int(drop.sum())
                task.advance(frame.height)
        out = pl.concat(removed, how="vertical") if removed else pl.DataFrame({ID: [], "rule": []})
        out.write_parquet(writer.dir / REMOVED_FILE, compression="zstd")
        return {
            STAT_ROWS_IN: rows_in,
            STAT_ROWS_OUT: rows_out,
            STAT_REMOVED: rows_in - rows_out,
            STAT_CONDITIONS: tally.table(),
        }

    return build


def filter_dataset(
    store: Store, ref: str, cfg: FilterConfig, name: str | None = None, tracker: Tracker = NULL_TRACKER
) -> Commit:
    """Keep the rows of REF that meet every condition of CFG, as a new version (found if it exists).

    Args:
        store: The store.
        ref: The dataset, `NAME[@VERSION]`.
        cfg: The conditions.
        name: Name of the new version (default: the input's).
        tracker: Progress, in documents.

    Raises:
        RefError: No such dataset.
        UsageError: A condition cannot be parsed or evaluated on the dataset's columns.
    """
    source = store.resolve(ref)
    if cfg.where:
        failures(source.scan().head(0).collect(), cfg)  # a bad column name fails before anything is written
    return store.commit(
        name or source.name,
        operation=OPERATION,
        params=cfg.to_params(),
        parents=[source.ref],
        build=_build(source, cfg, tracker),
    )


def read_removed(ds: Dataset) -> pl.DataFrame:
    """The removed rows of a filtered version with the condition that removed each."""
    if REMOVED_FILE not in ds.manifest.files:
        raise UsageError(f"{ds.ref} was not written by `curate filter` (no {REMOVED_FILE})")
    return pl.read_parquet(ds.file(REMOVED_FILE))


__all__ = ["OPERATION", "REMOVED_FILE", "RULES", "FilterConfig", "filter_dataset", "read_removed"]
