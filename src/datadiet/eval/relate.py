"""Relate dataset statistics and experiment factors to model metrics across a sweep's runs.

Used by `curate relate`, `curate report` and the sweep before the report::

    from datadiet.eval.relate import relate
    result = relate(runs, stats=["stat_exact_duplicate_share"], metrics=["val_loss", "bits_per_byte"])
    print(result.verdict)

`runs` has one row per training run: the factor columns (`size_fraction`, `dup_rate`, and where
known `data_seed`, `seed`, `variant` = the training dataset's ref, `repeated` = the id of the
repeated story), dataset statistic columns, metric columns and, where recorded, the run's compute
(`epochs`, see `datadiet.train.compute`). The data seed is the unit of replication throughout
(`datadiet.eval.inference` says how and why). `relate` returns:

(a) `cells`: per metric and (size, rate) cell, the mean over data seeds (training seeds averaged
    first) with its t-based 95% interval; NaN bounds ("not estimable") with one data seed;
(b) `effects`: model-free differences of two cells, paired by data seed: duplication (lowest ->
    highest rate, at the largest size; and lowest -> every other rate) and quantity (largest ->
    smallest size, at the lowest rate), with t intervals;
(c) `splits`: per metric, the two-way ANOVA of the unit values (size × rate + interaction, data
    seed as block): shares of the systematic variance with joint 95% intervals, and the η² shares
    of the total sum of squares (block and replication noise included);
(d) `correlations`: Pearson and Spearman of every (statistic, metric) pair at the dataset level,
    with Fisher-z intervals, ranked by |Pearson r|;
(e) `caveats`: what the design and the runs' compute imply the numbers cannot say, computed;
(f) `verdict`: one paragraph written from those numbers, caveats included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from datadiet.errors import UsageError
from datadiet.eval import inference as inf
from datadiet.train.metrics import METRIC_RANGES

SIZE_FRACTION = inf.SIZE_FRACTION
DUP_RATE = inf.DUP_RATE
DATA_SEED = inf.DATA_SEED
SEED = inf.SEED
POOL = "pool"
VARIANT = "variant"
REPEATED = "repeated"
EPOCHS = "epochs"
FACTORS: tuple[str, ...] = (SIZE_FRACTION, DUP_RATE, POOL, DATA_SEED, SEED)

QUANTITY = "quantity"
QUALITY = "quality"

# Plain-language names for metrics and statistics; others are shown by column name.
METRIC_NAMES = {
    "val_loss": "validation loss",
    "perplexity": "perplexity",
    "accuracy": "top-1 accuracy",
    "bits_per_byte": "bits per byte",
    "study_perplexity": "the study's perplexity",
    "study_accuracy": "the study's accuracy",
}


def metric_name(column: str) -> str:
    """A readable name for a metric or `stat_*` column."""
    if column in METRIC_NAMES:
        return METRIC_NAMES[column]
    return column.removeprefix("stat_").replace("_", " ")


# -- one number format ----------------------------------------------------------------------------


def num(x: float | None, digits: int = 3) -> str:
    """Every number in the verdict and the report: 3 decimals, thousands separated; n/a when missing."""
    if x is None or not math.isfinite(x):
        return "n/a" if x is None or math.isnan(x) else ("∞" if x > 0 else "−∞")
    # Counts (whole numbers from 100 on) and numbers from 100,000 on need no decimals.
    return f"{x:,.0f}" if abs(x) >= 100_000 or (abs(x) >= 100 and x == round(x)) else f"{x:,.{digits}f}"


def pct(x: float | None, digits: int = 1) -> str:
    """A share as a percentage with one decimal."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def interval(lo: float | None, hi: float | None, fmt: Any = num) -> str:
    """'[lo, hi]', or 'not estimable' when either bound is missing.

    Bounds that differ but would print alike get more decimals (up to 3 more), so an interval never
    looks zero-width when it is not.
    """
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return inf.NOT_ESTIMABLE
    base = 3 if fmt is num else 1
    for digits in range(base, base + 4):
        a, b = fmt(lo, digits), fmt(hi, digits)
        if a != b or lo == hi:
            break
    return f"[{a}, {b}]"


