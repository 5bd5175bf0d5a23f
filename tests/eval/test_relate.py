"""Correlations against a reference computation, and the quantity/quality split where the truth is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from datadiet.errors import UsageError
from datadiet.eval import relate as R

SIZES = (0.25, 0.5, 1.0)
RATES = (0.0, 0.25, 0.5, 0.75, 1.0)


def grid(metric, seeds: int = 2, noise: float = 0.01, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for size, rate, s in itertools.product(SIZES, RATES, range(seeds)):
        rows.append(
            {
                "size_fraction": size,
                "dup_rate": rate,
                "pool": 1,
                "seed": s,
                "exact_duplicate_share": rate * 0.99,
                "documents": 1000 * size,
                "constant_stat": 3.0,
                "val_loss": metric(size, rate) + noise * rng.standard_normal(),
            }
        )
    return pl.DataFrame(rows)


def rankdata(x: np.ndarray) -> np.ndarray:
    """Reference average ranks, one element at a time."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = np.empty(len(x))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def test_correlations_match_reference() -> None:
    frame = grid(lambda size, rate: 3.0 + rate**2 - 0.1 * math.log(size), noise=0.05)
    res = R.relate(frame, ["exact_duplicate_share", "documents", "constant_stat"], ["val_loss"], n_boot=200, seed=1)
    table = {row["statistic"]: row for row in res.correlations.iter_rows(named=True)}
    y = frame["val_loss"].to_numpy()
    for stat in ("exact_duplicate_share", "documents"):
        x = frame[stat].to_numpy()
        row = table[stat]
        assert row["n"] == 30
        assert row["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        assert row["spearman"] == pytest.approx(np.corrcoef(rankdata(x), rankdata(y))[0, 1], abs=1e-12)
        assert row["pearson_lo"] <= row["pearson"] <= row["pearson_hi"]
        assert row["spearman_lo"] <= row["spearman"] <= row["spearman_hi"]
    assert math.isnan(table["constant_stat"]["pearson"])
    assert math.isnan(table["constant_stat"]["spearman_hi"])
    assert res.strongest_statistic("val_loss") == "exact_duplicate_share"


def test_average_ranks_with_ties() -> None:
    x = np.array([[3.0, 1.0, 3.0, 2.0, 3.0]])
    assert R.average_ranks(x).tolist() == [[4.0, 1.0, 4.0, 2.0, 4.0]]


def test_quality_only_metric() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 + 2.0 * rate), [], ["val_loss"], n_boot=300)
    fit = res.fits.row(0, named=True)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-3)
    assert fit["quality_share"] == pytest.approx(1.0, abs=0.01)
    assert fit["quantity_share"] == pytest.approx(0.0, abs=0.01)
    assert fit["quality"] + fit["quantity"] == pytest.approx(fit["r2"], abs=1e-12)
    assert fit["b_dup"] == pytest.approx(2.0, abs=0.02)
    effect = res.effects.filter(pl.col("factor") == R.QUALITY).row(0, named=True)
    assert effect["effect"] == pytest.approx(2.0, abs=0.05)
    assert effect["lo"] <= effect["effect"] <= effect["hi"]
    assert res.verdict.startswith("Data quality (duplication) explained more of the variance in validation loss")
    assert "going from 0% to 100% duplication raised validation loss by 1.9" in res.verdict


def test_quantity_only_metric() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 - 0.5 * math.log(size)), [], ["val_loss"], n_boot=300)
    fit = res.fits.row(0, named=True)
    assert fit["quantity_share"] == pytest.approx(1.0, abs=0.01)
    assert fit["quality_share"] == pytest.approx(0.0, abs=0.01)
    assert fit["b_log_size"] == pytest.approx(-0.5, abs=0.02)
    effect = res.effects.filter(pl.col("factor") == R.QUANTITY).row(0, named=True)
    assert effect["effect"] == pytest.approx(0.5 * math.log(4), abs=0.05)
    assert res.verdict.startswith("Data quantity (dataset size) explained more")
    assert "quartering the data (100% -> 25% of it) raised it by" in res.verdict


def test_interaction_is_split_half_and_half() -> None:
    # y = centred ln(size) x centred dup: neither main effect alone explains anything, so the whole R²
    # belongs to the pair and Shapley symmetry gives each factor half.
    mean_log = sum(math.log(s) for s in SIZES) / len(SIZES)
    res = R.relate(
        grid(lambda size, rate: (math.log(size) - mean_log) * (rate - 0.5), noise=0.0), [], ["val_loss"], n_boot=10
    )
    fit = res.fits.row(0, named=True)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["quality"] == pytest.approx(0.5, abs=1e-9)
    assert fit["quantity"] == pytest.approx(0.5, abs=1e-9)


def test_single_seed_and_noise_caveats() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 + rate, seeds=1), [], ["val_loss"], n_boot=50)
    fit = res.fits.row(0, named=True)
    assert fit["quality_lo"] == pytest.approx(fit["quality_hi"])
    assert "single run" in res.verdict
    noisy = R.relate(grid(lambda size, rate: 3.0, noise=1.0), [], ["val_loss"], n_boot=200)
    assert "Neither factor clearly dominated validation loss" in noisy.verdict
    assert "unexplained" in noisy.verdict


def test_spread_per_cell() -> None:
    frame = grid(lambda size, rate: 3.0, seeds=3, noise=0.0)
    frame = frame.with_columns(pl.col("val_loss") + pl.col("seed").cast(pl.Float64))
    res = R.relate(frame, [], ["val_loss"], n_boot=10)
    assert res.spread.height == len(SIZES) * len(RATES)
    row = res.spread.row(0, named=True)
    assert (row["mean"], row["std"], row["n"]) == (4.0, 1.0, 3)


def test_to_dict_is_json_ready_and_errors() -> None:
    import json

    res = R.relate(grid(lambda size, rate: rate), ["constant_stat"], ["val_loss"], n_boot=20)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["correlations"][0]["pearson"] is None
    assert d["n_runs"] == 30
    with pytest.raises(UsageError, match="lacks columns"):
        R.relate(grid(lambda size, rate: rate), ["nope"], ["val_loss"])
