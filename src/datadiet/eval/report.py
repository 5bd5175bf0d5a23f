"""The sweep report: `report.md`, a self-contained `report.html` and its PNG figures.

Used by `curate report RUNS... | --sweep ID --out DIR` and at the end of `curate sweep`::

    from datadiet.eval.report import write_report
    paths = write_report(out, result=res, runs=runs, curves=curves, title="...", meta={...}, study_match=True)

Contents, in order: what was run; the verdict and the caveats `relate` computed; per metric the
grid of cell means with their 95% intervals over data seeds; the paired differences; the
quantity/quality split; each run's compute (FLOPs, tokens, epochs, time); where the grid is the
study's, its published numbers beside ours with a computed warning when steps or tokenizer
differ; prompted samples from one model per cell; figures (metrics against duplication with
interval bars, learning curves as small multiples, correlation heatmap, the strongest statistic);
and the correlations at the dataset level, ranked by strength.

Both files are rendered from one context by Jinja2 templates (`templates/report.html.j2`,
`report.md.j2`); the HTML template autoescapes every value and the markdown one escapes table
cells, so printed data stays data. Figures are drawn with matplotlib's object API on the Agg
canvas; the HTML embeds them as base64 data URIs, so the one file can be mailed anywhere.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datadiet.eval import inference as inf
from datadiet.eval.relate import (
    DUP_RATE,
    SIZE_FRACTION,
    RelateResult,
    cell_lookup,
    estimate,
    interval,
    metric_name,
    num,
    pct,
)
from datadiet.train.metrics import (
    ACCURACY,
    BITS_PER_BYTE,
    BPB_CONVENTION,
    METRIC_RANGES,
    PERPLEXITY,
    STUDY_ACCURACY,
    STUDY_PERPLEXITY,
    VAL_LOSS,
)

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIG_METRICS = "metrics_vs_duplication.png"
FIG_CURVES = "learning_curves.png"
FIG_HEATMAP = "correlation_heatmap.png"
FIG_SCATTER = "strongest_statistic.png"
TEMPLATES = Path(__file__).with_name("templates")

# The original study's published figures, one run per cell: dup_rate -> size_fraction ->
# (validation loss, its "accuracy" = mean correct tokens per 128-token row, its perplexity =
# mean over batches of exp(batch loss)). It trained 1,000 steps with GPT-2's tokenizer.
STUDY_RESULTS: dict[float, dict[float, tuple[float, float, float]]] = {
    0.0: {0.25: (3.1838, 49.0200, 24.2228), 0.5: (3.1849, 49.1978, 24.2482), 1.0: (3.1859, 49.1947, 24.2707)},
    0.25: {0.25: (3.1836, 49.4500, 24.2176), 0.5: (3.1900, 49.2684, 24.3762), 1.0: (3.1891, 49.3294, 24.3521)},
    0.5: {0.25: (3.2521, 48.3034, 25.9363), 0.5: (3.2564, 48.2553, 26.0492), 1.0: (3.2522, 48.2316, 25.9400)},
    0.75: {0.25: (3.4526, 45.6222, 31.7007), 0.5: (3.4676, 45.4552, 32.1755), 1.0: (3.4568, 45.6691, 31.8266)},
    1.0: {
        0.25: (12.2886, 6.4844, 218062.2969),
        0.5: (12.2574, 7.5622, 211301.1562),
        1.0: (12.0182, 7.3472, 166426.7656),
    },
}
STUDY_STEPS = 1000
STUDY_VOCAB = 50257  # GPT-2's tokenizer
# Our metric compared with each of the study's three figures, in its table's order.
STUDY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("validation loss", VAL_LOSS),
    ('"accuracy" (correct tokens per row)', STUDY_ACCURACY),
    ("perplexity (mean of per-batch exp)", STUDY_PERPLEXITY),
)

# The grids: (column, unit, display scale). Bits per byte comes second: it is the comparable one
# when tokenizers differ.
GRID_METRICS: tuple[tuple[str, str, float], ...] = (
    (VAL_LOSS, "nats per token", 1.0),
    (BITS_PER_BYTE, "bits per UTF-8 byte", 1.0),
    (ACCURACY, "% of tokens", 100.0),
    (PERPLEXITY, "", 1.0),
)
AXIS_LABELS = {
    VAL_LOSS: "validation loss (nats/token)",
    ACCURACY: "top-1 accuracy (%)",
    PERPLEXITY: "perplexity (log scale)",
    BITS_PER_BYTE: "bits per byte",
    STUDY_ACCURACY: "correct tokens per row",
    STUDY_PERPLEXITY: "study perplexity (log scale)",
}
# Typed Any: matplotlib types rc_context keys as a Literal of every rc name.
STYLE: Any = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
COLORS = ("#1b6ca8", "#d1495b", "#2e8b57", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#666666")
TOP_CORRELATIONS = 20

Table = tuple[list[str], list[list[str]]]


# -- tables ---------------------------------------------------------------------------------------


def _levels(runs: pl.DataFrame, column: str) -> list[float]:
    return sorted(float(v) for v in runs[column].drop_nulls().unique().to_list())


def _scaled(cell: Mapping[str, Any] | None, scale: float) -> str:
    if cell is None:
        return ""
    return estimate(cell["mean"] * scale, cell["lo"] * scale, cell["hi"] * scale)


def grid_table(result: RelateResult, runs: pl.DataFrame, metric: str, scale: float = 1.0) -> Table:
    """One metric in the study's layout: a row per duplication rate, a column per size (mean [95% CI])."""
    sizes = _levels(runs, SIZE_FRACTION)
    header = ["duplication", *(f"{100 * s:.0f}% of the data" for s in sizes)]
    cells = cell_lookup(result, metric)
    rows = [
        [f"{100 * rate:.0f}%", *(_scaled(cells.get((s, rate)), scale) for s in sizes)]
        for rate in _levels(runs, DUP_RATE)
    ]
    return header, rows


