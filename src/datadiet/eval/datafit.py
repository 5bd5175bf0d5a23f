"""The data-constrained scaling fit of Muennighoff et al. (2023): how much are repeated tokens worth?

For one model size trained on U unique tokens for a budget of D tokens, the paper's effective data is

    U_D = min(U, D)                     unique tokens actually seen
    R   = D / U_D − 1                   repetitions beyond the first epoch (0 under one epoch)
    D′  = U_D + U_D · R* · (1 − exp(−R / R*))

so the k-th repetition is worth exp(−k/R*) of a fresh epoch, and D′ can never exceed U_D·(1 + R*).
With the model term held fixed (one model size: E absorbs the paper's E + A/N^α), the loss is

    L(U, D) = E + B / D′^β.

`fit_data_constrained` fits (E, B, β, R*) by robust least squares on log loss
(`scipy.optimize.least_squares`, Huber loss with δ = 1e-3 as in Chinchilla's and Muennighoff's own
fits, from a grid of 18 starting points; E, B and R* are fitted in log space so they stay
positive), gives 95% intervals from separate fits to each data seed (a Student-t interval with n − 1
degrees of freedom on the seed-level estimates, on the log scale for the positive quantities; see
`seed_intervals` for why and for the measured coverage), and says plainly when the grid cannot
identify the fit:

- too few runs (fewer than 5 for 4 parameters) or fewer than 2 distinct numbers of unique tokens;
- no run repeats its data at least twice (R ≥ 1): R* then has nothing to be fitted to;
- R* ends at a bound of its search range (0.01 or 10^4 repetitions): the data do not bend;
- E ends at its lower bound (10^-4): the losses do not level off, so E, B and β trade off;
- some run's loss is more than 10% off the fitted curve (e.g. a subset that over-fits);
- the curvature is too flat: the standard error of log R* from the Jacobian exceeds log 3 (R*
  known only to within a factor of 3 either way), or the Jacobian is singular.

The derived quantity the report shows is the budget at which a subset of `share` of the unique
tokens (25% by default) falls behind the full set by more than `gap` nats (0.01 by default): the
smallest D with L(share·U, D) − L(U, D) > gap, found by bisection on log D.

    obs = [Observation(unique=4e5, seen=1.6e6, loss=3.1, data_seed=0), ...]
    fit = fit_data_constrained(obs)
    fit.r_star, fit.identified, fit.reasons, fit.intervals["r_star"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datadiet.errors import UsageError

# Huber threshold on log-loss residuals (Hoffmann et al. 2022; Muennighoff et al. 2023 use the same).
HUBER_DELTA = 1e-3
# Bounds of the search; R* at a bound means the data did not determine it.
R_STAR_BOUNDS = (1e-2, 1e4)
BETA_BOUNDS = (1e-3, 3.0)
# R* is "identified" when its standard error in log space is below log 3: known within 3x either way.
MAX_LOG_SE = math.log(3.0)
MIN_OBSERVATIONS = 5
# A run whose loss is more than 10% off the fitted curve (|log residual| > log 1.1) means the form does
# not describe the grid (Huber down-weights such a run, so the fit itself would not show it); the
# synthetic recoveries in tests/eval/test_datafit.py stay below 1%.
MAX_LOG_RESIDUAL = math.log(1.1)
LEVEL = 0.95
PARAMS = ("E", "B", "beta", "r_star")
# The scale on which seed-level estimates are averaged: log for the positive quantities, whose
# sampling distributions are skewed (R* cannot go below 0 but can run far above), so that a t
# interval back-transformed from the log scale stays positive and asymmetric like the estimates.
LOG_SCALE = {"E": True, "B": True, "beta": False, "r_star": True, "crossover": True}


@dataclass(frozen=True)
class Observation:
    """One run: unique training tokens, tokens seen, final loss, and the data seed it belongs to."""

    unique: float
    seen: float
    loss: float
    data_seed: int = 0


@dataclass
class DataFit:
    """The fitted effective-data law and what the grid could tell.

    Attributes:
        E, B, beta, r_star: The fitted parameters (E includes the fixed model term).
        identified: Whether the grid identifies the fit (see `reasons` when not).
        reasons: Plain sentences saying why it is not identified (empty when it is).
        intervals: Per parameter (and "crossover"), a 95% t interval over separate fits to each data
            seed, (low, high); None when not estimable (`interval_reason` says why); "crossover" is
            absent when only it is not estimable.
        interval_reason: Why there are no intervals (one data seed, a data seed whose runs cannot
            identify the fit, or a pooled fit that is not identified); None when there are.
        seed_estimates: Per quantity, the estimate from each data seed's own fit (in seed order);
            None for a seed's crossover when its fit never falls behind.
        observed, predicted: Loss per observation, in input order.
        log_se_r_star: Standard error of log R* from the Jacobian (inf when singular).
        crossover: Tokens seen at which the `share` subset falls `gap` nats behind the full set
            (None when it never does within 10^6 epochs of the subset, or no full size is known).
        share, gap, full_unique: The crossover's definition.
    """

    E: float
    B: float
    beta: float
    r_star: float
    identified: bool
    reasons: list[str]
    observed: list[float]
    predicted: list[float]
    log_se_r_star: float
    n_seeds: int
    intervals: dict[str, tuple[float, float]] | None = None
    interval_reason: str | None = None
    seed_estimates: dict[str, list[float | None]] = field(default_factory=dict)
    crossover: float | None = None
    share: float = 0.25
    gap: float = 0.01
    full_unique: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "E": self.E,
            "B": self.B,
            "beta": self.beta,
            "r_star": self.r_star,
            "identified": self.identified,
            "reasons": self.reasons,
            "intervals": {k: list(v) for k, v in self.intervals.items()} if self.intervals else None,
            "interval_method": f"{LEVEL:.0%} Student-t over per-data-seed fits (log scale for E, B, R*, crossover)",
            "interval_reason": self.interval_reason,
            "seed_estimates": self.seed_estimates,
            "observed": self.observed,
            "predicted": self.predicted,
            "log_se_r_star": self.log_se_r_star,
            "n_seeds": self.n_seeds,
            "crossover_tokens": self.crossover,
            "crossover_share": self.share,
            "crossover_gap_nats": self.gap,
            "full_unique_tokens": self.full_unique,
            "notes": self.notes,
        }


def effective_data(unique: np.ndarray, seen: np.ndarray, r_star: float) -> np.ndarray:
    """D′ of Muennighoff et al. (2023) for runs of UNIQUE tokens trained on SEEN tokens."""
    u = np.minimum(np.asarray(unique, dtype=np.float64), np.asarray(seen, dtype=np.float64))
    r = np.asarray(seen, dtype=np.float64) / u - 1.0
    out: np.ndarray = u + u * r_star * (1.0 - np.exp(-r / r_star))
    return out


def predict(unique: np.ndarray, seen: np.ndarray, E: float, B: float, beta: float, r_star: float) -> np.ndarray:
    """L = E + B / D′^β."""
    out: np.ndarray = E + B / effective_data(unique, seen, r_star) ** beta
    return out


def _unpack(theta: np.ndarray) -> tuple[float, float, float, float]:
    return float(np.exp(theta[0])), float(np.exp(theta[1])), float(theta[2]), float(np.exp(theta[3]))


def _residuals(theta: np.ndarray, u: np.ndarray, d: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    E, B, beta, r_star = _unpack(theta)
    # log D′ computed in logs so that B / D′^β never overflows for large β.
    log_dprime = np.log(effective_data(u, d, r_star))
    pred = np.logaddexp(math.log(E), math.log(B) - beta * log_dprime)
    out: np.ndarray = pred - log_loss
    return out


def _jacobian(theta: np.ndarray, u: np.ndarray, d: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    """(n, 4) derivatives of the residuals by (log E, log B, β, log R*): analytic, ~3x faster than differences."""
    E, B, beta, r_star = _unpack(theta)
    ud = np.minimum(u, d)
    x = (d / ud - 1.0) / r_star
    ex = np.exp(-x)
    dprime = ud + ud * r_star * (1.0 - ex)
    t = np.exp(math.log(B) - beta * np.log(dprime))  # B / D′^β
    p = E + t
    # dD′/dlog R* = R* · U_D · ((1 − e^(−x)) − x·e^(−x)) with x = R/R*.
    d_dprime = r_star * ud * ((1.0 - ex) - x * ex)
    return np.column_stack([E / p, t / p, -t * np.log(dprime) / p, -(t / p) * beta * d_dprime / dprime])


def _starts(u: np.ndarray, d: np.ndarray, loss: np.ndarray) -> list[np.ndarray]:
    """18 starting points: E below the lowest loss, β and R* over their plausible ranges, B matched at the median."""
    lo = float(loss.min())
    mid_d = float(np.median(np.minimum(u, d)))
    mid_l = float(np.median(loss))
    out = []
    for e_share in (0.6, 0.9):
        for beta in (0.1, 0.3, 0.6):
            for r_star in (1.0, 5.0, 25.0):
                E = e_share * lo
                B = max(mid_l - E, 1e-3) * mid_d**beta
                out.append(np.array([math.log(E), math.log(B), beta, math.log(r_star)]))
    return out


def _bounds(loss: np.ndarray) -> tuple[list[float], list[float]]:
    return (
        [math.log(1e-4), -50.0, BETA_BOUNDS[0], math.log(R_STAR_BOUNDS[0])],
        [math.log(float(loss.min())), 200.0, BETA_BOUNDS[1], math.log(R_STAR_BOUNDS[1])],
    )


def _solve(u: np.ndarray, d: np.ndarray, loss: np.ndarray, starts: Sequence[np.ndarray]) -> Any:
    from scipy.optimize import least_squares

    lower, upper = _bounds(loss)
    best = None
    for x0 in starts:
        x0 = np.clip(x0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
        res = least_squares(
            _residuals,
            x0,
            jac=_jacobian,
            args=(u, d, np.log(loss)),
            bounds=(lower, upper),
            loss="huber",
            f_scale=HUBER_DELTA,
            x_scale="jac",
            max_nfev=2000,
        )
        if best is None or res.cost < best.cost:
            best = res
    return best


def _check(u: np.ndarray, d: np.ndarray, res: Any, curvature: bool = True) -> tuple[list[str], float]:
    """The reasons the grid cannot identify the fit (none when it can), and the SE of log R*.

    CURVATURE=False leaves out the standard-error test (a data seed's own fit: a flat seed shows as
    spread between the seeds' estimates, which the t interval already carries).
    """
    reasons = []
    if u.size < MIN_OBSERVATIONS:
        reasons.append(f"only {u.size} runs for 4 parameters; at least {MIN_OBSERVATIONS} are needed")
    if np.unique(u).size < 2:
        reasons.append("every run has the same number of unique tokens; vary the size")
    reps = d / np.minimum(u, d) - 1.0
    if not (reps >= 1.0).any():
        reasons.append(
            f"no run repeats its data twice (most repetition: {reps.max() + 1:.2f} epochs), so the worth of "
            "repetition (R*) cannot be measured; raise the budget or shrink the subsets"
        )
    lower, upper = _bounds(np.array([1.0]))
    log_r = float(res.x[3])
    if log_r <= lower[3] + 1e-3 or log_r >= upper[3] - 1e-3:
        reasons.append(
            f"R* ran to the edge of its range ({math.exp(log_r):.3g}); the losses do not bend with repetition"
        )
    if float(res.x[0]) <= lower[0] + 1e-3:
        reasons.append(
            f"E ran to the edge of its range ({math.exp(lower[0]):.0e}): the losses do not level off toward a floor, "
            "so E, B and β trade off freely"
        )
    worst = int(np.argmax(np.abs(res.fun)))
    if abs(float(res.fun[worst])) > MAX_LOG_RESIDUAL:
        reasons.append(
            f"the form does not fit every run: at {d[worst]:,.0f} tokens seen of {u[worst]:,.0f} unique the loss is "
            f"{math.exp(-float(res.fun[worst])):.2f}x what the fit predicts (a loss that rises with repetition, "
            "i.e. over-fitting, is outside this form)"
        )
    jac = np.asarray(res.jac, dtype=np.float64)
    dof = max(u.size - 4, 1)
    s2 = float(np.sum(res.fun**2)) / dof
    try:
        cov = np.linalg.inv(jac.T @ jac) * max(s2, 1e-300)
        se = float(math.sqrt(max(cov[3, 3], 0.0)))
    except np.linalg.LinAlgError:
        se = math.inf
    if curvature and (not np.isfinite(se) or se > MAX_LOG_SE):
        reasons.append(
            f"R* is not pinned down by these runs (standard error of log R* {se:.2f} > log 3); "
            "add budgets that repeat the smaller subsets more often"
        )
    return reasons, se


def crossover_budget(
    E: float, B: float, beta: float, r_star: float, full_unique: float, share: float = 0.25, gap: float = 0.01
) -> float | None:
    """The smallest tokens seen D at which L(share·U, D) − L(U, D) exceeds GAP nats (None: never, to 10^6 epochs)."""
    small = share * full_unique

    def behind(log_d: float) -> float:
        d = np.array([math.exp(log_d)])
        return (
            float(
                predict(np.array([small]), d, E, B, beta, r_star)[0]
                - predict(np.array([full_unique]), d, E, B, beta, r_star)[0]
            )
            - gap
        )

    lo, hi = math.log(small), math.log(small * 1e6)
    if behind(hi) <= 0:
        return None
    if behind(lo) > 0:
        return small
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if behind(mid) > 0:
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def fit_data_constrained(
    observations: Sequence[Observation],
    *,
    full_unique: float | None = None,
    share: float = 0.25,
    gap: float = 0.01,
) -> DataFit:
    """Fit L = E + B / D′^β with Muennighoff's D′ to the runs, with t intervals over data seeds.

    The point estimates come from one robust fit to every run (a wild run moves it least); the
    intervals from fitting each data seed's runs on their own (`seed_intervals`).

    Args:
        observations: One per run (several training seeds of a data seed may each be one).
        full_unique: Unique tokens of the full set, for the crossover (default: the largest observed).
        share: Size of the subset compared with the full set in the crossover (0.25).
        gap: Loss difference, in nats, at which the subset counts as behind (0.01).

    Raises:
        UsageError: No observations, or a loss, unique count or budget that is not a positive finite number.
    """
    if not observations:
        raise UsageError("the data-constrained fit needs at least one run")
    u = np.array([o.unique for o in observations], dtype=np.float64)
    d = np.array([o.seen for o in observations], dtype=np.float64)
    loss = np.array([o.loss for o in observations], dtype=np.float64)
    for name, arr in (("unique tokens", u), ("tokens seen", d), ("loss", loss)):
        if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
            raise UsageError(f"the data-constrained fit needs positive finite {name} for every run")
    seeds = np.array([o.data_seed for o in observations])
    res = _solve(u, d, loss, _starts(u, d, loss))
    reasons, se = _check(u, d, res)
    E, B, beta, r_star = _unpack(res.x)
    full = float(full_unique if full_unique is not None else u.max())
    fit = DataFit(
        E=E,
        B=B,
        beta=beta,
        r_star=r_star,
        identified=not reasons,
        reasons=reasons,
        observed=loss.tolist(),
        predicted=predict(u, d, E, B, beta, r_star).tolist(),
        log_se_r_star=se,
        n_seeds=int(np.unique(seeds).size),
        crossover=crossover_budget(E, B, beta, r_star, full, share, gap),
        share=share,
        gap=gap,
        full_unique=full,
    )
    if fit.n_seeds < 2:
        fit.interval_reason = "one data seed: intervals over data seeds are not estimable"
    elif not fit.identified:
        fit.interval_reason = "the grid cannot identify the fit, so its intervals are not estimable"
    else:
        fit.intervals, fit.seed_estimates, fit.interval_reason = seed_intervals(
            u, d, loss, seeds, res.x, full, share, gap
        )
    if fit.intervals:
        point = {"E": E, "B": B, "beta": beta, "r_star": r_star, "crossover": fit.crossover or math.nan}
        outside = [k for k, (lo, hi) in fit.intervals.items() if not lo <= point[k] <= hi]
        if outside:
            fit.notes.append(
                f"the fit to all runs puts {', '.join(outside)} outside the interval from the data seeds' own fits: "
                "the data seeds disagree with the pooled fit; read these numbers with care"
            )
    return fit


def seed_intervals(
    u: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    seeds: np.ndarray,
    x0: np.ndarray,
    full: float,
    share: float = 0.25,
    gap: float = 0.01,
    level: float = LEVEL,
) -> tuple[dict[str, tuple[float, float]] | None, dict[str, list[float | None]], str | None]:
    """t intervals over separate fits to each data seed: (intervals, seed-level estimates, why not estimable).

    Why this interval: a data seed is one draw of the data, so the claim "R* is about this" is a
    claim about data draws, and the spread of the fit across data seeds is its sampling variation
    (runs of one seed share their rows and vary together, so the pooled fit's Jacobian standard error
    treats correlated runs as independent). A percentile bootstrap over n data seeds, the previous
    interval, cannot cover at the n users have: at 2 data seeds its resamples are aa, ab and bb, so its
    95% interval is exactly the range of the two seeds' estimates, which holds the truth half the time;
    at 3 it covered R* in 88% of 100 simulated sweeps (96% at 6). Here each seed is fitted on its own
    (started at the pooled optimum, so every seed's fit lands in the same basin), and a Student-t
    interval with n − 1 degrees of freedom is taken on the seed-level estimates, on the log scale for
    the positive quantities (`LOG_SCALE`), and back-transformed. It is centred on the mean of the
    seed-level estimates: centred on the pooled estimate, exploratory simulations saw it fall to 92%.
    Coverage measured by tests/eval/test_datafit.py at 2, 3 and 6 data seeds: 94–96% for R*, β and
    the crossover (docs/evidence.md has the numbers and the command).

    Not estimable (None, with the reason) when a data seed's runs alone cannot identify the fit: fewer
    than 5 runs, one size, no repetition, or R* at the edge of its range in that seed's fit.
    The crossover is left out of the intervals when some seed's fit never falls behind.
    """
    from scipy import stats as sps

    estimates: dict[str, list[float | None]] = {k: [] for k in (*PARAMS, "crossover")}
    for s in np.unique(seeds):
        pick = seeds == s
        res = _solve(u[pick], d[pick], loss[pick], [x0])
        reasons, _ = _check(u[pick], d[pick], res, curvature=False)
        if reasons:
            return (
                None,
                {},
                (
                    f"data seed {s}'s runs alone cannot identify the fit ({reasons[0]}), "
                    "so the intervals over data seeds are not estimable"
                ),
            )
        theta = _unpack(res.x)
        for k, v in zip(PARAMS, theta, strict=True):
            estimates[k].append(v)
        estimates["crossover"].append(crossover_budget(*theta, full, share, gap))
    n = len(estimates["r_star"])
    q = float(sps.t.ppf(0.5 + level / 2, n - 1))
    intervals = {}
    for k, values in estimates.items():
        if any(v is None for v in values):
            continue  # some seed's subset never falls behind: the crossover has no finite interval
        x = np.array(values, dtype=np.float64)
        x = np.log(x) if LOG_SCALE[k] else x
        mean, half = float(x.mean()), q * float(x.std(ddof=1)) / math.sqrt(n)
        lo, hi = mean - half, mean + half
        intervals[k] = (math.exp(lo), math.exp(hi)) if LOG_SCALE[k] else (lo, hi)
    return intervals, estimates, None
