"""The budget section: cells, paired size gaps and a verdict computed from them (never a zero-width interval)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from datadiet.eval.budget import (
    BUDGET,
    EPOCHS,
    TOKENS_SEEN,
    UNIQUE_TOKENS,
    axes_html,
    budget_cells,
    budget_markdown,
    fit_cells,
    fit_runs,
    quantity_verdict,
    size_gaps,
)
from datadiet.eval.datafit import predict
from datadiet.eval.inference import DATA_SEED, SEED, SIZE_FRACTION

FULL = 1e6  # unique tokens of the full set
TOKENS_PER_STEP = 4000


def runs(data_seeds: int, budgets: tuple[int, ...] = (25, 100, 400, 1600, 6400)) -> pl.DataFrame:
    """Runs whose loss follows the data-constrained law, plus a per-data-seed offset and run noise."""
    rng = np.random.default_rng(0)
    rows = []
    for ds in range(data_seeds):
        shift = rng.normal(0, 0.003)
        for size in (0.25, 1.0):
            for steps in budgets:
                for seed in (0, 1):
                    u, d = size * FULL, steps * TOKENS_PER_STEP
                    loss = (
                        predict(np.array([u]), np.array([d]), 1.9, 300.0, 0.35, 6.0)[0] + shift + rng.normal(0, 0.001)
                    )
                    rows.append(
                        {
                            SIZE_FRACTION: size,
                            BUDGET: steps,
                            DATA_SEED: ds,
                            SEED: seed,
                            TOKENS_SEEN: d,
                            UNIQUE_TOKENS: u,
                            EPOCHS: d / u,
                            "val_loss": float(loss),
                        }
                    )
    return pl.DataFrame(rows)


def test_cells_average_training_seeds_then_interval_over_data_seeds() -> None:
    cells = budget_cells(runs(3))
    assert cells.height == 10
    row = cells.filter((pl.col(SIZE_FRACTION) == 0.25) & (pl.col(BUDGET) == 400)).row(0, named=True)
    assert row["data_seeds"] == 3 and math.isclose(row[EPOCHS], 400 * TOKENS_PER_STEP / 250_000)
    assert row["lo"] < row["mean"] < row["hi"]


def test_verdict_names_the_first_budget_where_the_subset_is_behind() -> None:
    frame = runs(4)
    gaps = size_gaps(frame)
    # At 25 and 100 steps the 25% subset is not repeated (0.4 and 1.6 epochs): gaps are tiny.
    first = gaps.filter(pl.col("lo") > 0).sort(BUDGET).row(0, named=True)
    assert gaps.filter(pl.col(BUDGET) > first[BUDGET])["lo"].min() > 0  # behind from there on
    verdict = quantity_verdict(budget_cells(frame), gaps)
    assert any(f"falls behind the full set from {first[BUDGET]:,} steps" in v for v in verdict)
    assert not any("not monotone" in v for v in verdict)
    assert first["epochs_small"] > 1.0


def _gaps(*rows: tuple[int, float, float, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {SIZE_FRACTION: 0.25, BUDGET: b, "epochs_small": b / 20, "gap": g, "lo": lo, "hi": hi}
            for b, g, lo, hi in rows
        ]
    )


def test_verdict_names_the_budget_from_which_the_subset_stays_behind() -> None:
    # Behind at 32 steps, not at 128 (here even ahead), behind from 512 on: quantity starts to matter
    # at 512, not 32 (the real-text grid of docs/results-budget.md has this shape).
    gaps = _gaps((32, 0.015, 0.010, 0.021), (128, -0.3, -0.5, -0.1), (512, 0.46, 0.41, 0.52), (1536, 2.5, 2.3, 2.8))
    verdict = quantity_verdict(budget_cells(runs(3)), gaps)
    assert any("falls behind the full set from 512 steps" in v and "every larger budget" in v for v in verdict)
    assert any("also behind at 32 steps" in v and "not monotone" in v for v in verdict)
    assert any("reliably ahead of the full set at 128 steps" in v for v in verdict)
    assert not any("from 32 steps" in v for v in verdict)


def test_verdict_says_when_the_subset_is_not_behind_at_the_largest_budget() -> None:
    gaps = _gaps((32, 0.2, 0.1, 0.3), (128, 0.05, -0.1, 0.2))
    verdict = quantity_verdict(budget_cells(runs(3)), gaps)
    assert any("not reliably behind the full set at the largest budget tried (128 steps" in v for v in verdict)
    assert any("also behind at 32 steps" in v for v in verdict)


def test_one_data_seed_is_not_estimable_and_under_one_epoch_is_said() -> None:
    frame = runs(1, budgets=(25, 50))
    cells = budget_cells(frame)
    assert cells["lo"].is_nan().all()
    verdict = quantity_verdict(cells, size_gaps(frame))
    assert any("size cannot matter by construction" in v for v in verdict)
    assert any("not estimable" in v for v in verdict)
    text = budget_markdown(frame)
    assert "not estimable" in text and "The grid cannot identify this fit" in text
    assert "Predicted by the unidentified fit (not evidence)" in text
    assert "one data seed: intervals over data seeds are not estimable" in text.lower()


def test_markdown_holds_the_fit_and_its_numbers() -> None:
    text = budget_markdown(runs(3))
    assert "### Data-constrained fit" in text and "R* (repetitions" in text
    r_star = float(text.split("R* (repetitions worth 1 − 1/e of their tokens) | ")[1].split(" |")[0])
    assert math.isclose(r_star, 6.0, rel_tol=0.25)


def test_data_seeds_that_agree_exactly_are_not_an_interval() -> None:
    # At full size without duplication every data seed trains on the same rows: no zero-width interval.
    frame = runs(3).with_columns(
        pl.when(pl.col(SIZE_FRACTION) == 1.0).then(pl.lit(4.0)).otherwise(pl.col("val_loss")).alias("val_loss")
    )
    full = budget_cells(frame).filter(pl.col(SIZE_FRACTION) == 1.0)
    assert full["lo"].is_nan().all() and full["hi"].is_nan().all()


def test_fit_table_has_one_row_per_cell_with_observed_predicted_and_residual() -> None:
    frame = runs(3)
    fit = fit_runs(frame)
    assert fit is not None and fit.intervals is not None
    cells = fit_cells(frame, fit)
    assert cells.height == 10 and set(cells["runs"].to_list()) == {6}  # 3 data seeds × 2 training seeds
    row = cells.filter((pl.col(SIZE_FRACTION) == 0.25) & (pl.col(BUDGET) == 1600)).row(0, named=True)
    assert math.isclose(row[EPOCHS], 25.6) and math.isclose(row["repetitions"], 24.6)
    assert row[UNIQUE_TOKENS] == 0.25 * FULL
    truth = predict(np.array([0.25 * FULL]), np.array([1600 * TOKENS_PER_STEP]), 1.9, 300.0, 0.35, 6.0)[0]
    assert abs(row["predicted"] - truth) < 0.003 and abs(row["residual"]) < 0.003
    assert math.isclose(row["residual"], row["observed"] - row["predicted"])
    text = budget_markdown(frame)
    assert "| size | steps | epochs | unique tokens | repetitions R | observed | predicted | residual | runs |" in text
    assert "| 0.25 | 1,600 | 25.60 | 250,000 | 24.60 |" in text
    # R* and the crossover carry their t intervals over data seeds.
    lo, hi = fit.intervals["r_star"]
    assert f"| {fit.r_star:.3g} | {lo:.3g} to {hi:.3g} |" in text
    lo, hi = fit.intervals["crossover"]
    assert f"95% interval: {lo:,.0f} to {hi:,.0f})" in text


def test_axes_html_renders_tables_and_escapes_labels() -> None:
    page = axes_html(budget_markdown(runs(3)) + "\n| filter |\n|---|\n| <script>alert(1)</script> |\n")
    assert "<table>" in page and ">residual</th>" in page and "<h3>Data-constrained fit" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