def estimate(value: float | None, lo: float | None, hi: float | None, fmt: Any = num) -> str:
    """'value [lo, hi]', 'value (interval not estimable)', or 'not estimable' without a value.

    A value without a point estimate but with an interval (a share when no systematic variance was
    detected) prints as 'n/a [lo, hi]'. Equal bounds (every data seed gave the same value, e.g. the
    full set without duplication, which no data seed changes) print as 'no spread between data
    seeds' rather than as a zero-width interval.
    """
    bounds = interval(lo, hi, fmt)
    if value is None or not math.isfinite(value):
        return inf.NOT_ESTIMABLE if bounds == inf.NOT_ESTIMABLE else f"n/a {bounds}"
    if bounds == inf.NOT_ESTIMABLE:
        return f"{fmt(value)} (interval {bounds})"
    if lo is not None and hi is not None and math.isclose(lo, hi, rel_tol=1e-7, abs_tol=1e-12):
        # Float noise of identical runs (the same data and seed) is no spread either.
        return f"{fmt(value)} (no spread between data seeds)"
    return f"{fmt(value)} {bounds}"


@dataclass(frozen=True)
class RelateResult:
    """What `relate` found (tables are polars frames; see the module docstring)."""

    cells: pl.DataFrame
    effects: pl.DataFrame
    splits: pl.DataFrame
    correlations: pl.DataFrame
    caveats: list[str]
    verdict: str
    n_runs: int
    data_seeds: int
    metrics: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {
            "cells": _rows(self.cells),
            "effects": _rows(self.effects),
            "splits": _rows(self.splits),
            "correlations": _rows(self.correlations),
            "caveats": self.caveats,
            "verdict": self.verdict,
            "n_runs": self.n_runs,
            "data_seeds": self.data_seeds,
        }

    def strongest_statistic(self, metric: str) -> str | None:
        """The statistic with the largest |Pearson r| against `metric` (None if none is defined)."""
        rows = self.correlations.filter((pl.col("metric") == metric) & pl.col("pearson").is_not_nan())
        return None if rows.is_empty() else str(rows.sort(pl.col("pearson").abs(), descending=True)["statistic"][0])


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dicts()
    ]


# -- tables ---------------------------------------------------------------------------------------


def _effects(units: pl.DataFrame, metric: str) -> list[dict[str, Any]]:
    sizes = sorted(set(units[SIZE_FRACTION].to_list()))
    rates = sorted(set(units[DUP_RATE].to_list()))
    if not sizes or not rates:
        return []
    rows = []
    big, low = sizes[-1], rates[0]
    for rate in rates[1:]:
        d = inf.paired_difference(units, (big, low), (big, rate))
        rows.append({"metric": metric, "factor": QUALITY, "from": low, "to": rate, "at": big, **d})
    for size in reversed(sizes[:-1]):
        d = inf.paired_difference(units, (big, low), (size, low))
        rows.append({"metric": metric, "factor": QUANTITY, "from": big, "to": size, "at": low, **d})
    return rows


def _split_row(metric: str, split: inf.Split) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": metric, "data_seeds": split.data_seeds, "note": split.note}
    for term in inf.SPLIT_TERMS:
        row[f"{term}_share"], row[f"{term}_share_lo"], row[f"{term}_share_hi"] = split.shares[term]
    for term in ("quantity", "quality", "interaction", "block", "noise"):
        row[f"eta_{term}"] = split.eta.get(term, math.nan)
    return row


def _correlations(frame: pl.DataFrame, stats: Sequence[str], metrics: Sequence[str]) -> pl.DataFrame:
    key = VARIANT if VARIANT in frame.columns else None
    per = (
        inf.dataset_level(frame, key, [*stats, *metrics])
        if key
        else frame.select(pl.col(c).cast(pl.Float64) for c in [*stats, *metrics])
    )
    rows = []
    for stat in stats:
        for metric in metrics:
            pair = per.select(pl.col(stat), pl.col(metric)).drop_nulls().drop_nans()
            c = inf.correlation(pair[stat].to_numpy(), pair[metric].to_numpy())
            rows.append({"statistic": stat, "metric": metric, **c, "datasets": pair.height})
    schema: dict[str, Any] = {"statistic": pl.String, "metric": pl.String}
    schema |= dict.fromkeys(
        ("pearson", "pearson_lo", "pearson_hi", "spearman", "spearman_lo", "spearman_hi"), pl.Float64
    )
    schema |= {"datasets": pl.Int64}
    out = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return out.sort(pl.col("pearson").abs().fill_nan(None), descending=True, nulls_last=True)


