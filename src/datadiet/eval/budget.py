"""When does quantity start to matter? The budget, repetition and memorisation sections of a report.

Input: one row per run with its size (`size_fraction`), budget (`budget_steps`), data and training
seeds, the compute record's `tokens_seen`, `unique_tokens` and `epochs`, the metric (`val_loss`)
and, when probed, memorisation rates (`mem_repeated`, `mem_unique`, `mem_validation`), plus the
repetition grid's `repeat_fraction` / `repeat_count` where a sweep has one. Everything here is
computed from those numbers, so every sentence of the section can be checked against its tables:

- `budget_cells`: per (size, budget), the epochs seen and the mean metric with a Student-t 95%
  interval over data seeds (training seeds averaged first: the data seed is the unit, as in
  `datadiet.eval.inference`); one data seed gives "not estimable" bounds (NaN), never zero width.
- `size_gaps`: per budget, each smaller size minus the largest, paired by data seed.
- `quantity_verdict`: the budget from which a smaller size is worse than the largest with an
  interval above zero at every larger budget tried (and any earlier budgets where it was behind or
  ahead, which make the gap non-monotone), or a statement that it is not behind at the largest;
  and whether every cell was under one epoch, in which case size cannot matter by construction.
- `fit_runs` / `fit_cells`: Muennighoff's data-constrained fit (`datadiet.eval.datafit`) of the runs,
  and its observed against predicted loss per (size, budget) cell.
- `budget_markdown`: the section as markdown tables and sentences, plus figures when asked.
- `axes_html`: those sections for the HTML report (`templates/axes.html.j2`), tables as tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datadiet.eval.datafit import DataFit, Observation, fit_data_constrained
from datadiet.eval.inference import DATA_SEED, SIZE_FRACTION, t_interval

BUDGET = "budget_steps"
BUDGET_POINT = "budget"  # the axis value a run was asked for: steps, or epochs with --epochs
TOKENS_SEEN = "tokens_seen"
UNIQUE_TOKENS = "unique_train_tokens"  # datadiet.train.compute's key
EPOCHS = "epochs"
CORRUPT_RATE = "corrupt_rate"
CORRUPT_KIND = "corrupt_kind"
FILTER = "filter"  # the filter axis' level a run's data went through: "none", or the rules
NO_FILTER = "none"
DOCUMENTS = "stat_documents"  # the variant's document count in the study table (eval.stats, "stat_" prefixed)
DUP_RATE = "dup_rate"
REPEAT_FRACTION = "repeat_fraction"
REPEAT_COUNT = "repeat_count"
MEMORISATION = ("mem_repeated", "mem_unique", "mem_validation")
METRIC = "val_loss"


def _units(runs: pl.DataFrame, keys: Sequence[str], metric: str) -> pl.DataFrame:
    """Training seeds averaged within each (keys, data seed): one value per data draw."""
    frame = runs if DATA_SEED in runs.columns else runs.with_columns(pl.lit(0).alias(DATA_SEED))
    extra = [c for c in (EPOCHS, TOKENS_SEEN, UNIQUE_TOKENS) if c in frame.columns]
    return (
        frame.filter(pl.col(metric).is_not_null() & pl.col(metric).cast(pl.Float64).is_finite())
        .group_by(*keys, DATA_SEED)
        .agg(pl.col(metric).cast(pl.Float64).mean().alias("value"), *[pl.col(c).mean() for c in extra])
        .sort(*keys, DATA_SEED)
    )


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and t interval over data seeds; NaN bounds when not estimable (one seed, or seeds that agree exactly).

    Data seeds that give identical values (at full size without duplication every data seed trains
    on the same rows) are one draw repeated: their spread says nothing, so no zero-width interval.
    """
    mean, lo, hi = t_interval(values)
    if values.size >= 2 and float(np.ptp(values)) == 0.0:
        return float(mean), math.nan, math.nan
    return float(mean), float(lo), float(hi)


