"""Inference that matches the sweep's design: the data seed is the unit of replication.

A sweep crosses sizes × duplication rates with data seeds (each redraws the subsets and the
repeated story) and training seeds. Runs that share a data seed share their data, so they are not
independent evidence about a data claim; this module therefore first averages the training seeds
within each (size, rate, data seed) — the *unit value* — and treats the data seeds as the
replicates. Used by `datadiet.eval.relate` (and so by `curate relate`, `report`, `sweep`)::

    units = unit_values(runs, "val_loss")
    cells = cell_means(units)                       # mean, t-based 95% CI over data seeds
    diff = paired_difference(units, (1.0, 0.0), (1.0, 1.0))
    split = anova_split(units)                      # quantity / quality / interaction shares

Methods (all intervals are 95%; every one is checked by simulation in tests/eval/test_inference.py):

- **Cell means**: mean of the unit values, Student-t interval with n−1 degrees of freedom over the
  n data seeds. One data seed → "not estimable" (NaN bounds), never a zero-width interval.
- **Differences between two cells**: paired by data seed (the two cells of one data seed share its
  subsets and story), Student-t interval of the per-seed differences. Exact under normal noise
  whatever the correlation between a seed's cells.
- **Quantity vs quality**: a two-way ANOVA of the unit values with size and rate as categorical
  factors, their interaction, and the data seed as a block (a balanced design is required: every
  data seed has every cell). The *systematic* variance of the true cell means splits exactly into
  size (quantity), rate (quality) and interaction parts, V_k = λ_k·σ²/(n·a·b), where λ_k is the
  noncentrality of that term's F statistic; the shares are therefore ratios of noncentralities,
  λ_k / (λ_size + λ_rate + λ_interaction). Each λ_k gets an exact confidence interval by inverting
  the noncentral F distribution (scipy.stats.ncf) at level 1 − 0.05/3, and the share intervals
  combine the three (Bonferroni), so their joint coverage is at least 95%. Point estimates use the
  unbiased λ̂_k = max(0, df_k·(F_k − 1)). The table also gives the plain shares of the total sum of
  squares (η²), including the share left to the data-seed block and to replication noise.

  Why not a bootstrap over data seeds: with 3 data seeds a percentile bootstrap can only reshuffle
  3 values, and its nominal 95% interval for a cell difference covered the truth in 73-74% of
  simulated replications (the test measures this too). The F-inversion intervals reach ≥ 95%.
  Assumption, stated because it matters: noise is normal with one variance in every cell after the
  block; a story whose harm differs by data seed adds to that noise, which the block does not absorb.
- **Correlations** between dataset statistics and metrics: at the dataset level (runs averaged per
  dataset version first, since runs of one dataset share its statistics exactly), Pearson with a
  Fisher-z interval and Spearman with the Bonett–Wright Fisher-z interval; fewer than 4 datasets →
  not estimable. Ranked by |Pearson r|.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats as sps

SIZE_FRACTION = "size_fraction"
DUP_RATE = "dup_rate"
DATA_SEED = "data_seed"
SEED = "seed"
VALUE = "value"
LEVEL = 0.95
# Three noncentralities share one 95% family (Bonferroni), so each gets 1 - 0.05/3.
SPLIT_TERMS = ("quantity", "quality", "interaction")
NOT_ESTIMABLE = "not estimable"

F64 = npt.NDArray[np.float64]


# -- unit values ----------------------------------------------------------------------------------


def unit_values(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Average the training seeds within each (size, rate, data seed): one unit value per data draw.

    Runs without a `data_seed` column are treated as one data seed (0), which makes every interval
    not estimable, as it should be: their training seeds replicate training, not the data.

    Returns:
        Columns `size_fraction`, `dup_rate`, `data_seed`, `value`, `train_seeds`.
    """
    frame = runs if DATA_SEED in runs.columns else runs.with_columns(pl.lit(0).alias(DATA_SEED))
    return (
        frame.select(
            pl.col(SIZE_FRACTION).cast(pl.Float64),
            pl.col(DUP_RATE).cast(pl.Float64),
            pl.col(DATA_SEED).cast(pl.Int64),
            pl.col(metric).cast(pl.Float64).alias(VALUE),
        )
        .drop_nulls()
        .filter(pl.col(VALUE).is_finite())
        .group_by(SIZE_FRACTION, DUP_RATE, DATA_SEED)
        .agg(pl.col(VALUE).mean(), pl.len().cast(pl.Int64).alias("train_seeds"))
        .sort(SIZE_FRACTION, DUP_RATE, DATA_SEED)
    )