# -- caveats and verdict --------------------------------------------------------------------------


def caveats(frame: pl.DataFrame) -> list[str]:
    """What the design and the runs' compute say the numbers cannot tell, one sentence each."""
    out = []
    n_data = frame[DATA_SEED].n_unique() if DATA_SEED in frame.columns else 1
    if n_data < 2:
        out.append(
            "Only one data seed: every run shares one draw of the subsets and the repeated story, so the "
            "intervals are not estimable and nothing here generalises beyond that draw; rerun with "
            "--data-seeds 0,1,2."
        )
    elif n_data < 3:
        out.append(f"Only {n_data} data seeds: the intervals have {n_data - 1} degree of freedom and are wide.")
    if SEED in frame.columns and DATA_SEED in frame.columns:
        per_draw = frame.group_by(SIZE_FRACTION, DUP_RATE, DATA_SEED).agg(pl.col(SEED).n_unique().alias("n"))
        if per_draw["n"].max() == 1:
            out.append(
                "One training seed per data seed: training noise is not separated from the data draw, and a "
                "cell whose data no data seed changes (the full set without duplication) shows no spread at all."
            )
    if EPOCHS in frame.columns and frame[EPOCHS].drop_nulls().len():
        by_size = frame.group_by(SIZE_FRACTION).agg(pl.col(EPOCHS).max()).sort(SIZE_FRACTION)
        most = float(by_size[EPOCHS].to_numpy().max())
        if most < 1.0:
            out.append(
                f"Every run saw under one epoch of its training set (at most {most:.2f}), so no model saw all of "
                "even the smallest set: at this budget dataset size cannot matter, and a null size effect says "
                "nothing about size at larger budgets."
            )
        else:
            under = [f"{100 * s:.0f}%" for s, e in by_size.iter_rows() if e < 1.0]
            if under:
                out.append(
                    f"Runs on {', '.join(under)} of the data saw under one epoch of it: only the smaller sizes "
                    "repeated their data, so size effects here are effects of repetition."
                )
    if REPEATED in frame.columns and DATA_SEED in frame.columns:
        stories = (
            frame.filter(pl.col(DUP_RATE) > 0)
            .filter(pl.col(REPEATED).is_not_null())
            .group_by(DATA_SEED)
            .agg(pl.col(REPEATED).n_unique().alias("n"))
        )
        split = stories.filter(pl.col("n") > 1)[DATA_SEED].to_list()
        if split:
            out.append(
                f"The repeated story (or pool) differs between sizes or rates within data seed(s) "
                f"{', '.join(map(str, sorted(split)))}: which documents are repeated is confounded "
                "with the factors there."
            )
    return out


def _winner(row: dict[str, Any]) -> str:
    q_lo, q_hi = row["quantity_share_lo"], row["quantity_share_hi"]
    d_lo, d_hi = row["quality_share_lo"], row["quality_share_hi"]
    if not all(math.isfinite(v) for v in (q_lo, q_hi, d_lo, d_hi)):
        return "unknown"
    return QUALITY if d_lo > q_hi else QUANTITY if q_lo > d_hi else "tie"