def budget_cells(runs: pl.DataFrame, metric: str = METRIC) -> pl.DataFrame:
    """Per (size, budget): epochs, tokens seen, the mean metric and its t interval over data seeds."""
    units = _units(runs, [SIZE_FRACTION, BUDGET], metric)
    rows = []
    for (size, budget), group in units.group_by(SIZE_FRACTION, BUDGET, maintain_order=True):
        mean, lo, hi = _interval(group["value"].to_numpy())
        rows.append(
            {
                SIZE_FRACTION: size,
                BUDGET: budget,
                EPOCHS: float(group[EPOCHS].mean()) if EPOCHS in group.columns else math.nan,  # type: ignore[arg-type]
                TOKENS_SEEN: float(group[TOKENS_SEEN].mean()) if TOKENS_SEEN in group.columns else math.nan,  # type: ignore[arg-type]
                "mean": float(mean),
                "lo": float(lo),
                "hi": float(hi),
                "data_seeds": group.height,
            }
        )
    return pl.DataFrame(rows).sort(SIZE_FRACTION, BUDGET) if rows else pl.DataFrame()


def size_gaps(runs: pl.DataFrame, metric: str = METRIC) -> pl.DataFrame:
    """Per budget and smaller size: its metric minus the largest size's, paired by data seed, with a t interval."""
    units = _units(runs, [SIZE_FRACTION, BUDGET], metric)
    if units.is_empty():
        return pl.DataFrame()
    largest = float(units[SIZE_FRACTION].max())  # type: ignore[arg-type]
    full = units.filter(pl.col(SIZE_FRACTION) == largest).select(BUDGET, DATA_SEED, pl.col("value").alias("full"))
    rows = []
    for (size, budget), group in units.filter(pl.col(SIZE_FRACTION) < largest).group_by(
        SIZE_FRACTION, BUDGET, maintain_order=True
    ):
        paired = group.join(full, on=[BUDGET, DATA_SEED])
        d = (paired["value"] - paired["full"]).to_numpy()
        if d.size == 0:
            continue
        mean, lo, hi = _interval(d)
        epochs = float(paired[EPOCHS].mean()) if EPOCHS in paired.columns else math.nan  # type: ignore[arg-type]
        rows.append(
            {
                SIZE_FRACTION: size,
                BUDGET: budget,
                "epochs_small": epochs,
                "gap": float(mean),
                "lo": float(lo),
                "hi": float(hi),
                "n": int(d.size),
            }
        )
    return pl.DataFrame(rows).sort(SIZE_FRACTION, BUDGET) if rows else pl.DataFrame()


def quantity_verdict(cells: pl.DataFrame, gaps: pl.DataFrame) -> list[str]:
    """Sentences computed from the tables: where (if anywhere) a smaller size falls behind the largest."""
    out = []
    if cells.is_empty():
        return ["no runs with a loss: nothing to say about the budget"]
    max_epochs = float(cells[EPOCHS].max()) if EPOCHS in cells.columns else math.nan  # type: ignore[arg-type]
    if math.isfinite(max_epochs) and max_epochs <= 1.0:
        out.append(
            f"every cell saw at most {max_epochs:.2f} epochs of its data, so no document was repeated in training: "
            "at these budgets size cannot matter by construction"
        )
    if gaps.is_empty():
        return [*out, "the sweep has one size, so the size effect is not estimable"]
    if gaps["lo"].is_nan().all():
        return [*out, "one data seed: the size gaps have no interval (not estimable), so no budget is named"]
    for (size,), group in gaps.group_by(SIZE_FRACTION, maintain_order=True):
        out += _size_verdict(float(size), group.sort(BUDGET))
    return out


def _gap_text(row: dict[str, Any]) -> str:
    return f"{row['gap']:+.3f} (95% CI {row['lo']:.3f} to {row['hi']:.3f})"


def _size_verdict(size: float, group: pl.DataFrame) -> list[str]:
    """Where one smaller size falls behind the largest and stays behind (GROUP sorted by budget).

    A budget where the subset is behind but not at some larger budget is not where quantity "starts to
    matter": the verdict names the budget from which it is behind at every larger budget tried, and
    says so separately when the gaps change sign or lose their interval on the way (sampling noise, or
    a small subset that helps at first and over-fits later).
    """
    rows = group.to_dicts()
    behind = [r["lo"] > 0 for r in rows]
    stays = next((k for k in range(len(rows)) if all(behind[k:])), None)
    out = []
    if stays is None:
        top = rows[-1]
        out.append(
            f"the {size:g} subset is not reliably behind the full set at the largest budget tried "
            f"({int(top[BUDGET]):,} steps, {top['epochs_small']:.2f} epochs of it): loss {_gap_text(top)}"
        )
    else:
        first = rows[stays]
        out.append(
            f"the {size:g} subset falls behind the full set from {int(first[BUDGET]):,} steps "
            f"({first['epochs_small']:.2f} epochs of it) and stays behind at every larger budget tried: "
            f"loss {_gap_text(first)} over data seeds"
        )
    end = len(rows) if stays is None else stays
    early = [r for r, b in zip(rows[:end], behind[:end], strict=True) if b]
    ahead = [r for r in rows if r["hi"] < 0]
    if early:
        out.append(
            f"the {size:g} subset is also behind at "
            + "; ".join(f"{int(r[BUDGET]):,} steps, loss {_gap_text(r)}" for r in early)
            + "; but not at every budget after that: the gap is not monotone in budget"
        )
    if ahead:
        out.append(
            f"the {size:g} subset is reliably ahead of the full set at "
            + "; ".join(f"{int(r[BUDGET]):,} steps, loss {_gap_text(r)}" for r in ahead)
        )
    return out


