"""The sweep report: `report.md`, a self-contained `report.html` and its PNG figures.

Used by `curate report RUNS... | --sweep ID --out DIR` and at the end of `curate sweep`::

    from datadiet.eval.report import write_report
    paths = write_report(out, result=res, runs=runs, curves=curves, title="...", meta={...}, study_match=True)

Contents: the verdict; the grid in the original study's layout (validation loss, accuracy and
perplexity by size x duplication, mean ± seed standard deviation); where the grid is the study's
(`study_match`), its published numbers beside ours with the differences; the quantity/quality
variance split and effect sizes; and four figures: each metric against duplication rate (one line
per size, error bars over seeds), training and validation curves of every run, a Pearson heatmap
of statistics x metrics, and the strongest statistic against each metric with its least-squares line.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot global state, no
display needed). The HTML embeds every image as a base64 data URI and its CSS inline, so the one
file can be mailed or attached anywhere.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datadiet.eval.relate import DUP_RATE, SIZE_FRACTION, RelateResult
from datadiet.train.metrics import ACCURACY, PERPLEXITY, STUDY_ACCURACY, STUDY_PERPLEXITY, VAL_LOSS

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIG_METRICS = "metrics_vs_duplication.png"
FIG_CURVES = "training_curves.png"
FIG_HEATMAP = "correlation_heatmap.png"
FIG_SCATTER = "strongest_statistic.png"

# The original study's published figures, one run per cell: dup_rate -> size_fraction ->
# (validation loss, its "accuracy" = mean correct tokens per 128-token row, its perplexity =
# mean over batches of exp(batch loss)).
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
# Our metric compared with each of the study's three figures, in its table's order.
STUDY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("validation loss", VAL_LOSS),
    ('"accuracy" (correct tokens per row)', STUDY_ACCURACY),
    ("perplexity (mean of per-batch exp)", STUDY_PERPLEXITY),
)

# The grid in the study's layout: (title, column, unit, scale applied for display).
GRID_METRICS: tuple[tuple[str, str, str, float], ...] = (
    ("Validation loss", VAL_LOSS, "nats/token", 1.0),
    ("Top-1 accuracy", ACCURACY, "%", 100.0),
    ("Perplexity", PERPLEXITY, "", 1.0),
)
AXIS_LABELS = {
    VAL_LOSS: "validation loss (nats/token)",
    ACCURACY: "top-1 accuracy (%)",
    PERPLEXITY: "perplexity",
    STUDY_ACCURACY: "correct tokens per row",
    STUDY_PERPLEXITY: "study perplexity (log scale)",
    "bits_per_byte": "bits per byte",
}
# Typed Any: matplotlib types rc_context keys as a Literal of every rc name.
STYLE: Any = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
MAX_LEGEND = 40
COLORS = ("#1b6ca8", "#d1495b", "#2e8b57", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#666666")

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f3f5f7; } td:first-child, th:first-child { text-align: left; }
.verdict { background: #f6f8fa; border-left: 4px solid #1b6ca8; padding: .8em 1em; }
img { max-width: 100%; } .meta td { text-align: left; }
"""


# -- tables ---------------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0) -> str:
    if value is None or not math.isfinite(value):
        return "n/a" if value is None or math.isnan(value) else "inf"
    v = value * scale
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.2f}"