def effects_table(result: RelateResult) -> Table:
    header = ["metric", "change", "difference", "95% CI", "data seeds"]
    rows = []
    for e in result.effects.filter(pl.col("n") > 0).iter_rows(named=True):
        if e["factor"] == "quality":
            change = f"duplication {pct(e['from'])} → {pct(e['to'])} (at {pct(e['at'])} of the data)"
        else:
            change = f"size {pct(e['from'])} → {pct(e['to'])} (at {pct(e['at'])} duplication)"
        rows.append([metric_name(e["metric"]), change, num(e["effect"]), interval(e["lo"], e["hi"]), str(e["n"])])
    return header, rows


def split_table(result: RelateResult) -> Table:
    header = ["metric", "quantity (size)", "quality (duplication)", "interaction", "data seeds"]
    rows = []
    for s in result.splits.iter_rows(named=True):
        cells = [estimate(s[f"{t}_share"], s[f"{t}_share_lo"], s[f"{t}_share_hi"], pct) for t in inf.SPLIT_TERMS]
        rows.append([metric_name(s["metric"]), *cells, str(s["data_seeds"])])
    return header, rows


def eta_table(result: RelateResult) -> Table:
    header = ["metric", "size", "duplication", "interaction", "data seed (block)", "replication noise"]
    terms = ("quantity", "quality", "interaction", "block", "noise")
    rows = [
        [metric_name(s["metric"]), *(pct(s[f"eta_{t}"]) for t in terms)] for s in result.splits.iter_rows(named=True)
    ]
    return header, rows


COMPUTE_COLUMNS = (
    ("tokens_seen", "tokens seen"),
    ("train_set_tokens", "training-set tokens"),
    ("unique_train_tokens", "unique tokens"),
    ("epochs", "epochs"),
    ("unique_epochs", "passes over unique tokens"),
    ("flops", "FLOPs"),
    ("wall_time_s", "wall time (s)"),
    ("tokens_per_s", "tokens/s"),
)


def compute_table(runs: pl.DataFrame) -> Table:
    """Each cell's compute, the mean over its runs (runs without a compute record are left out)."""
    cols = [(c, label) for c, label in COMPUTE_COLUMNS if c in runs.columns]
    header = ["size", "duplication", *(label for _, label in cols), "runs"]
    if not cols:
        return header, []
    agg = (
        runs.filter(pl.col(cols[0][0]).is_not_null())
        .group_by(SIZE_FRACTION, DUP_RATE)
        .agg(*(pl.col(c).mean() for c, _ in cols), pl.len().alias("n"))
        .sort(SIZE_FRACTION, DUP_RATE)
    )
    rows = []
    for r in agg.iter_rows(named=True):
        values = [f"{r[c]:.3g}" if c == "flops" else num(r[c]) for c, _ in cols]
        rows.append([pct(r[SIZE_FRACTION]), pct(r[DUP_RATE]), *values, str(r["n"])])
    return header, rows


