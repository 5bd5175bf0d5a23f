"""Relate dataset statistics and experiment factors to model metrics across a sweep's runs.

Used by `curate relate` and by the sweep before the report::

    from datadiet.eval.relate import relate
    result = relate(runs, stats=["exact_duplicate_share", "distinct_4gram_ratio"], metrics=["val_loss", "accuracy"])
    print(result.verdict)

`runs` has one row per training run: the factor columns (`size_fraction`, `dup_rate`, `pool`,
`seed`), dataset statistic columns and metric columns. `relate` returns:

(a) `correlations`: Pearson and Spearman (Pearson of average ranks) of every (statistic, metric)
    pair over the runs where both are present, with 95% percentile bootstrap intervals (runs
    resampled with replacement); NaN where a column is constant.
(b) `fits`: for each metric the OLS fit `metric ~ 1 + ln(size_fraction) + dup_rate +
    ln(size_fraction) * dup_rate` and the split of its R² between quantity (the size term) and
    quality (the duplication term) by the Shapley value of the two factor groups (the LMG
    decomposition). The interaction term is present only when both factors are, so its gain is
    part of the two-factor coalition and Shapley's symmetry splits it half and half:
    quantity = [R²(size) + R²(size, dup, size*dup) - R²(dup)] / 2 and likewise for quality; the two
    sum to the full R². `quantity_share` / `quality_share` are those over the full R².
(c) `effects`: model-free effect sizes from cell means: duplication (lowest -> highest rate, at the
    largest size) and quantity (largest -> smallest size, at the lowest rate).
(d) `spread`: seed-to-seed mean, standard deviation (ddof 1) and count per (size, rate) cell.
(e) `verdict`: one paragraph written from those numbers.

Intervals for (b) and (c) come from a bootstrap that resamples runs within each (size, rate)
cell, so every resample keeps the design; with one run per cell they have zero width, and the
verdict says that seed noise is then unmeasured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from datadiet.errors import UsageError

SIZE_FRACTION = "size_fraction"
DUP_RATE = "dup_rate"
POOL = "pool"
SEED = "seed"
FACTORS: tuple[str, ...] = (SIZE_FRACTION, DUP_RATE, POOL, SEED)

QUANTITY = "quantity"
QUALITY = "quality"
CI = (2.5, 97.5)
# Below this many runs a correlation or a variance split is a sketch, not evidence.
FEW_RUNS = 10
# Below this R² the linear fit misses much of the pattern (e.g. the study's loss is flat up to 50%
# duplication and jumps at 100%), which the verdict says.
POOR_FIT = 0.8

F64 = npt.NDArray[np.float64]

# Plain-language names for metrics the verdict talks about; others are shown by column name.
METRIC_NAMES = {
    "val_loss": "validation loss",
    "perplexity": "perplexity",
    "accuracy": "top-1 accuracy",
    "bits_per_byte": "bits per byte",
    "study_perplexity": "the study's perplexity",
    "study_accuracy": "the study's accuracy",
}


@dataclass(frozen=True)
class RelateResult:
    """What `relate` found (tables are polars frames; see the module docstring for their meaning)."""

    correlations: pl.DataFrame
    fits: pl.DataFrame
    effects: pl.DataFrame
    spread: pl.DataFrame
    verdict: str
    n_runs: int
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {
            "correlations": _rows(self.correlations),
            "fits": _rows(self.fits),
            "effects": _rows(self.effects),
            "spread": _rows(self.spread),
            "verdict": self.verdict,
            "n_runs": self.n_runs,
            "n_boot": self.n_boot,
            "seed": self.seed,
        }

    def strongest_statistic(self, metric: str) -> str | None:
        """The statistic with the largest |Pearson r| against `metric` (None if none is defined)."""
        rows = self.correlations.filter((pl.col("metric") == metric) & pl.col("pearson").is_not_nan())
        if rows.is_empty():
            return None
        return str(rows.sort(pl.col("pearson").abs(), descending=True)["statistic"][0])


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dicts()
    ]


# -- correlations ---------------------------------------------------------------------------------


def _pearson_rows(x: F64, y: F64) -> F64:
    """Pearson r of each row pair of (B, n) arrays; NaN where either row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sxx = (xc * xc).sum(axis=1)
    syy = (yc * yc).sum(axis=1)
    sxy = (xc * yc).sum(axis=1)
    # Relative tolerance: a column of identical floats can leave ~1e-30 of rounding in sxx.
    scale_x = (x * x).sum(axis=1) * 1e-24
    scale_y = (y * y).sum(axis=1) * 1e-24
    ok = (sxx > scale_x) & (syy > scale_y)
    out = np.full(x.shape[0], np.nan)
    out[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
    return np.clip(out, -1.0, 1.0)


def average_ranks(x: F64) -> F64:
    """1-based ranks along the last axis, ties sharing their average rank (as scipy's rankdata)."""
    # rank = (#less + #less-or-equal + 1) / 2; (B, n, n) comparisons are fine for sweeps of <= ~500 runs.
    less = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    leq = (x[..., None, :] <= x[..., :, None]).sum(axis=-1)
    out: F64 = (less + leq + 1) / 2.0
    return out


def _interval(samples: F64) -> tuple[float, float]:
    good = samples[np.isfinite(samples)]
    if good.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(good, CI)
    return float(lo), float(hi)


def _correlations(
    frame: pl.DataFrame, stats: Sequence[str], metrics: Sequence[str], n_boot: int, seed: int
) -> pl.DataFrame:
    rows = []
    for i, stat in enumerate(stats):
        for j, metric in enumerate(metrics):
            pair = (
                frame.select(pl.col(stat).cast(pl.Float64), pl.col(metric).cast(pl.Float64)).drop_nulls().drop_nans()
            )
            x = pair[stat].to_numpy()
            y = pair[metric].to_numpy()
            n = x.size
            row: dict[str, Any] = {"statistic": stat, "metric": metric, "n": n}
            if n < 3:
                for k in ("pearson", "pearson_lo", "pearson_hi", "spearman", "spearman_lo", "spearman_hi"):
                    row[k] = math.nan
                rows.append(row)
                continue
            # One generator per pair, seeded from (seed, pair), so adding a column changes no other interval.
            rng = np.random.default_rng([seed, i, j])
            idx = rng.integers(0, n, size=(n_boot, n))
            row["pearson"] = float(_pearson_rows(x[None], y[None])[0])
            row["pearson_lo"], row["pearson_hi"] = _interval(_pearson_rows(x[idx], y[idx]))
            row["spearman"] = float(_pearson_rows(average_ranks(x)[None], average_ranks(y)[None])[0])
            row["spearman_lo"], row["spearman_hi"] = _interval(
                _pearson_rows(average_ranks(x[idx]), average_ranks(y[idx]))
            )
            rows.append(row)
    schema = {
        "statistic": pl.String,
        "metric": pl.String,
        "pearson": pl.Float64,
        "pearson_lo": pl.Float64,
        "pearson_hi": pl.Float64,
        "spearman": pl.Float64,
        "spearman_lo": pl.Float64,
        "spearman_hi": pl.Float64,
        "n": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


# -- variance split -------------------------------------------------------------------------------


def _r2(design: F64, y: F64) -> F64:
    """R² of OLS fits of y (B, n) on design (B, n, p), batched; NaN where y is constant."""
    beta = np.linalg.pinv(design) @ y[..., None]  # (B, p, 1)
    resid = y - (design @ beta)[..., 0]
    sst = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    sse = (resid**2).sum(axis=-1)
    out = np.full(y.shape[0], np.nan)
    ok = sst > 1e-24 * (y * y).sum(axis=-1)
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return np.clip(out, 0.0, 1.0)


def _split(log_size: F64, dup: F64, y: F64) -> dict[str, F64]:
    """Shapley split of R² between the size and duplication groups, for each row of (B, n) arrays."""
    ones = np.ones_like(y)
    full = _r2(np.stack([ones, log_size, dup, log_size * dup], axis=-1), y)
    r2_q = _r2(np.stack([ones, log_size], axis=-1), y)
    r2_d = _r2(np.stack([ones, dup], axis=-1), y)
    quantity = (r2_q + (full - r2_d)) / 2
    quality = (r2_d + (full - r2_q)) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "r2": full,
            QUANTITY: quantity,
            QUALITY: quality,
            "quantity_share": np.where(full > 0, quantity / full, np.nan),
            "quality_share": np.where(full > 0, quality / full, np.nan),
        }


def _coefficients(log_size: F64, dup: F64, y: F64) -> F64:
    design = np.stack([np.ones_like(y), log_size, dup, log_size * dup], axis=-1)
    out: F64 = np.linalg.pinv(design) @ y
    return out


def _cell_mean(y: F64, idx: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> tuple[float, F64]:
    """Mean of y over the rows in `mask`, and its value in each bootstrap resample (NaN if the cell is empty)."""
    if not mask.any():
        return math.nan, np.full(idx.shape[0], np.nan)
    weights = mask[idx].astype(np.float64)
    with np.errstate(invalid="ignore"):
        boot: F64 = (y[idx] * weights).sum(axis=1) / weights.sum(axis=1)
    return float(y[mask].mean()), boot


def _cell_resamples(cells: npt.NDArray[np.int64], n_boot: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """(n_boot, n) row indices: each row's cell keeps its size, filled by draws from the same cell."""
    n = cells.size
    out = np.empty((n_boot, n), dtype=np.int64)
    for c in np.unique(cells):
        members = np.flatnonzero(cells == c)
        out[:, members] = members[rng.integers(0, members.size, size=(n_boot, members.size))]
    return out


# -- the verdict ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.1:
        return f"{x:.3f}"
    return f"{x:.2g}"


def _ci(lo: float, hi: float) -> str:
    return f"95% CI {_num(lo)} to {_num(hi)}"


def _ci_pct(lo: float, hi: float) -> str:
    return f"95% CI {_pct(lo)} to {_pct(hi)}" if math.isfinite(lo) and math.isfinite(hi) else "no interval"


def _size_phrase(small: float, large: float) -> str:
    ratio = large / small
    words = {2.0: "halving", 4.0: "quartering", 10.0: "cutting to a tenth"}
    for r, word in words.items():
        if abs(ratio - r) < 1e-9:
            return f"{word} the data ({_pct(large)} -> {_pct(small)} of it)"
    return f"shrinking the data from {_pct(large)} to {_pct(small)}"


def _change(effect: float, lo: float, hi: float) -> str:
    """'raised X by' style phrase pieces: the verb, the magnitude and its interval on the same scale."""
    verb = "raised" if effect > 0 else "lowered" if effect < 0 else "left unchanged"
    if effect < 0:
        lo, hi = -hi, -lo
    note = "; not distinguishable from zero" if lo <= 0 <= hi else ""
    return f"{verb}|{_num(abs(effect))} ({_ci(lo, hi)}{note})"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _verdict(fits: pl.DataFrame, effects: pl.DataFrame, n_runs: int, n_cells: int, metrics: Sequence[str]) -> str:
    if fits.is_empty():
        return (
            f"Only {n_runs} run(s) with the factors present: too few to relate data quality or quantity to any metric."
        )
    sentences: list[str] = []
    winners: dict[str, list[str]] = {QUANTITY: [], QUALITY: [], "tie": []}
    for fit in fits.iter_rows(named=True):
        metric = fit["metric"]
        name = METRIC_NAMES.get(metric, metric)
        if not math.isfinite(fit["r2"]):
            sentences.append(f"{name.capitalize()} did not vary across runs, so neither factor moved it.")
            continue
        q, d = fit["quantity_share"], fit["quality_share"]
        overlap = not (
            fit["quality_share_lo"] > fit["quantity_share_hi"] or fit["quantity_share_lo"] > fit["quality_share_hi"]
        )
        winner = "tie" if overlap or not (math.isfinite(q) and math.isfinite(d)) else QUALITY if d > q else QUANTITY
        winners[winner].append(name)
        if metric != metrics[0]:
            continue
        lead = {
            QUALITY: f"Data quality (duplication) explained more of the variance in {name} than quantity did",
            QUANTITY: f"Data quantity (dataset size) explained more of the variance in {name} than quality did",
            "tie": f"Neither factor clearly dominated {name}",
        }[winner]
        sentences.append(
            f"{lead}: of the fit's R² = {fit['r2']:.2f}, duplication accounts for {_pct(d)} "
            f"({_ci_pct(fit['quality_share_lo'], fit['quality_share_hi'])}) and size for {_pct(q)} "
            f"({_ci_pct(fit['quantity_share_lo'], fit['quantity_share_hi'])})."
        )
        parts = []
        for eff in effects.filter(pl.col("metric") == metric).iter_rows(named=True):
            if not math.isfinite(eff["effect"]):
                continue
            verb, amount = _change(eff["effect"], eff["lo"], eff["hi"]).split("|")
            if eff["factor"] == QUALITY:
                parts.append(
                    f"going from {_pct(eff['from'])} to {_pct(eff['to'])} duplication {verb} {name} by {amount}"
                )
            else:
                parts.append(f"{_size_phrase(eff['to'], eff['from'])} {verb} it by {amount}")
        if parts:
            sentences.append("Measured directly, " + ", while ".join(parts) + ".")
        if overlap:
            sentences.append("The two shares' intervals overlap, so this run set cannot rank the factors for it.")
        if fit["r2"] < POOR_FIT:
            sentences.append(
                f"The linear fit leaves {_pct(1 - fit['r2'])} of the variance unexplained "
                "(seed noise or an effect that is not linear in these terms)."
            )
    others = []
    for key, label in ((QUALITY, "duplication"), (QUANTITY, "size")):
        names = [m for m in winners[key] if m != METRIC_NAMES.get(metrics[0], metrics[0])]
        if names:
            others.append(f"{label} dominated {_and(names)}")
    ties = [m for m in winners["tie"] if m != METRIC_NAMES.get(metrics[0], metrics[0])]
    if ties:
        others.append(f"neither clearly dominated {_and(ties)}")
    if others:
        sentences.append("Across the other metrics, " + "; ".join(others) + ".")
    if n_runs <= n_cells:
        sentences.append(
            "Each (size, duplication) cell has a single run, so seed-to-seed noise is unmeasured and the "
            "intervals above understate the uncertainty; rerun with more seeds to firm this up."
        )
    elif n_runs < FEW_RUNS:
        sentences.append(f"With only {n_runs} runs, treat these numbers as indicative.")
    return " ".join(sentences)


# -- entry point ----------------------------------------------------------------------------------


def relate(
    frame: pl.DataFrame, stats: list[str], metrics: list[str], n_boot: int = 1000, seed: int = 0
) -> RelateResult:
    """Correlate statistics with metrics, split each metric's variance between quantity and quality, and say so.

    Args:
        frame: One row per run with `size_fraction`, `dup_rate` (and optionally `pool`, `seed`),
            the statistic columns and the metric columns.
        stats: Statistic columns to correlate (missing ones are an error).
        metrics: Metric columns; the first is the one the verdict leads with.
        n_boot: Bootstrap resamples for every interval.
        seed: Seed of the bootstrap.

    Returns:
        The tables and the verdict (see the module docstring).
    """
    missing = [c for c in (SIZE_FRACTION, DUP_RATE, *stats, *metrics) if c not in frame.columns]
    if missing:
        raise UsageError(
            f"the runs table lacks columns {missing}; evaluate the runs and compute their statistics first"
        )
    if not metrics:
        raise UsageError("name at least one metric to relate, e.g. val_loss")
    if n_boot < 1:
        raise UsageError(f"n_boot must be a positive integer, not {n_boot}")
    if frame.filter(pl.col(SIZE_FRACTION) <= 0).height:
        raise UsageError("size_fraction must be positive in every run (its logarithm is a regressor)")
    correlations = _correlations(frame, stats, metrics, n_boot, seed)

    fit_rows = []
    effect_rows = []
    spread_frames = []
    rng = np.random.default_rng([seed, 1])
    for metric in metrics:
        data = (
            frame.select(
                pl.col(SIZE_FRACTION).cast(pl.Float64),
                pl.col(DUP_RATE).cast(pl.Float64),
                pl.col(metric).cast(pl.Float64),
            )
            .drop_nulls()
            .filter(pl.col(metric).is_finite())
        )
        spread_frames.append(
            data.group_by(SIZE_FRACTION, DUP_RATE)
            .agg(
                pl.col(metric).mean().alias("mean"),
                pl.col(metric).std(ddof=1).alias("std"),
                pl.len().cast(pl.Int64).alias("n"),
            )
            .with_columns(pl.lit(metric).alias("metric"))
            .select("metric", SIZE_FRACTION, DUP_RATE, "mean", "std", "n")
        )
        if data.height < 3:
            continue
        size = data[SIZE_FRACTION].to_numpy()
        dup = data[DUP_RATE].to_numpy()
        y = data[metric].to_numpy()
        log_size = np.log(size)
        cells = data.select(pl.struct(SIZE_FRACTION, DUP_RATE).rank("dense").cast(pl.Int64).alias("cell"))[
            "cell"
        ].to_numpy()
        idx = _cell_resamples(cells, n_boot, rng)
        point = _split(log_size[None], dup[None], y[None])
        boot = _split(log_size[idx], dup[idx], y[idx])
        coef = _coefficients(log_size, dup, y)
        row: dict[str, Any] = {"metric": metric, "n": int(y.size)}
        for key in ("r2", QUANTITY, QUALITY, "quantity_share", "quality_share"):
            row[key] = float(point[key][0])
            row[f"{key}_lo"], row[f"{key}_hi"] = _interval(boot[key])
        for name, value in zip(("intercept", "b_log_size", "b_dup", "b_log_size_x_dup"), coef, strict=True):
            row[name] = float(value)
        fit_rows.append(row)

        # Model-free effects from cell means, bootstrapped with the same within-cell resamples.
        big, small = size.max(), size.min()
        low, high = dup.min(), dup.max()
        if high > low:
            a, a_boot = _cell_mean(y, idx, (size == big) & (dup == low))
            b, b_boot = _cell_mean(y, idx, (size == big) & (dup == high))
            lo, hi = _interval(b_boot - a_boot)
            effect_rows.append(
                {
                    "metric": metric,
                    "factor": QUALITY,
                    "from": low,
                    "to": high,
                    "at": big,
                    "effect": b - a,
                    "lo": lo,
                    "hi": hi,
                }
            )
        if big > small:
            a, a_boot = _cell_mean(y, idx, (size == big) & (dup == low))
            b, b_boot = _cell_mean(y, idx, (size == small) & (dup == low))
            if math.isfinite(a) and math.isfinite(b):
                lo, hi = _interval(b_boot - a_boot)
                effect_rows.append(
                    {
                        "metric": metric,
                        "factor": QUANTITY,
                        "from": big,
                        "to": small,
                        "at": low,
                        "effect": b - a,
                        "lo": lo,
                        "hi": hi,
                    }
                )

    fit_schema = {"metric": pl.String, "n": pl.Int64}
    for key in ("r2", QUANTITY, QUALITY, "quantity_share", "quality_share"):
        fit_schema |= {key: pl.Float64, f"{key}_lo": pl.Float64, f"{key}_hi": pl.Float64}
    fit_schema |= dict.fromkeys(("intercept", "b_log_size", "b_dup", "b_log_size_x_dup"), pl.Float64)
    fits = pl.DataFrame(fit_rows, schema=fit_schema) if fit_rows else pl.DataFrame(schema=fit_schema)
    effect_schema = {
        "metric": pl.String,
        "factor": pl.String,
        "from": pl.Float64,
        "to": pl.Float64,
        "at": pl.Float64,
        "effect": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
    }
    effects = pl.DataFrame(effect_rows, schema=effect_schema) if effect_rows else pl.DataFrame(schema=effect_schema)
    spread = pl.concat(spread_frames).sort("metric", SIZE_FRACTION, DUP_RATE) if spread_frames else pl.DataFrame()
    n_cells = frame.select(SIZE_FRACTION, DUP_RATE).unique().height
    verdict = _verdict(fits, effects, frame.height, n_cells, metrics)
    return RelateResult(correlations, fits, effects, spread, verdict, frame.height, n_boot, seed)