# -- t intervals ----------------------------------------------------------------------------------


def t_interval(values: F64, level: float = LEVEL) -> tuple[F64, F64, F64]:
    """Mean and Student-t interval along the last axis (n−1 df); NaN bounds when n < 2."""
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = sps.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=-1, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def cell_means(
    units: pl.DataFrame, level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> pl.DataFrame:
    """Per (size, rate) cell: mean of the unit values, its t interval over data seeds, sd and count.

    Args:
        bounds: The values the metric can take; the interval is clipped to them (an accuracy's interval
            over 2 data seeds would otherwise reach below 0). Clipping never lowers coverage.
    """
    rows = []
    for (size, rate), part in units.group_by(SIZE_FRACTION, DUP_RATE, maintain_order=True):
        v = part[VALUE].to_numpy()
        mean, t_lo, t_hi = t_interval(v, level)
        lo, hi = max(float(t_lo), bounds[0]), min(float(t_hi), bounds[1])  # NaN (not estimable) stays NaN
        rows.append(
            {
                SIZE_FRACTION: size,
                DUP_RATE: rate,
                "mean": float(mean),
                "lo": float(lo),
                "hi": float(hi),
                "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                "data_seeds": int(v.size),
                "train_seeds": int(part["train_seeds"].sum()),
            }
        )
    schema = {
        SIZE_FRACTION: pl.Float64,
        DUP_RATE: pl.Float64,
        "mean": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "sd": pl.Float64,
        "data_seeds": pl.Int64,
        "train_seeds": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema).sort(SIZE_FRACTION, DUP_RATE)


def paired_difference(
    units: pl.DataFrame, base: tuple[float, float], other: tuple[float, float], level: float = LEVEL
) -> dict[str, Any]:
    """`other` cell minus `base` cell (each a (size, rate)), paired by data seed, with a t interval.

    Returns:
        `effect`, `lo`, `hi` (NaN when fewer than 2 data seeds have both cells) and `n`.
    """

    def cell(key: tuple[float, float]) -> pl.DataFrame:
        return units.filter((pl.col(SIZE_FRACTION) == key[0]) & (pl.col(DUP_RATE) == key[1])).select(DATA_SEED, VALUE)

    both = cell(base).join(cell(other), on=DATA_SEED, suffix="_other")
    d = (both["value_other"] - both[VALUE]).to_numpy()
    if d.size == 0:
        return {"effect": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    mean, lo, hi = t_interval(d, level)
    return {"effect": float(mean), "lo": float(lo), "hi": float(hi), "n": int(d.size)}


# -- two-way ANOVA with a data-seed block -----------------------------------------------------------


def anova_table(y: F64) -> dict[str, F64]:
    """Sums of squares of a balanced two-way layout with a block, for a batch of replications.

    Args:
        y: (..., n, a, b) unit values: n data seeds (blocks) × a sizes × b rates.

    Returns:
        `ss_quantity`, `ss_quality`, `ss_interaction`, `ss_block`, `ss_noise`, `ss_total`, each (...).
    """
    n, a, b = y.shape[-3:]
    grand = y.mean(axis=(-3, -2, -1), keepdims=True)
    cell = y.mean(axis=-3, keepdims=True)  # (..., 1, a, b)
    size = y.mean(axis=(-3, -1), keepdims=True)  # (..., 1, a, 1)
    rate = y.mean(axis=(-3, -2), keepdims=True)  # (..., 1, 1, b)
    block = y.mean(axis=(-2, -1), keepdims=True)  # (..., n, 1, 1)
    inter = cell - size - rate + grand
    resid = y - cell - block + grand

    def ss(x: F64, weight: int) -> F64:
        out: F64 = weight * (x**2).sum(axis=(-3, -2, -1))
        return out

    return {
        "ss_quantity": ss(size - grand, n * b),
        "ss_quality": ss(rate - grand, n * a),
        "ss_interaction": ss(inter, n),
        "ss_block": ss(block - grand, a * b),
        "ss_noise": ss(resid, 1),
        "ss_total": ss(y - grand, 1),
    }


def noncentrality_interval(f: F64, df1: int, df2: int, level: float) -> tuple[F64, F64]:
    """Exact confidence interval for the noncentrality λ of an F(df1, df2, λ) statistic observed as `f`.

    Inverts the noncentral F CDF (decreasing in λ) by a vectorised bisection on log(1 + λ):
    the lower bound solves cdf(f; λ) = 1 − α/2 (0 when even λ = 0 cannot reach it), the upper
    bound solves cdf(f; λ) = α/2 for f raised to at least the null median of F. The exact
    inversion would give the degenerate [0, 0] when f falls in the null's lower tail; raising f
    only widens the interval (coverage can only grow) and never leaves it zero-width.
    """
    alpha = 1.0 - level
    observed = np.asarray(f, dtype=np.float64)
    out = []
    for target, f in ((1.0 - alpha / 2, observed), (alpha / 2, np.maximum(observed, sps.f.median(df1, df2)))):
        at_zero = sps.f.cdf(f, df1, df2)
        lo = np.zeros_like(f)
        # An upper bracket: the noncentral F's mean is about (df1 + λ)/df1, so λ ≈ df1·f is its centre.
        hi = np.maximum(10.0, 4.0 * df1 * f + 40.0 * np.sqrt(np.maximum(df1 * f, 1.0)))
        for _ in range(60):
            over = sps.ncf.cdf(f, df1, df2, hi) > target
            if not over.any():
                break
            hi = np.where(over, hi * 2.0, hi)
        llo, lhi = np.log1p(lo), np.log1p(hi)
        for _ in range(40):  # log-scale bisection: 2^-40 of the bracket's log width
            mid = (llo + lhi) / 2
            above = sps.ncf.cdf(f, df1, df2, np.expm1(mid)) > target
            llo = np.where(above, mid, llo)
            lhi = np.where(above, lhi, mid)
        bound = np.expm1((llo + lhi) / 2)
        out.append(np.where(at_zero <= target, 0.0, bound))
    return out[0], out[1]


def split_from_table(table: dict[str, F64], n: int, a: int, b: int, level: float = LEVEL) -> dict[str, F64]:
    """Shares of the systematic variance with Bonferroni-joint intervals, from `anova_table`'s sums."""
    dfs = {"quantity": a - 1, "quality": b - 1, "interaction": (a - 1) * (b - 1)}
    df_noise = (n - 1) * (a * b - 1)
    ms_noise = table["ss_noise"] / df_noise
    lam: dict[str, F64] = {}
    low: dict[str, F64] = {}
    high: dict[str, F64] = {}
    per_term = 1.0 - (1.0 - level) / len(SPLIT_TERMS)
    for term, df in dfs.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(ms_noise > 0, (table[f"ss_{term}"] / df) / ms_noise, np.inf)
        lam[term] = np.maximum(0.0, df * (f - 1.0)) if df > 0 else np.zeros_like(f)
        if df > 0:
            low[term], high[term] = noncentrality_interval(np.minimum(f, 1e12), df, df_noise, per_term)
        else:
            low[term] = high[term] = np.zeros_like(f)
    out: dict[str, F64] = {}
    total = sum(lam.values())
    for term in SPLIT_TERMS:
        others = [t for t in SPLIT_TERMS if t != term]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{term}_share"] = np.where(total > 0, lam[term] / total, np.nan)
            lo_den = low[term] + sum(high[t] for t in others)
            hi_den = high[term] + sum(low[t] for t in others)
            out[f"{term}_share_lo"] = np.where(lo_den > 0, low[term] / lo_den, 0.0)
            out[f"{term}_share_hi"] = np.where(hi_den > 0, high[term] / hi_den, 1.0)
        out[f"{term}_lambda"] = lam[term]
    return out


@dataclass(frozen=True)
class Split:
    """The quantity/quality split of one metric (see the module docstring).

    `shares` maps "quantity", "quality", "interaction" to (share of systematic variance, lo, hi),
    NaN bounds when not estimable; `eta` maps every ANOVA term, "block" and "noise" included, to
    its share of the total sum of squares.
    """

    shares: dict[str, tuple[float, float, float]]
    eta: dict[str, float]
    data_seeds: int
    sizes: int
    rates: int
    note: str

    @property
    def estimable(self) -> bool:
        return not self.note


def anova_split(units: pl.DataFrame, level: float = LEVEL) -> Split:
    """Two-way ANOVA of the unit values (size × rate, data seed as block) and the share intervals.

    Uses the data seeds that have every (size, rate) cell, so the layout is balanced; with fewer
    than 2 of them, or only one size or one rate, the intervals are not estimable (NaN), and
    `note` says why.
    """
    sizes = sorted(set(units[SIZE_FRACTION].to_list()))
    rates = sorted(set(units[DUP_RATE].to_list()))
    a, b = len(sizes), len(rates)
    complete = (
        units.group_by(DATA_SEED).agg(pl.len().alias("cells")).filter(pl.col("cells") == a * b)[DATA_SEED].to_list()
    )
    seeds = sorted(complete)
    n = len(seeds)
    nan3 = (math.nan, math.nan, math.nan)
    if n == 0 or a * b < 2:
        return Split(dict.fromkeys(SPLIT_TERMS, nan3), {}, n, a, b, "needs at least two cells with every data seed")
    y = np.full((n, a, b), np.nan)
    si, ri, di = ({v: k for k, v in enumerate(vals)} for vals in (sizes, rates, seeds))
    for row in units.filter(pl.col(DATA_SEED).is_in(seeds)).iter_rows(named=True):
        y[di[row[DATA_SEED]], si[row[SIZE_FRACTION]], ri[row[DUP_RATE]]] = row[VALUE]
    table = anova_table(y)
    total = float(table["ss_total"])
    eta = {
        t: (float(table[f"ss_{t}"]) / total if total > 0 else math.nan)
        for t in ("quantity", "quality", "interaction", "block", "noise")
    }
    if n < 2:
        # Without replication the interaction is confounded with noise: report the factors' η² shares
        # only; the block and the noise are unmeasured (NaN), not zero.
        eta |= {"block": math.nan, "noise": math.nan}
        return Split(dict.fromkeys(SPLIT_TERMS, nan3), eta, n, a, b, "one data seed: replication noise is unmeasured")
    split = split_from_table({k: v[None] for k, v in table.items()}, n, a, b, level)
    shares = {
        t: (float(split[f"{t}_share"][0]), float(split[f"{t}_share_lo"][0]), float(split[f"{t}_share_hi"][0]))
        for t in SPLIT_TERMS
    }
    return Split(shares, eta, n, a, b, "")


# -- correlations at the dataset level ------------------------------------------------------------


def dataset_level(runs: pl.DataFrame, key: str, columns: Sequence[str]) -> pl.DataFrame:
    """One row per dataset (`key`, e.g. the variant ref): the mean of each column over its runs."""
    return runs.group_by(key, maintain_order=True).agg(pl.col(c).cast(pl.Float64).mean() for c in columns)


def correlation(x: F64, y: F64, level: float = LEVEL) -> dict[str, float]:
    """Pearson r with a Fisher-z interval and Spearman ρ with the Bonett–Wright interval.

    NaN everywhere when either column is constant; NaN bounds with fewer than 4 points.
    """
    n = x.size
    nan = dict.fromkeys(("pearson", "pearson_lo", "pearson_hi", "spearman", "spearman_lo", "spearman_hi"), math.nan)
    if n < 3 or np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())) or np.ptp(y) <= 0:
        return nan
    z = sps.norm.ppf(0.5 + level / 2)
    r = float(sps.pearsonr(x, y).statistic)
    rho = float(sps.spearmanr(x, y).statistic)
    out = {"pearson": r, "spearman": rho}
    for name, value, se2 in (
        ("pearson", r, 1.0 / (n - 3) if n > 3 else math.nan),
        ("spearman", rho, (1.0 + rho * rho / 2.0) / (n - 3) if n > 3 else math.nan),
    ):
        if not math.isfinite(se2) or not math.isfinite(value):
            out[f"{name}_lo"] = out[f"{name}_hi"] = math.nan
            continue
        centre = math.atanh(min(max(value, -0.999999), 0.999999))
        half = z * math.sqrt(se2)
        out[f"{name}_lo"], out[f"{name}_hi"] = math.tanh(centre - half), math.tanh(centre + half)
    return out