def study_table(runs: pl.DataFrame) -> Table:
    """The study's published numbers beside ours (mean over runs) and the difference, cell by cell."""
    header = ["duplication", "size", "figure", "study", "ours", "ours − study"]
    rows = []
    for k, (label, metric) in enumerate(STUDY_COLUMNS):
        if metric not in runs.columns:
            continue
        means = {
            (r[SIZE_FRACTION], r[DUP_RATE]): r["m"]
            for r in runs.group_by(SIZE_FRACTION, DUP_RATE).agg(pl.col(metric).mean().alias("m")).iter_rows(named=True)
        }
        for rate, by_size in STUDY_RESULTS.items():
            for size, figures in by_size.items():
                ours = means.get((size, rate))
                diff = ours - figures[k] if ours is not None else None
                rows.append([pct(rate), pct(size), label, num(figures[k]), num(ours), num(diff)])
    return header, rows


def study_warnings(meta: Mapping[str, Any]) -> list[str]:
    """Why numbers beside the study's may not be comparable, computed from what was run."""
    out = []
    steps = meta.get("steps")
    if steps is not None and int(steps) != STUDY_STEPS:
        out.append(
            f"These runs trained {int(steps):,} steps, the study {STUDY_STEPS:,}: absolute levels differ for that "
            "reason alone; compare the pattern across cells, not the numbers."
        )
    vocab = meta.get("vocab_size")
    if vocab is not None and int(vocab) != STUDY_VOCAB:
        out.append(
            f"The tokenizer has {int(vocab):,} tokens, the study's (GPT-2's) {STUDY_VOCAB:,}: loss, perplexity and "
            "accuracy per token are not comparable across tokenizers; bits per byte would be."
        )
    elif vocab is None:
        out.append("The tokenizer is not recorded: per-token figures may not be comparable with the study's.")
    return out


def summary_table(runs: pl.DataFrame) -> list[dict[str, str]]:
    """One row per (size, duplication) cell: loss, bits per byte and accuracy as 'mean [95% CI]' strings.

    The CLI renders it with rich; keys are the column headers, in order.
    """
    metrics = [(col, scale) for col, _, scale in GRID_METRICS[:3] if col in runs.columns]
    per = {
        col: inf.cell_means(inf.unit_values(runs, col), bounds=METRIC_RANGES.get(col, (-math.inf, math.inf)))
        for col, _ in metrics
    }
    look = {col: {(r[SIZE_FRACTION], r[DUP_RATE]): r for r in f.iter_rows(named=True)} for col, f in per.items()}
    out = []
    for size in _levels(runs, SIZE_FRACTION):
        for rate in _levels(runs, DUP_RATE):
            key = (size, rate)
            if not any(key in look[col] for col, _ in metrics):
                continue
            row = {"size": pct(size), "duplication": pct(rate)}
            for col, scale in metrics:
                row[metric_name(col)] = _scaled(look[col].get(key), scale)
            first = next((look[col][key] for col, _ in metrics if key in look[col]), None)
            row["data seeds × training seeds"] = (
                f"{first['data_seeds']} × {first['train_seeds'] // max(first['data_seeds'], 1)}" if first else ""
            )
            out.append(row)
    return out


def correlation_table(result: RelateResult, top: int = TOP_CORRELATIONS) -> Table:
    header = ["rank", "statistic", "metric", "Pearson r [95% CI]", "Spearman ρ [95% CI]", "datasets"]
    rows = []
    for k, c in enumerate(result.correlations.head(top).iter_rows(named=True), start=1):
        rows.append(
            [
                str(k),
                metric_name(c["statistic"]),
                metric_name(c["metric"]),
                estimate(c["pearson"], c["pearson_lo"], c["pearson_hi"]),
                estimate(c["spearman"], c["spearman_lo"], c["spearman_hi"]),
                str(c["datasets"]),
            ]
        )
    return header, rows


