"""relate: dataset-level correlations against a reference, the split where the truth is known, computed caveats."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from datadiet.errors import UsageError
from datadiet.eval import relate as R

SIZES = (0.25, 0.5, 1.0)
RATES = (0.0, 0.25, 0.5, 0.75, 1.0)


def grid(metric, data_seeds: int = 3, seeds: int = 2, noise: float = 0.01, seed: int = 0) -> pl.DataFrame:
    """A sweep's runs table: every (data seed, size, rate, training seed), one variant per (data seed, size, rate)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d, size, rate, s in itertools.product(range(data_seeds), SIZES, RATES, range(seeds)):
        rows.append(
            {
                "size_fraction": size,
                "dup_rate": rate,
                "pool": 1,
                "data_seed": d,
                "seed": s,
                "variant": f"v{d}-{size}-{rate}",
                "repeated": f"story-{d}",
                "exact_duplicate_share": rate * 0.99 + 0.001 * d,
                "documents": 1000 * size,
                "constant_stat": 3.0,
                "epochs": 0.5 / size,
                "val_loss": metric(size, rate) + noise * rng.standard_normal(),
            }
        )
    return pl.DataFrame(rows)


def test_correlations_are_at_the_dataset_level_and_ranked() -> None:
    frame = grid(lambda size, rate: 3.0 + rate**2 - 0.1 * math.log(size), noise=0.05)
    res = R.relate(frame, ["documents", "exact_duplicate_share", "constant_stat"], ["val_loss"])
    per = frame.group_by("variant").agg(pl.col("exact_duplicate_share").mean(), pl.col("val_loss").mean())
    row = res.correlations.row(0, named=True)
    assert row["statistic"] == "exact_duplicate_share"  # the strongest comes first
    assert row["datasets"] == 45  # 3 data seeds x 15 cells, not 90 runs
    x, y = per["exact_duplicate_share"].to_numpy(), per["val_loss"].to_numpy()
    assert row["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert row["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert row["pearson_lo"] < row["pearson"] < row["pearson_hi"]
    const = res.correlations.filter(pl.col("statistic") == "constant_stat").row(0, named=True)
    assert math.isnan(const["pearson"])
    assert res.correlations["statistic"].to_list()[-1] == "constant_stat"
    assert res.strongest_statistic("val_loss") == "exact_duplicate_share"


def test_quality_only_metric() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 + 2.0 * rate), [], ["val_loss"])
    split = res.splits.row(0, named=True)
    assert split["quality_share"] == pytest.approx(1.0, abs=0.01)
    assert split["quality_share_lo"] > split["quantity_share_hi"]
    effect = res.effects.filter((pl.col("factor") == R.QUALITY) & (pl.col("to") == 1.0)).row(0, named=True)
    assert effect["effect"] == pytest.approx(2.0, abs=0.03)
    assert effect["lo"] < 2.0 < effect["hi"] and effect["n"] == 3
    assert res.verdict.startswith("Data quality (duplication) moved validation loss more than quantity")
    assert "duplication 0.0% → 100.0% at 100.0% of the data changed it by 1.99" in res.verdict


def test_quantity_only_metric() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 - 0.5 * math.log(size)), [], ["val_loss"])
    split = res.splits.row(0, named=True)
    assert split["quantity_share"] == pytest.approx(1.0, abs=0.01)
    assert split["quantity_share_lo"] > split["quality_share_hi"]
    effect = res.effects.filter((pl.col("factor") == R.QUANTITY) & (pl.col("to") == 0.25)).row(0, named=True)
    assert effect["effect"] == pytest.approx(0.5 * math.log(4), abs=0.03)
    assert res.verdict.startswith("Data quantity (size) moved validation loss more")