def _fit_frame(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The runs the fit uses, in the order it sees them: those with unique tokens, tokens seen and the metric."""
    frame = runs if DATA_SEED in runs.columns else runs.with_columns(pl.lit(0).alias(DATA_SEED))
    return frame.drop_nulls([UNIQUE_TOKENS, TOKENS_SEEN, metric])


def fit_runs(runs: pl.DataFrame, metric: str = METRIC) -> DataFit | None:
    """The data-constrained fit of the runs (None without unique tokens and tokens seen)."""
    if not {UNIQUE_TOKENS, TOKENS_SEEN}.issubset(runs.columns):
        return None
    obs = [
        Observation(
            unique=float(r[UNIQUE_TOKENS]),
            seen=float(r[TOKENS_SEEN]),
            loss=float(r[metric]),
            data_seed=int(r[DATA_SEED]),
        )
        for r in _fit_frame(runs, metric).iter_rows(named=True)
    ]
    return fit_data_constrained(obs) if obs else None


def fit_cells(runs: pl.DataFrame, fit: DataFit, metric: str = METRIC) -> pl.DataFrame:
    """Observed against predicted loss, one row per fitted (size, budget) cell, means over its runs.

    Columns: size, steps, epochs, unique tokens, repetitions (R = epochs − 1 beyond the first, 0 under
    one epoch, as in the fit's D′), observed, predicted, residual (observed − predicted) and runs.
    """
    frame = _fit_frame(runs, metric).with_columns(pl.Series("predicted", fit.predicted, dtype=pl.Float64))
    keys = [c for c in (SIZE_FRACTION, BUDGET) if c in frame.columns]
    seen, unique = pl.col(TOKENS_SEEN).cast(pl.Float64), pl.col(UNIQUE_TOKENS).cast(pl.Float64)
    frame = frame.with_columns(
        (seen / unique).alias("fit_epochs"), (seen / pl.min_horizontal(unique, seen) - 1.0).alias("repetitions")
    )
    out = frame.group_by(keys or pl.lit(0)).agg(
        pl.col("fit_epochs").mean().alias(EPOCHS),
        unique.mean().alias(UNIQUE_TOKENS),
        pl.col("repetitions").mean(),
        pl.col(metric).cast(pl.Float64).mean().alias("observed"),
        pl.col("predicted").mean(),
        pl.len().alias("runs"),
    )
    return out.with_columns((pl.col("observed") - pl.col("predicted")).alias("residual")).sort(keys or "observed")


def memorisation_cells(runs: pl.DataFrame, by: str) -> pl.DataFrame:
    """Mean exact-continuation rates per (BY, budget) over runs (BY: repeat_count, or size)."""
    cols = [c for c in MEMORISATION if c in runs.columns]
    if not cols or by not in runs.columns:
        return pl.DataFrame()
    keys = [by, BUDGET] if BUDGET in runs.columns else [by]
    return runs.group_by(*keys).agg(*[pl.col(c).mean() for c in cols], pl.len().alias("runs")).sort(*keys)


def _table(frame: pl.DataFrame, columns: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table: (column, header, format) per column; NaN prints as "not estimable"."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    lines = [head, rule]
    for row in frame.iter_rows(named=True):
        cells = []
        for col, _, fmt in columns:
            v = row.get(col)
            if isinstance(v, float) and math.isnan(v):
                cells.append("not estimable")
            else:
                cells.append(format(v, fmt) if v is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_markdown(fit: DataFit, cells: pl.DataFrame | None = None) -> str:
    """The fit as sentences, a parameter table with intervals, and (given CELLS) observed against predicted loss."""

    def ci(key: str, fmt: str) -> str:
        if fit.intervals is None or key not in fit.intervals:
            return "not estimable"
        lo, hi = fit.intervals[key]
        return f"{format(lo, fmt)} to {format(hi, fmt)}"

    lines = [
        f"| parameter | estimate (all runs) | 95% t interval over data seeds ({fit.n_seeds}), one fit per seed |",
        "|---|---:|---:|",
        f"| R* (repetitions worth 1 − 1/e of their tokens) | {fit.r_star:.3g} | {ci('r_star', '.3g')} |",
        f"| β (data exponent) | {fit.beta:.3g} | {ci('beta', '.3g')} |",
        f"| E (floor, incl. the model term) | {fit.E:.4g} | {ci('E', '.4g')} |",
        f"| B | {fit.B:.4g} | {ci('B', '.4g')} |",
        "",
    ]
    if not fit.identified:
        lines.append(
            "**The grid cannot identify this fit**: "
            + "; ".join(fit.reasons)
            + ". The numbers above are not evidence."
        )
    if fit.interval_reason:
        lines.append(f"{fit.interval_reason[0].upper()}{fit.interval_reason[1:]}.")
    epochs_of = fit.share * (fit.full_unique or 1.0)
    predicted = "Predicted" if fit.identified else "Predicted by the unidentified fit (not evidence)"
    if fit.crossover is not None:
        lines.append(
            f"{predicted}: the {fit.share:g} subset falls {fit.gap:g} nats behind the full set at "
            f"{fit.crossover:,.0f} tokens seen ({fit.crossover / epochs_of:.2f} epochs of the subset; "
            f"95% interval: {ci('crossover', ',.0f')})."
        )
    else:
        lines.append(
            f"{predicted}: the {fit.share:g} subset never falls {fit.gap:g} nats behind the full set "
            f"within 10^6 epochs of it."
        )
    if fit.intervals is not None and "crossover" not in fit.intervals:
        lines.append("The crossover's interval is not estimable: some data seed's own fit never falls behind.")
    lines.extend(fit.notes)
    if cells is not None and not cells.is_empty():
        resid = cells["residual"].abs().to_numpy()
        lines += [
            "",
            f"Observed against predicted loss per fitted cell (means over its runs; largest |residual| "
            f"{resid.max():.4f}, mean {resid.mean():.4f}):",
            "",
            _table(
                cells,
                [
                    (SIZE_FRACTION, "size", "g"),
                    (BUDGET, "steps", ",d"),
                    (EPOCHS, "epochs", ".2f"),
                    (UNIQUE_TOKENS, "unique tokens", ",.0f"),
                    ("repetitions", "repetitions R", ".2f"),
                    ("observed", "observed", ".4f"),
                    ("predicted", "predicted", ".4f"),
                    ("residual", "residual", "+.4f"),
                    ("runs", "runs", "d"),
                ],
            ),
        ]
    return "\n".join(lines)


def budget_markdown(runs: pl.DataFrame, metric: str = METRIC) -> str:
    """The whole section: verdict, per-cell epochs and loss, size gaps, memorisation, the fit."""
    cells = budget_cells(runs, metric)
    gaps = size_gaps(runs, metric)
    parts = ["## When does quantity start to matter?", ""]
    parts += [f"- {s}" for s in quantity_verdict(cells, gaps)]
    parts += ["", f"### {metric} per size and budget (mean over data seeds, t 95% CI)", ""]
    parts.append(
        _table(
            cells,
            [
                (SIZE_FRACTION, "size", "g"),
                (BUDGET, "steps", ",d"),
                (TOKENS_SEEN, "tokens seen", ",.0f"),
                (EPOCHS, "epochs", ".2f"),
                ("mean", metric, ".4f"),
                ("lo", "CI low", ".4f"),
                ("hi", "CI high", ".4f"),
                ("data_seeds", "data seeds", "d"),
            ],
        )
    )
    if not gaps.is_empty():
        parts += ["", "### Smaller size minus the largest, paired by data seed", ""]
        parts.append(
            _table(
                gaps,
                [
                    (SIZE_FRACTION, "size", "g"),
                    (BUDGET, "steps", ",d"),
                    ("epochs_small", "epochs of the subset", ".2f"),
                    ("gap", "loss gap", "+.4f"),
                    ("lo", "CI low", "+.4f"),
                    ("hi", "CI high", "+.4f"),
                ],
            )
        )
    for by in (REPEAT_COUNT, SIZE_FRACTION):
        mem = memorisation_cells(runs, by)
        if not mem.is_empty():
            parts += ["", f"### Exact-continuation rate by {by.replace('_', ' ')} and budget", ""]
            cols = [(by, by.replace("_", " "), "g")] + ([(BUDGET, "steps", ",d")] if BUDGET in mem.columns else [])
            cols += [(c, c.removeprefix("mem_"), ".3f") for c in MEMORISATION if c in mem.columns]
            parts.append(_table(mem, cols))
            break
    fit = fit_runs(runs, metric)
    if fit is not None:
        section = fit_markdown(fit, fit_cells(runs, fit, metric))
        parts += ["", "### Data-constrained fit (Muennighoff et al. 2023)", "", section]
    return "\n".join(parts) + "\n"


def budget_figure(runs: pl.DataFrame, path: Path, metric: str = METRIC) -> Path:
    """Loss against tokens seen and against epochs, one line per size (two panels), as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = budget_cells(runs, metric)
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    for ax, x, label in zip(
        fig.subplots(1, 2), (TOKENS_SEEN, EPOCHS), ("tokens seen", "epochs of the size's data"), strict=True
    ):
        for (size,), group in cells.group_by(SIZE_FRACTION, maintain_order=True):
            g = group.sort(x)
            ax.errorbar(
                g[x].to_numpy(),
                g["mean"].to_numpy(),
                yerr=np.nan_to_num(np.vstack([g["mean"] - g["lo"], g["hi"] - g["mean"]]), nan=0.0),
                marker="o",
                capsize=3,
                label=f"size {size:g}",
            )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def runs_table_rows(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """A runs frame from plain dicts (as a report collects them), with the numeric columns as floats."""
    frame = pl.DataFrame(list(rows))
    casts = [pl.col(c).cast(pl.Float64) for c in (TOKENS_SEEN, UNIQUE_TOKENS, EPOCHS, METRIC) if c in frame.columns]
    return frame.with_columns(casts) if casts else frame


def primary_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """The runs the size × duplication report is about: the largest budget, the lowest corruption, no filter.

    The report's cells are (size, rate); runs at other budgets, corruption rates or filters would be
    pooled into them, so they are left to the sections of `axes_markdown`.
    """
    out = runs
    for col, pick in ((BUDGET_POINT, "max"), (CORRUPT_RATE, "min")):
        if col in out.columns and out[col].drop_nulls().len():
            value = out[col].max() if pick == "max" else out[col].min()
            out = out.filter(pl.col(col) == value)
    out = _unfiltered(out)
    return out if out.height else runs


def _unfiltered(runs: pl.DataFrame) -> pl.DataFrame:
    """The runs of the filter axis' `none` level (or its first level when `none` is not on the axis)."""
    if FILTER not in runs.columns or not runs[FILTER].drop_nulls().len():
        return runs
    levels = runs[FILTER].drop_nulls().unique(maintain_order=True)
    return runs.filter(pl.col(FILTER) == (NO_FILTER if NO_FILTER in levels else levels[0]))


def baseline_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """Runs without injected damage or filtering: the lowest duplication and corruption rates, no filter."""
    out = runs
    for col in (DUP_RATE, CORRUPT_RATE):
        if col in out.columns and out[col].drop_nulls().len():
            out = out.filter(pl.col(col) == out[col].min())
    return _unfiltered(out)


def _mean_table(runs: pl.DataFrame, keys: Sequence[str], metric: str) -> pl.DataFrame:
    """Mean METRIC per KEYS with a t interval over data seeds (training seeds averaged first)."""
    units = _units(runs, list(keys), metric)
    rows = []
    for values, group in units.group_by(*keys, maintain_order=True):
        mean, lo, hi = _interval(group["value"].to_numpy())
        rows.append({**dict(zip(keys, values, strict=True)), "mean": float(mean), "lo": float(lo), "hi": float(hi)})
    return pl.DataFrame(rows).sort(*keys) if rows else pl.DataFrame()


def _axis_section(
    runs: pl.DataFrame, column: str, title: str, header: tuple[str, str], metric: str, documents: bool = False
) -> list[str]:
    """A section of one axis applied after the variants: mean METRIC per size × level (× budget), with intervals.

    With DOCUMENTS, the mean number of training documents per cell too (a filter changes it).
    """
    keys = [SIZE_FRACTION, column] + ([BUDGET] if BUDGET in runs.columns else [])
    runs = runs.filter(pl.col(column).is_not_null())
    table = _mean_table(runs, keys, metric)
    cols = [(SIZE_FRACTION, "size", "g"), (column, *header)]
    cols += [(BUDGET, "steps", ",d")] if BUDGET in keys else []
    if documents and DOCUMENTS in runs.columns and not table.is_empty():
        docs = runs.group_by(keys).agg(pl.col(DOCUMENTS).mean().round(0).cast(pl.Int64))
        table = table.join(docs, on=keys, how="left")
        cols.append((DOCUMENTS, "documents", ",d"))
    cols += [("mean", metric, ".4f"), ("lo", "CI low", ".4f"), ("hi", "CI high", ".4f")]
    return [f"## {title}", "", _table(table, cols), ""]


def axes_markdown(runs: pl.DataFrame, metric: str = METRIC, out_dir: Path | None = None) -> str:
    """Issue 14's sections for a sweep's runs: budget, repetition grid, corruption (each only when present).

    With OUT_DIR, the budget section's figure (loss against tokens seen and epochs) is written there
    as `loss_vs_budget.png` and shown in the markdown.
    """
    parts = []
    if BUDGET_POINT in runs.columns and runs[BUDGET_POINT].drop_nulls().n_unique() > 1:
        parts.append(budget_markdown(baseline_runs(runs), metric))
        if out_dir is not None and {TOKENS_SEEN, EPOCHS}.issubset(runs.columns):
            budget_figure(baseline_runs(runs), out_dir / "loss_vs_budget.png", metric)
            parts.append("![loss against tokens seen and epochs, per size](loss_vs_budget.png)\n")
    if REPEAT_COUNT in runs.columns and runs[REPEAT_COUNT].drop_nulls().len():
        keys = [REPEAT_FRACTION, REPEAT_COUNT] + ([BUDGET] if BUDGET in runs.columns else [])
        table = _mean_table(runs.filter(pl.col(REPEAT_COUNT).is_not_null()), keys, metric)
        parts += ["## Repetition grid (share of rows that are repeats × appearances of each)", ""]
        cols = [(REPEAT_FRACTION, "repeat share", "g"), (REPEAT_COUNT, "repeat count", "d")]
        cols += [(BUDGET, "steps", ",d")] if BUDGET in keys else []
        cols += [("mean", metric, ".4f"), ("lo", "CI low", ".4f"), ("hi", "CI high", ".4f")]
        parts.append(_table(table, cols))
        mem = memorisation_cells(runs.filter(pl.col(REPEAT_COUNT).is_not_null()), REPEAT_COUNT)
        if not mem.is_empty():
            parts += ["", "Exact continuations of the repeated documents by repeat count and budget:", ""]
            mcols = [(REPEAT_COUNT, "repeat count", "d")] + (
                [(BUDGET, "steps", ",d")] if BUDGET in mem.columns else []
            )
            mcols += [(c, c.removeprefix("mem_"), ".3f") for c in MEMORISATION if c in mem.columns]
            parts.append(_table(mem, mcols))
        parts.append("")
    if CORRUPT_RATE in runs.columns and runs[CORRUPT_RATE].drop_nulls().len():
        kind = runs[CORRUPT_KIND].drop_nulls()[0] if CORRUPT_KIND in runs.columns else "corruption"
        parts += _axis_section(runs, CORRUPT_RATE, f"Corruption: {kind}", (f"{kind} rate", "g"), metric)
    if FILTER in runs.columns and runs[FILTER].drop_nulls().len():
        levels = " vs ".join(runs[FILTER].drop_nulls().unique(maintain_order=True).to_list())
        parts += _axis_section(runs, FILTER, f"Quality filter: {levels}", ("filter", "s"), metric, documents=True)
        parts += [
            "A filtered variant trains on fewer documents than the unfiltered one of the same size (the documents "
            "column), so a filter's effect here is that of cleaner and of less data together; compare a filtered "
            "cell with the unfiltered cell of about as many documents to tell them apart.",
            "",
        ]
    return "\n".join(parts)


def axes_html(markdown: str) -> str:
    """The sections of `axes_markdown` as an HTML fragment for the report page (`templates/axes.html.j2`).

    The markdown is rendered by markdown-it (CommonMark plus tables; rich already depends on it)
    with raw HTML disabled, so a label or dataset name holding markup is printed, never run.
    """
    import jinja2
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    from datadiet.eval.report import TEMPLATES

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return env.get_template("axes.html.j2").render(body=Markup(body))  # markdown-it escaped every value