# -- figures --------------------------------------------------------------------------------------


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def _plot_metrics(result: RelateResult, runs: pl.DataFrame, path: Path) -> None:
    metrics = [(col, scale) for col, _, scale in GRID_METRICS if col in result.metrics]
    with _figure(3.8 * max(len(metrics), 1), 3.4) as fig:
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        for ax, (col, scale) in zip(axes, metrics, strict=False):
            cells = result.cells.filter(pl.col("metric") == col)
            for k, size in enumerate(_levels(runs, SIZE_FRACTION)):
                part = cells.filter(pl.col(SIZE_FRACTION) == size).sort(DUP_RATE)
                x = 100 * part[DUP_RATE].to_numpy()
                y = part["mean"].to_numpy() * scale
                lo, hi = part["lo"].to_numpy() * scale, part["hi"].to_numpy() * scale
                err = np.nan_to_num(np.vstack([y - lo, hi - y]))
                color = COLORS[k % len(COLORS)]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=color, label=f"{100 * size:.0f}% of data")
            ax.set_title(metric_name(col))
            ax.set_xlabel("duplication rate (%)")
            ax.set_ylabel(AXIS_LABELS.get(col, col))
            if col == PERPLEXITY:
                ax.set_yscale("log")  # 20 to 200,000 in the study's grid: only a log axis shows both ends
            ax.legend()
        fig.suptitle("Cell means against duplication rate (bars: 95% CI over data seeds, where estimable)")
        fig.savefig(path, format="png")


def _plot_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], runs: pl.DataFrame, path: Path) -> None:
    """Small multiples: one panel per (size, rate) cell, one line per run (colour: data seed)."""
    sizes, rates = _levels(runs, SIZE_FRACTION), _levels(runs, DUP_RATE)
    data_seeds = _levels(runs, inf.DATA_SEED) if inf.DATA_SEED in runs.columns else [0.0]
    with _figure(2.3 * max(len(rates), 1) + 0.6, 1.9 * max(len(sizes), 1) + 0.6) as fig:
        axes = fig.subplots(max(len(sizes), 1), max(len(rates), 1), squeeze=False, sharex=True, sharey=True)
        for row in runs.iter_rows(named=True):
            records = curves.get(row["run"], [])
            i, j = sizes.index(float(row[SIZE_FRACTION])), rates.index(float(row[DUP_RATE]))
            ds = float(row.get(inf.DATA_SEED) or 0)
            color = COLORS[data_seeds.index(ds) % len(COLORS)]
            style = "-" if int(row.get("seed") or 0) % 2 == 0 else "--"
            val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
            train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
            if train:
                axes[i][j].plot(*zip(*train, strict=True), color=color, lw=0.6, alpha=0.35)
            if val:
                axes[i][j].plot(*zip(*val, strict=True), color=color, lw=1.2, ls=style, marker=".", ms=3)
        for i, size in enumerate(sizes):
            for j, rate in enumerate(rates):
                ax = axes[i][j]
                ax.set_title(f"{100 * size:.0f}% data · {100 * rate:.0f}% dup", fontsize=8)
                if i == len(sizes) - 1:
                    ax.set_xlabel("step")
                if j == 0:
                    ax.set_ylabel("loss (nats)")
        handles = [
            matplotlib.lines.Line2D([], [], color=COLORS[k % len(COLORS)], label=f"data seed {d:g}")
            for k, d in enumerate(data_seeds)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=max(len(handles), 1))
        fig.suptitle("Learning curves per cell\nvalidation: points (dashed: odd training seed); training: faint")
        fig.savefig(path, format="png")


def _plot_heatmap(result: RelateResult, path: Path) -> None:
    corr = result.correlations
    stats = list(dict.fromkeys(corr["statistic"].to_list()))[:TOP_CORRELATIONS]
    metrics = list(dict.fromkeys(corr["metric"].to_list()))
    grid = np.full((len(stats), len(metrics)), np.nan)
    for c in corr.iter_rows(named=True):
        if c["statistic"] in stats:
            grid[stats.index(c["statistic"]), metrics.index(c["metric"])] = c["pearson"]
    with _figure(2.4 + 1.3 * max(len(metrics), 1), 1.2 + 0.36 * max(len(stats), 1)) as fig:
        ax = fig.subplots()
        if not stats or not metrics:
            ax.axis("off")
            ax.text(0.5, 0.5, "no dataset statistics to correlate", ha="center", va="center")
        else:
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
            ax.set_xticks(range(len(metrics)), [metric_name(m) for m in metrics], rotation=30, ha="right")
            ax.set_yticks(range(len(stats)), [metric_name(s) for s in stats])
            ax.grid(False)
            for i in range(len(stats)):
                for j in range(len(metrics)):
                    v = grid[i, j]
                    text = "n/a" if np.isnan(v) else f"{v:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if abs(v) > 0.6 else "k")
            fig.colorbar(image, ax=ax, label="Pearson r")
            ax.set_title("Dataset statistics vs metrics (Pearson r over datasets, strongest first)")
        fig.savefig(path, format="png")