def test_cells_average_training_seeds_first() -> None:
    frame = grid(lambda size, rate: 3.0, noise=0.0)
    # Training seed s adds s, data seed d adds d: a cell's unit values are d + 0.5, its mean 1.5 + 3.
    frame = frame.with_columns(pl.col("val_loss") + pl.col("seed") + pl.col("data_seed"))
    res = R.relate(frame, [], ["val_loss"])
    assert res.cells.height == len(SIZES) * len(RATES)
    cell = res.cells.row(0, named=True)
    assert (cell["mean"], cell["sd"], cell["data_seeds"], cell["train_seeds"]) == (4.5, 1.0, 3, 6)
    half = sps.t.ppf(0.975, 2) / math.sqrt(3)
    assert (cell["lo"], cell["hi"]) == pytest.approx((4.5 - half, 4.5 + half))


def test_one_data_seed_is_not_estimable_never_zero_width() -> None:
    res = R.relate(grid(lambda size, rate: 3.0 + rate, data_seeds=1), [], ["val_loss"])
    assert res.cells["lo"].is_nan().all()
    assert res.effects["lo"].is_nan().all()
    assert math.isnan(res.splits.row(0, named=True)["quality_share_lo"])
    assert "Only one data seed" in res.verdict and "not estimable" in res.verdict
    assert "0.000 to 0.000" not in res.verdict and "[" not in res.verdict.split("Only one")[0].replace("CI)", "")


def test_caveats_are_computed_from_compute_and_stories() -> None:
    frame = grid(lambda size, rate: 3.0 + rate)
    notes = R.caveats(frame)
    # epochs = 0.5 / size: 2 at 25%, 1 at 50%, 0.5 at 100%: only the largest size is under one epoch.
    assert any("Runs on 100% of the data saw under one epoch" in n for n in notes)
    under = R.caveats(frame.with_columns(pl.col("epochs") * 0.1))
    assert any("Every run saw under one epoch" in n and "size cannot matter" in n for n in under)
    # A story that differs by size within a data seed is flagged.
    mixed = frame.with_columns(
        pl.when((pl.col("data_seed") == 1) & (pl.col("size_fraction") == 1.0))
        .then(pl.lit("other"))
        .otherwise(pl.col("repeated"))
        .alias("repeated")
    )
    assert any("differs between sizes or rates within data seed(s) 1" in n for n in R.caveats(mixed))
    assert not any("differs" in n for n in notes)
    assert any("Only 2 data seeds" in n for n in R.caveats(grid(lambda s, r: r, data_seeds=2)))
    assert not any("One training seed" in n for n in notes)
    assert any("One training seed per data seed" in n for n in R.caveats(grid(lambda s, r: r, seeds=1)))


def test_number_format_is_one_format() -> None:
    assert R.num(2.5) == "2.500"
    assert R.num(81920.0) == "81,920"
    assert R.num(166426.7656) == "166,427"
    assert R.num(float("nan")) == "n/a"
    assert R.pct(0.25) == "25.0%"
    assert R.estimate(1.0, float("nan"), 2.0) == "1.000 (interval not estimable)"
    # Identical values in every data seed are said so, never printed as a zero-width interval.
    assert R.estimate(7.2, 7.2, 7.2) == "7.200 (no spread between data seeds)"
    assert R.estimate(7.2, 7.2 - 1e-10, 7.2 + 1e-10) == "7.200 (no spread between data seeds)"
    assert R.estimate(float("nan"), 0.0, 0.5, R.pct) == "n/a [0.0%, 50.0%]"
    assert R.metric_name("stat_exact_duplicate_share") == "exact duplicate share"


def test_to_dict_is_json_ready_and_errors() -> None:
    res = R.relate(grid(lambda size, rate: rate), ["constant_stat"], ["val_loss"])
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["correlations"][0]["pearson"] is None
    assert d["n_runs"] == 90 and d["data_seeds"] == 3
    with pytest.raises(UsageError, match="lacks columns"):
        R.relate(grid(lambda size, rate: rate), ["nope"], ["val_loss"])