def _cells(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Mean, seed std (ddof 1) and count of `metric` per (size, rate) cell."""
    return (
        runs.filter(pl.col(metric).is_not_null())
        .group_by(SIZE_FRACTION, DUP_RATE)
        .agg(
            pl.col(metric).cast(pl.Float64).mean().alias("mean"),
            pl.col(metric).cast(pl.Float64).std(ddof=1).alias("std"),
            pl.len().alias("n"),
        )
        .sort(SIZE_FRACTION, DUP_RATE)
    )


def _levels(runs: pl.DataFrame, column: str) -> list[float]:
    return sorted(float(v) for v in runs[column].unique().to_list() if v is not None)


def _mean_pm(cell: Mapping[str, Any] | None, scale: float) -> str:
    if cell is None:
        return ""
    text = _fmt(cell["mean"], scale)
    if cell["n"] > 1 and cell["std"] is not None:
        text += f" ± {_fmt(cell['std'], scale)}"
    return text


def grid_table(runs: pl.DataFrame, metric: str, scale: float = 1.0) -> tuple[list[str], list[list[str]]]:
    """The study's layout for one metric: a row per duplication rate, a column per size (mean ± seed std)."""
    sizes = _levels(runs, SIZE_FRACTION)
    header = ["duplication", *(f"{100 * s:.0f}% data" for s in sizes)]
    if metric not in runs.columns:
        return header, []
    cells = {(r[SIZE_FRACTION], r[DUP_RATE]): r for r in _cells(runs, metric).iter_rows(named=True)}
    rows = []
    for rate in _levels(runs, DUP_RATE):
        rows.append([f"{100 * rate:.0f}%", *(_mean_pm(cells.get((s, rate)), scale) for s in sizes)])
    return header, rows


def study_table(runs: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The study's published numbers beside ours (mean over seeds) and the difference, cell by cell."""
    header = ["duplication", "size", "figure", "study", "ours", "ours − study"]
    rows = []
    for label, metric in STUDY_COLUMNS:
        if metric not in runs.columns:
            continue
        cells = {(r[SIZE_FRACTION], r[DUP_RATE]): r for r in _cells(runs, metric).iter_rows(named=True)}
        k = [lbl for lbl, _ in STUDY_COLUMNS].index(label)
        for rate, by_size in STUDY_RESULTS.items():
            for size, figures in by_size.items():
                cell = cells.get((size, rate))
                ours = cell["mean"] if cell else None
                diff = ours - figures[k] if ours is not None else None
                rows.append(
                    [f"{100 * rate:.0f}%", f"{100 * size:.0f}%", label, _fmt(figures[k]), _fmt(ours), _fmt(diff)]
                )
    return header, rows


def summary_table(runs: pl.DataFrame) -> list[dict[str, str]]:
    """One row per (size, duplication) cell with loss, accuracy and perplexity as 'mean ± std' strings.

    The CLI renders it with rich; keys are the column headers, in order.
    """
    metrics = [(title, col, scale) for title, col, _, scale in GRID_METRICS if col in runs.columns]
    per = {
        col: {(r[SIZE_FRACTION], r[DUP_RATE]): r for r in _cells(runs, col).iter_rows(named=True)}
        for _, col, _ in metrics
    }
    out = []
    for size in _levels(runs, SIZE_FRACTION):
        for rate in _levels(runs, DUP_RATE):
            key = (size, rate)
            if not any(key in per[col] for _, col, _ in metrics):
                continue
            row = {"size": f"{100 * size:.0f}%", "duplication": f"{100 * rate:.0f}%"}
            for title, col, scale in metrics:
                row[title.lower() + (" (%)" if scale == 100.0 else "")] = _mean_pm(per[col].get(key), scale)
            row["seeds"] = str(max((per[col][key]["n"] for _, col, _ in metrics if key in per[col]), default=0))
            out.append(row)
    return out


def _fit_table(result: RelateResult) -> tuple[list[str], list[list[str]]]:
    header = ["metric", "R²", "quantity (size) share", "quality (duplication) share", "runs"]
    rows = []
    for f in result.fits.iter_rows(named=True):
        rows.append(
            [
                f["metric"],
                _fmt(f["r2"]),
                f"{_fmt(f['quantity_share'])} [{_fmt(f['quantity_share_lo'])}, {_fmt(f['quantity_share_hi'])}]",
                f"{_fmt(f['quality_share'])} [{_fmt(f['quality_share_lo'])}, {_fmt(f['quality_share_hi'])}]",
                str(f["n"]),
            ]
        )
    return header, rows


def _correlation_table(result: RelateResult) -> tuple[list[str], list[list[str]]]:
    header = ["statistic", "metric", "Pearson r [95% CI]", "Spearman ρ [95% CI]", "runs"]
    rows = []
    for c in result.correlations.iter_rows(named=True):
        rows.append(
            [
                c["statistic"],
                c["metric"],
                f"{_fmt(c['pearson'])} [{_fmt(c['pearson_lo'])}, {_fmt(c['pearson_hi'])}]",
                f"{_fmt(c['spearman'])} [{_fmt(c['spearman_lo'])}, {_fmt(c['spearman_hi'])}]",
                str(c["n"]),
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


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def _plot_metrics(runs: pl.DataFrame, path: Path) -> None:
    metrics = [(title, col, unit, scale) for title, col, unit, scale in GRID_METRICS if col in runs.columns]
    with _figure(4.2 * max(len(metrics), 1), 3.6) as fig:
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        for ax, (title, col, _, scale) in zip(axes, metrics, strict=False):
            cells = _cells(runs, col)
            for k, size in enumerate(_levels(runs, SIZE_FRACTION)):
                part = cells.filter(pl.col(SIZE_FRACTION) == size).sort(DUP_RATE)
                x = 100 * part[DUP_RATE].to_numpy()
                y = part["mean"].to_numpy() * scale
                err = np.nan_to_num(part["std"].fill_null(0.0).to_numpy() * scale)
                ax.errorbar(
                    x,
                    y,
                    yerr=err,
                    marker="o",
                    capsize=3,
                    color=COLORS[k % len(COLORS)],
                    label=f"{100 * size:.0f}% of data",
                )
            ax.set_title(title)
            ax.set_xlabel("duplication rate (%)")
            ax.set_ylabel(AXIS_LABELS[col])
            ax.legend()
            if col == PERPLEXITY:
                # Perplexity spans 20 to 200,000 in the study's grid: only a log axis shows both ends.
                ax.set_yscale("log")
                ax.set_ylabel("perplexity (log scale)")
        fig.suptitle("Metrics against duplication rate (error bars: ± 1 s.d. over seeds)")
        _save(fig, path)


def _plot_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
    with _figure(11, 4) as fig:
        ax_train, ax_val = fig.subplots(1, 2, sharey=True)
        labels = sorted(curves)
        # Up to 8 runs get distinct colours; more share a colormap in label order, so runs whose
        # labels sort together (same size, neighbouring rates) get neighbouring shades.
        cmap = matplotlib.colormaps["viridis"]
        palette = (
            list(COLORS)
            if len(labels) <= len(COLORS)
            else [cmap(k / max(len(labels) - 1, 1)) for k in range(len(labels))]
        )
        for k, label in enumerate(labels):
            records = curves[label]
            color = palette[k]
            train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
            val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
            if train:
                ax_train.plot(*zip(*train, strict=True), color=color, lw=1, alpha=0.85, label=label)
            if val:
                ax_val.plot(*zip(*val, strict=True), color=color, lw=1.2, marker=".", label=label)
        for ax, title in ((ax_train, "Training loss"), (ax_val, "Validation loss")):
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("loss (nats/token)")
        if 0 < len(curves) <= MAX_LEGEND:
            ax_val.legend(
                loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, ncols=1 if len(curves) <= 20 else 2
            )
        _save(fig, path)


def _plot_heatmap(result: RelateResult, path: Path) -> None:
    corr = result.correlations
    stats = list(dict.fromkeys(corr["statistic"].to_list()))
    metrics = list(dict.fromkeys(corr["metric"].to_list()))
    grid = np.full((len(stats), len(metrics)), np.nan)
    for c in corr.iter_rows(named=True):
        grid[stats.index(c["statistic"]), metrics.index(c["metric"])] = c["pearson"]
    with _figure(1.6 + 1.3 * max(len(metrics), 1), 1.2 + 0.42 * max(len(stats), 1)) as fig:
        ax = fig.subplots()
        if not stats or not metrics:
            ax.axis("off")
            ax.text(0.5, 0.5, "no dataset statistics to correlate", ha="center", va="center")
            _save(fig, path)
            return
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(metrics)), metrics, rotation=30, ha="right")
        ax.set_yticks(range(len(stats)), stats)
        ax.grid(False)
        for i in range(len(stats)):
            for j in range(len(metrics)):
                v = grid[i, j]
                ax.text(
                    j,
                    i,
                    "n/a" if np.isnan(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(v) > 0.6 else "black",
                )
        fig.colorbar(image, ax=ax, label="Pearson r")
        ax.set_title("Dataset statistics vs model metrics (Pearson r over runs)")
        _save(fig, path)


def _plot_scatter(result: RelateResult, runs: pl.DataFrame, metrics: Sequence[str], path: Path) -> None:
    with _figure(4.2 * max(len(metrics), 1), 3.6) as fig:
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=False):
            stat = result.strongest_statistic(metric)
            ax.set_ylabel(AXIS_LABELS.get(metric, metric))
            if stat is None or stat not in runs.columns:
                ax.set_title(f"{metric}: no varying statistic")
                continue
            pair = runs.select(pl.col(stat).cast(pl.Float64), pl.col(metric).cast(pl.Float64), DUP_RATE).drop_nulls()
            # Linear axes: the line is the least-squares fit behind Pearson's r, which a log axis would bend.
            x, y = pair[stat].to_numpy(), pair[metric].to_numpy() * (100.0 if metric == ACCURACY else 1.0)
            points = ax.scatter(x, y, c=100 * pair[DUP_RATE].to_numpy(), cmap="viridis", s=28, edgecolors="none")
            if np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                xs = np.linspace(x.min(), x.max(), 50)
                r = float(
                    result.correlations.filter((pl.col("statistic") == stat) & (pl.col("metric") == metric))[
                        "pearson"
                    ][0]
                )
                ax.plot(xs, slope * xs + intercept, color="#d1495b", lw=1.5, label=f"least squares (r = {r:.2f})")
                ax.legend()
            ax.set_xlabel(stat)
            ax.set_title(f"{metric} vs {stat}")
            fig.colorbar(points, ax=ax, label="duplication rate (%)")
        _save(fig, path)


# -- writers --------------------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(
    out_dir: Path,
    *,
    result: RelateResult,
    runs: pl.DataFrame,
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    title: str,
    meta: Mapping[str, Any],
    study_match: bool,
) -> dict[str, Path]:
    """Write report.md, report.html and the four PNG figures into `out_dir` (created if needed).

    Args:
        out_dir: Destination folder.
        result: `relate`'s output for these runs.
        runs: One row per run: `size_fraction`, `dup_rate`, `seed` and metric (and statistic) columns.
        curves: Run label -> its metrics.jsonl records (`step`, `train_loss`, `val_loss`).
        title: The report's heading.
        meta: What was run and where (machine, preset, steps, date, ...), shown as a table.
        study_match: The grid is the study's (paper preset, its sizes and rates): add its numbers.

    Returns:
        Name -> path of every file written ("markdown", "html" and one key per figure).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = (
        result.fits["metric"].to_list()
        if not result.fits.is_empty()
        else [c for c in (VAL_LOSS,) if c in runs.columns]
    )
    figures = {
        "metrics_vs_duplication": out_dir / FIG_METRICS,
        "training_curves": out_dir / FIG_CURVES,
        "correlation_heatmap": out_dir / FIG_HEATMAP,
        "strongest_statistic": out_dir / FIG_SCATTER,
    }
    _plot_metrics(runs, figures["metrics_vs_duplication"])
    _plot_curves(curves, figures["training_curves"])
    _plot_heatmap(result, figures["correlation_heatmap"])
    _plot_scatter(result, runs, metrics, figures["strongest_statistic"])

    meta_rows = [[str(k), str(v)] for k, v in meta.items()] + [["runs", str(runs.height)]]
    sections: list[tuple[str, list[tuple[str, Any]]]] = []
    # Each section is a list of blocks: ("p", text) | ("table", (header, rows)) | ("img", (alt, path)).
    sections.append(("Verdict", [("verdict", result.verdict)]))
    grid_blocks: list[tuple[str, Any]] = [
        ("p", "Mean over seeds ± one standard deviation between seeds (no ± where a cell has one run)."),
    ]
    for name, col, unit, scale in GRID_METRICS:
        if col in runs.columns:
            label = f"{name} ({unit})" if unit else name
            grid_blocks += [("h3", label), ("table", grid_table(runs, col, scale))]
    sections.append(("Results grid", grid_blocks))
    if study_match:
        sections.append(
            (
                "Beside the original study",
                [
                    (
                        "p",
                        "The study's published figures (one run per cell) and ours with the study's own definitions: "
                        "its perplexity is the mean of per-batch exp(loss), its accuracy the mean number of correct "
                        "tokens per context-length row.",
                    ),
                    ("table", study_table(runs)),
                ],
            )
        )
    split_blocks: list[tuple[str, Any]] = [
        (
            "p",
            "Shares of each metric's explained variance (R² of metric ~ ln(size) + duplication + "
            "ln(size)·duplication), "
            "split between the two factor groups by their Shapley value, the interaction's gain shared equally; "
            "[95% bootstrap interval, runs resampled within cells].",
        ),
        ("table", _fit_table(result)),
    ]
    if not result.effects.is_empty():
        eff_rows = [
            [
                e["metric"],
                e["factor"],
                f"{_fmt(e['from'])} → {_fmt(e['to'])}",
                _fmt(e["effect"]),
                f"[{_fmt(e['lo'])}, {_fmt(e['hi'])}]",
            ]
            for e in result.effects.iter_rows(named=True)
        ]
        split_blocks += [
            ("h3", "Effect sizes (difference of cell means)"),
            ("table", (["metric", "factor", "change", "effect", "95% CI"], eff_rows)),
        ]
    sections.append(("Quantity or quality?", split_blocks))
    sections.append(
        (
            "Figures",
            [
                (
                    "img",
                    (
                        "Each metric against duplication rate, one line per dataset size",
                        figures["metrics_vs_duplication"],
                    ),
                ),
                ("img", ("Training and validation loss curves of every run", figures["training_curves"])),
                (
                    "img",
                    ("Correlation heatmap of dataset statistics and model metrics", figures["correlation_heatmap"]),
                ),
                (
                    "img",
                    (
                        "The strongest statistic against each metric with its least-squares line",
                        figures["strongest_statistic"],
                    ),
                ),
            ],
        )
    )
    if not result.correlations.is_empty():
        sections.append(("Correlations", [("table", _correlation_table(result))]))

    md = [f"# {title}", "", _md_table(["", ""], meta_rows), ""]
    body = [f"<h1>{html.escape(title)}</h1>", _html_table(["", ""], meta_rows, "meta")]
    for heading, blocks in sections:
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, content in blocks:
            if kind == "verdict":
                md += [content, ""]
                body.append(f'<p class="verdict">{html.escape(content)}</p>')
            elif kind == "p":
                md += [content, ""]
                body.append(f"<p>{html.escape(content)}</p>")
            elif kind == "h3":
                md += [f"### {content}", ""]
                body.append(f"<h3>{html.escape(content)}</h3>")
            elif kind == "table":
                md += [_md_table(*content), ""]
                body.append(_html_table(*content))
            elif kind == "img":
                alt, path = content
                md += [f"![{alt}]({path.name})", ""]
                img = f'<img alt="{html.escape(alt)}" src="{_data_uri(path)}">'
                body.append(f"<figure>{img}<figcaption>{html.escape(alt)}</figcaption></figure>")
    md_path = out_dir / REPORT_MD
    html_path = out_dir / REPORT_HTML
    md_path.write_text("\n".join(md), encoding="utf-8")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    html_path.write_text(page, encoding="utf-8")
    return {"markdown": md_path, "html": html_path, **figures}