def _plot_scatter(result: RelateResult, runs: pl.DataFrame, path: Path) -> None:
    metrics = [m for m in result.metrics if m in runs.columns]
    with _figure(3.8 * max(len(metrics), 1), 3.4) as fig:
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=False):
            stat = result.strongest_statistic(metric)
            ax.set_ylabel(AXIS_LABELS.get(metric, metric_name(metric)))
            if stat is None or stat not in runs.columns:
                ax.set_title(f"{metric_name(metric)}: no varying statistic")
                continue
            key = "variant" if "variant" in runs.columns else "run"
            per = inf.dataset_level(runs, key, [stat, metric, DUP_RATE]).drop_nulls()
            x = per[stat].to_numpy()
            y = per[metric].to_numpy() * (100.0 if metric == ACCURACY else 1.0)
            points = ax.scatter(x, y, c=100 * per[DUP_RATE].to_numpy(), cmap="viridis", s=26, edgecolors="none")
            if np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                xs = np.linspace(x.min(), x.max(), 50)
                r = result.correlations.filter((pl.col("statistic") == stat) & (pl.col("metric") == metric))
                ax.plot(xs, slope * xs + intercept, color="#d1495b", lw=1.5, label=f"r = {r['pearson'][0]:.2f}")
                ax.legend()
            ax.set_xlabel(metric_name(stat))
            ax.set_title(f"{metric_name(metric)}\nvs {metric_name(stat)} (per dataset)", fontsize=9)
            fig.colorbar(points, ax=ax, label="duplication rate (%)")
        fig.savefig(path, format="png")


def draw_figures(
    out_dir: Path, result: RelateResult, runs: pl.DataFrame, curves: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, Path]:
    """Write the four PNGs; returns name -> path."""
    figures = {
        "metrics_vs_duplication": out_dir / FIG_METRICS,
        "learning_curves": out_dir / FIG_CURVES,
        "correlation_heatmap": out_dir / FIG_HEATMAP,
        "strongest_statistic": out_dir / FIG_SCATTER,
    }
    _plot_metrics(result, runs, figures["metrics_vs_duplication"])
    _plot_curves(curves, runs, figures["learning_curves"])
    _plot_heatmap(result, figures["correlation_heatmap"])
    _plot_scatter(result, runs, figures["strongest_statistic"])
    return figures


# -- the document ---------------------------------------------------------------------------------

Block = dict[str, Any]


def _table(content: Table, caption: str = "") -> Block:
    return {"kind": "table", "header": content[0], "rows": content[1], "caption": caption}


def _results_sections(result: RelateResult, runs: pl.DataFrame) -> list[tuple[str, list[Block]]]:
    grids: list[Block] = [
        {
            "kind": "p",
            "text": "Mean over data seeds (each data seed's training seeds averaged first) and its 95% t interval "
            f"over data seeds. Convention: {BPB_CONVENTION}.",
        }
    ]
    for col, unit, scale in GRID_METRICS:
        if col in result.metrics:
            name = metric_name(col)
            grids += [{"kind": "h3", "text": f"{name[0].upper()}{name[1:]}" + (f" ({unit})" if unit else "")}]
            grids += [_table(grid_table(result, runs, col, scale))]
    split_note = (
        "Shares of the systematic variance between cells from a two-way ANOVA of the per-data-seed values (size "
        "and duplication categorical, their interaction, data seed as block); intervals invert the noncentral F "
        "distribution, jointly 95% (Bonferroni). Below: each term's share of the total sum of squares."
    )
    return [
        ("Results by cell", grids),
        ("Differences, paired by data seed", [_table(effects_table(result))]),
        (
            "Quantity or quality?",
            [{"kind": "p", "text": split_note}, _table(split_table(result)), _table(eta_table(result))],
        ),
    ]