def _verdict(splits: pl.DataFrame, effects: pl.DataFrame, metrics: Sequence[str], notes: list[str]) -> str:
    lead = metrics[0]
    name = metric_name(lead)
    rows = splits.filter(pl.col("metric") == lead).to_dicts()
    sentences: list[str] = []
    if rows:
        row = rows[0]
        shares = ", ".join(
            f"{label} {estimate(row[f'{t}_share'], row[f'{t}_share_lo'], row[f'{t}_share_hi'], pct)}"
            for t, label in (
                ("quality", "quality (duplication)"),
                ("quantity", "quantity (size)"),
                ("interaction", "their interaction"),
            )
        )
        head = {
            QUALITY: f"Data quality (duplication) moved {name} more than quantity (size) did",
            QUANTITY: f"Data quantity (size) moved {name} more than quality (duplication) did",
            "tie": f"This sweep cannot rank quality against quantity for {name}: their intervals overlap",
            "unknown": f"This sweep cannot rank quality against quantity for {name} with stated confidence",
        }[_winner(row)]
        sentences.append(f"{head}. Shares of the systematic variance between cells (95% CI): {shares}.")
        if math.isfinite(row["eta_noise"]) and math.isfinite(row["quality_share_lo"]):
            sentences.append(
                f"Replication noise between data seeds left {pct(row['eta_noise'])} of the total variance."
            )
    parts = []
    for e in effects.filter(pl.col("metric") == lead).to_dicts():
        last_rate = (
            e["factor"] == QUALITY
            and e["to"] == effects.filter((pl.col("metric") == lead) & (pl.col("factor") == QUALITY))["to"].max()
        )
        smallest = (
            e["factor"] == QUANTITY
            and e["to"] == effects.filter((pl.col("metric") == lead) & (pl.col("factor") == QUANTITY))["to"].min()
        )
        if not (last_rate or smallest) or not math.isfinite(e["effect"]):
            continue
        what = (
            f"duplication {pct(e['from'])} → {pct(e['to'])} at {pct(e['at'])} of the data"
            if e["factor"] == QUALITY
            else f"size {pct(e['from'])} → {pct(e['to'])} at {pct(e['at'])} duplication"
        )
        parts.append(f"{what} changed it by {estimate(e['effect'], e['lo'], e['hi'])}")
    if parts:
        sentences.append("Measured directly, paired by data seed: " + "; ".join(parts) + ".")
    return " ".join(sentences + notes) if sentences or notes else "Too few runs to relate anything."


# -- entry point ----------------------------------------------------------------------------------


def relate(frame: pl.DataFrame, stats: list[str], metrics: list[str]) -> RelateResult:
    """Cell means, paired effects, the quantity/quality split, correlations, caveats and a verdict.

    Args:
        frame: One row per run (see the module docstring for its columns).
        stats: Statistic columns to correlate (missing ones are an error).
        metrics: Metric columns; the first is the one the verdict leads with.

    Raises:
        UsageError: A named column is missing or no metric is named.
    """
    missing = [c for c in (SIZE_FRACTION, DUP_RATE, *stats, *metrics) if c not in frame.columns]
    if missing:
        raise UsageError(
            f"the runs table lacks columns {missing}; evaluate the runs and compute their statistics first"
        )
    if not metrics:
        raise UsageError("name at least one metric to relate, e.g. val_loss")
    cell_frames, effect_rows, split_rows = [], [], []
    for metric in metrics:
        units = inf.unit_values(frame, metric)
        cells_of = inf.cell_means(units, bounds=METRIC_RANGES.get(metric, (-math.inf, math.inf)))
        cell_frames.append(cells_of.with_columns(pl.lit(metric).alias("metric")))
        effect_rows += _effects(units, metric)
        split_rows.append(_split_row(metric, inf.anova_split(units)))
    cells = pl.concat(cell_frames).select("metric", pl.exclude("metric")) if cell_frames else pl.DataFrame()
    effect_schema: dict[str, Any] = {"metric": pl.String, "factor": pl.String}
    effect_schema |= dict.fromkeys(("from", "to", "at", "effect", "lo", "hi"), pl.Float64) | {"n": pl.Int64}
    effects = pl.DataFrame(effect_rows, schema=effect_schema) if effect_rows else pl.DataFrame(schema=effect_schema)
    splits = pl.DataFrame(split_rows)
    notes = caveats(frame)
    correlations = _correlations(frame, stats, metrics)
    n_data = int(frame[DATA_SEED].n_unique()) if DATA_SEED in frame.columns else 1
    verdict = _verdict(splits, effects, metrics, notes)
    return RelateResult(cells, effects, splits, correlations, notes, verdict, frame.height, n_data, list(metrics))


def cell_lookup(result: RelateResult, metric: str) -> dict[tuple[float, float], dict[str, Any]]:
    """(size, rate) -> the cell row of `metric` (mean, lo, hi, sd, data_seeds, train_seeds)."""
    if result.cells.is_empty():
        return {}
    rows = result.cells.filter(pl.col("metric") == metric).to_dicts()
    return {(float(r[SIZE_FRACTION]), float(r[DUP_RATE])): r for r in rows}


def levels(frame: pl.DataFrame, column: str) -> list[float]:
    """The sorted distinct values of a factor column."""
    return sorted(float(v) for v in np.unique(frame[column].drop_nulls().to_numpy()))
