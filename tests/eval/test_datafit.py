"""The data-constrained fit: parameters recovered from synthetic losses, and unidentifiable grids named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datadiet.errors import UsageError
from datadiet.eval import datafit
from datadiet.eval.datafit import (
    Observation,
    crossover_budget,
    effective_data,
    fit_data_constrained,
    predict,
    seed_intervals,
)

TRUE = {"E": 1.9, "B": 300.0, "beta": 0.35, "r_star": 6.0}
SIZES = (2.5e5, 5e5, 1e6)
BUDGETS = (1e5, 4e5, 1.6e6, 6.4e6, 2.56e7)


def synthetic(
    noise: float, seeds: int, rng: np.random.Generator, budgets: tuple[float, ...] = BUDGETS
) -> list[Observation]:
    """Losses from the true law on a size × budget grid, with multiplicative noise, per data seed."""
    out = []
    for s in range(seeds):
        for u in SIZES:
            for d in budgets:
                loss = predict(np.array([u]), np.array([d]), **TRUE)[0] * math.exp(rng.normal(0, noise))
                out.append(Observation(unique=u, seen=d, loss=float(loss), data_seed=s))
    return out


def test_effective_data_matches_the_paper() -> None:
    # Under one epoch every token is new; at R repetitions D′ = U(1 + R*(1 − e^(−R/R*))).
    assert effective_data(np.array([100.0]), np.array([50.0]), 5.0)[0] == 50.0
    assert effective_data(np.array([100.0]), np.array([100.0]), 5.0)[0] == 100.0
    d4 = effective_data(np.array([100.0]), np.array([500.0]), 5.0)[0]
    assert d4 == pytest.approx(100 + 100 * 5 * (1 - math.exp(-4 / 5)))
    # Unlimited repetition is worth at most R* extra epochs.
    assert effective_data(np.array([100.0]), np.array([1e9]), 5.0)[0] == pytest.approx(600.0, rel=1e-6)


def test_recovers_known_parameters_from_noisy_losses() -> None:
    fit = fit_data_constrained(synthetic(0.002, 3, np.random.default_rng(0)))
    assert fit.identified, fit.reasons
    # Tolerances stated in docs/results-budget.md: R* within 10%, β within 5%, E within 2%.
    assert fit.r_star == pytest.approx(TRUE["r_star"], rel=0.10)
    assert fit.beta == pytest.approx(TRUE["beta"], rel=0.05)
    assert pytest.approx(TRUE["E"], rel=0.02) == fit.E
    assert max(abs(p - o) for p, o in zip(fit.predicted, fit.observed, strict=True)) < 0.03
    assert fit.intervals is not None
    lo, hi = fit.intervals["r_star"]
    assert lo < fit.r_star < hi
    true_cross = crossover_budget(**TRUE, full_unique=1e6)
    assert fit.crossover == pytest.approx(true_cross, rel=0.05)


def test_robust_to_one_wild_run() -> None:
    obs = synthetic(0.001, 2, np.random.default_rng(1))
    obs[7] = Observation(obs[7].unique, obs[7].seen, obs[7].loss * 1.5, obs[7].data_seed)  # a diverged run
    fit = fit_data_constrained(
        obs,
    )
    assert fit.r_star == pytest.approx(TRUE["r_star"], rel=0.10)
    # Huber keeps the estimate, but the report must still say that one run is off the curve.
    assert not fit.identified
    assert any("does not fit every run" in r and "1.50x" in r for r in fit.reasons)


def test_a_subset_that_over_fits_is_named_not_fitted_through() -> None:
    # The real-text grid's shape: the smallest subset's loss rises at the largest budget (over-fitting),
    # which L(U, D) with a saturating D' cannot express; the fit must not be presented as identified.
    obs = synthetic(0.001, 3, np.random.default_rng(5))
    obs = [
        Observation(o.unique, o.seen, o.loss * 1.4, o.data_seed)
        if (o.unique, o.seen) == (SIZES[0], BUDGETS[-1])
        else o
        for o in obs
    ]
    fit = fit_data_constrained(obs)
    assert not fit.identified
    assert any("over-fitting" in r for r in fit.reasons)


def test_losses_without_a_floor_put_e_at_its_bound() -> None:
    obs = [
        Observation(unique=u, seen=d, loss=float(predict(np.array([u]), np.array([d]), 1e-6, 300.0, 0.35, 6.0)[0]))
        for u in SIZES
        for d in BUDGETS
    ]
    fit = fit_data_constrained(obs)
    assert any("E ran to the edge of its range" in r for r in fit.reasons)


def test_under_one_epoch_the_grid_cannot_identify_r_star() -> None:
    obs = synthetic(0.002, 2, np.random.default_rng(2), budgets=(5e4, 1e5, 2e5))
    fit = fit_data_constrained(
        obs,
    )
    assert not fit.identified
    assert any("no run repeats its data twice" in r for r in fit.reasons)


def test_one_size_or_few_runs_is_named() -> None:
    rng = np.random.default_rng(3)
    one_size = [o for o in synthetic(0.002, 1, rng) if o.unique == 5e5]
    fit = fit_data_constrained(
        one_size,
    )
    assert any("same number of unique tokens" in r for r in fit.reasons)
    assert fit.intervals is None and fit.interval_reason is not None and "not estimable" in fit.interval_reason
    fit = fit_data_constrained(
        one_size[:3],
    )
    assert any("only 3 runs" in r for r in fit.reasons)


def test_a_data_seed_that_cannot_identify_the_fit_gives_no_interval() -> None:
    # Seed 2 ran only the full size: its runs alone say nothing about repetition across sizes.
    obs = [o for o in synthetic(0.002, 3, np.random.default_rng(4)) if o.data_seed < 2 or o.unique == 1e6]
    fit = fit_data_constrained(obs)
    assert fit.identified and fit.intervals is None
    assert fit.interval_reason is not None and "data seed 2's runs alone cannot identify" in fit.interval_reason


def test_bad_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="at least one run"):
        fit_data_constrained([])
    with pytest.raises(UsageError, match="positive finite loss"):
        fit_data_constrained([Observation(1e5, 1e5, float("nan"))])


def _replicate(rng: np.random.Generator, n_seeds: int) -> tuple[np.ndarray, ...]:
    """One simulated sweep: every data seed shifts all its runs, and each of its subsets by its own offset.

    A data seed is a draw of rows, so each size's subset of it is its own draw (an offset per seed
    and size, correlated across that subset's budgets), on top of run noise. That correlation is what
    makes the pooled fit's own standard error the wrong yardstick and the data seed the unit.
    """
    u, d, loss, seeds = [], [], [], []
    for s in range(n_seeds):
        offset = {size: rng.normal(0, 0.005) for size in SIZES}
        shift = rng.normal(0, 0.004)
        for o in synthetic(0.002, 1, rng):
            u.append(o.unique)
            d.append(o.seen)
            loss.append(o.loss * math.exp(shift + offset[o.unique]))
            seeds.append(s)
    return np.array(u), np.array(d), np.array(loss), np.array(seeds)


@pytest.mark.slow
@pytest.mark.parametrize(("n_seeds", "reps"), [(2, 300), (3, 300), (6, 150)])
def test_seed_t_interval_covers_at_the_seed_counts_users_have(n_seeds: int, reps: int) -> None:
    """Seeded simulation: how often the 95% intervals over N data seeds hold the true R* and crossover.

    The intervals are computed by `seed_intervals`, as `fit_data_constrained` does; the pooled fit
    that starts the seed fits starts at the truth here (the multi-start search is tested above), which
    keeps the three cases near 10 s together. The range of the seed-level estimates is measured too
    (at 2 data seeds it is exactly the percentile bootstrap's 95% interval, which the fit used
    before): it holds the truth with probability 1 − 2^(1−n) (50% at 2, 75% at 3), and must fail
    here at 2 and 3 data seeds, which shows that the simulation can fail a too-narrow interval.
    """
    rng = np.random.default_rng(100 + n_seeds)
    truth = np.array([math.log(TRUE["E"]), math.log(TRUE["B"]), TRUE["beta"], math.log(TRUE["r_star"])])
    true_cross = crossover_budget(**TRUE, full_unique=1e6)
    covered = {"r_star": 0, "crossover": 0, "beta": 0, "range": 0}
    for _ in range(reps):
        u, d, loss, seeds = _replicate(rng, n_seeds)
        x0 = datafit._solve(u, d, loss, [truth]).x
        intervals, estimates, reason = seed_intervals(u, d, loss, seeds, x0, 1e6)
        assert intervals is not None and "crossover" in intervals, reason
        for key, true in (("r_star", TRUE["r_star"]), ("crossover", true_cross), ("beta", TRUE["beta"])):
            lo, hi = intervals[key]
            assert lo < hi  # never a zero-width interval
            covered[key] += lo <= true <= hi
        seed_r = [float(v) for v in estimates["r_star"] if v is not None]
        covered["range"] += min(seed_r) <= TRUE["r_star"] <= max(seed_r)
    rate = {k: v / reps for k, v in covered.items()}
    print(f"{n_seeds} data seeds, {reps} replications: coverage {rate}")
    assert rate["r_star"] >= 0.92 and rate["crossover"] >= 0.92 and rate["beta"] >= 0.92, rate
    if n_seeds <= 3:
        assert rate["range"] < 0.92, rate