def _context_sections(
    result: RelateResult,
    runs: pl.DataFrame,
    meta: Mapping[str, Any],
    study_match: bool,
    samples: Sequence[Mapping[str, str]],
) -> list[tuple[str, list[Block]]]:
    from datadiet.train.compute import FLOPS_FORMULA

    sections = _results_sections(result, runs)
    sections.append(
        ("Compute per cell", [{"kind": "p", "text": f"FLOPs = {FLOPS_FORMULA}."}, _table(compute_table(runs))])
    )
    if study_match:
        warnings = [{"kind": "warning", "text": w} for w in study_warnings(meta)]
        note = {
            "kind": "p",
            "text": "The study's published figures (one run per cell) and ours with the study's own definitions: "
            "its perplexity is the mean of per-batch exp(loss), its accuracy the mean number of correct tokens per "
            "context-length row.",
        }
        sections.append(("Beside the original study", [*warnings, note, _table(study_table(runs))]))
    if samples:
        items = [{k: visible(v) for k, v in sample.items()} for sample in samples]
        sections.append(("Samples, one model per cell", [{"kind": "samples", "items": items}]))
    return sections


def _document(
    result: RelateResult,
    runs: pl.DataFrame,
    figures: Mapping[str, Path],
    meta: Mapping[str, Any],
    study_match: bool,
    samples: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """The context both templates render: meta rows, verdict, caveats and sections of typed blocks."""
    meta_rows = [[visible(k), visible(v)] for k, v in meta.items() if v is not None and k != "runs"]
    meta_rows.append(["runs", str(runs.height)])
    meta_rows.append(["bits per byte", BPB_CONVENTION])
    sections = _context_sections(result, runs, meta, study_match, samples)
    captions = {
        "metrics_vs_duplication": "Each metric against duplication rate, one line per dataset size",
        "learning_curves": "Learning curves, one panel per cell",
        "correlation_heatmap": "Correlation heatmap of dataset statistics and model metrics (dataset level)",
        "strongest_statistic": "The strongest statistic against each metric, one point per dataset",
    }
    images = [{"kind": "img", "alt": captions[k], "name": p.name, "uri": _data_uri(p)} for k, p in figures.items()]
    sections.append(("Figures", images))
    if not result.correlations.is_empty():
        sections.append(("Correlations, strongest first", [_table(correlation_table(result))]))
    return {"meta": meta_rows, "verdict": result.verdict, "caveats": result.caveats, "sections": sections}


# The control characters ui.py shows as escapes (C0 but tab and newline, DEL, C1, bidi overrides):
# a model's samples are data and may hold any of them (a NUL makes report.md binary).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(value: object) -> str:
    """VALUE as text with its control characters written as escapes (`\\x00`), never sent raw."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", str(value)
    )


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    return env


def write_report(
    out_dir: Path,
    *,
    result: RelateResult,
    runs: pl.DataFrame,
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    title: str,
    meta: Mapping[str, Any],
    study_match: bool,
    samples: Sequence[Mapping[str, str]] = (),
) -> dict[str, Path]:
    """Write report.md, report.html and the four PNG figures into `out_dir` (created if needed).

    Args:
        out_dir: Destination folder.
        result: `relate`'s output for these runs.
        runs: One row per run: factors, statistics, metrics and compute (see `datadiet.eval.relate`).
        curves: Run ref -> its metrics.jsonl records (`step`, `train_loss`, `val_loss`).
        title: The report's heading.
        meta: What was run and where (machine, preset, steps, vocab_size, date, ...), shown as a table.
        study_match: The grid is the study's (paper preset, its sizes and rates): add its numbers.
        samples: One prompted sample per cell: dicts with `cell`, `run`, `prompt`, `text`.

    Returns:
        Name -> path of every file written ("markdown", "html" and one key per figure).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(out_dir, result, runs, curves)
    context = {"title": title, **_document(result, runs, figures, meta, study_match, samples)}
    md_path, html_path = out_dir / REPORT_MD, out_dir / REPORT_HTML
    md_path.write_text(_environment(False).get_template("report.md.j2").render(context), encoding="utf-8")
    html_path.write_text(_environment(True).get_template("report.html.j2").render(context), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, **figures}
