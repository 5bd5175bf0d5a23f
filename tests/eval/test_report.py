"""The report's files: they exist, the images decode, the HTML stands alone, the text carries the verdict."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import polars as pl
import pytest

from datadiet.eval import report as P
from datadiet.eval.relate import relate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def study_runs(seeds: int = 2, data_seeds: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for (rate, by_size), d, s in itertools.product(P.STUDY_RESULTS.items(), range(data_seeds), range(seeds)):
        for size, (loss, acc, ppl) in by_size.items():
            noise = 0.01 * rng.standard_normal()
            rows.append(
                {
                    "size_fraction": size,
                    "dup_rate": rate,
                    "pool": 1,
                    "data_seed": d,
                    "seed": s,
                    "run": f"r-{size}-{rate}-{d}-{s}",
                    "variant": f"v-{size}-{rate}-{d}",
                    "epochs": 0.4 / size,
                    "tokens_seen": 409600.0,
                    "flops": 7.2e12,
                    "exact_duplicate_share": rate,
                    "distinct_4gram_ratio": 1 - 0.9 * rate + 0.05 * size,
                    "val_loss": loss + noise,
                    "bits_per_byte": (loss + noise) / 3.0,
                    "accuracy": acc / 128 + noise,
                    "perplexity": float(np.exp(loss + noise)),
                    "study_accuracy": acc + noise,
                    "study_perplexity": ppl * (1 + noise),
                }
            )
    return pl.DataFrame(rows)


def curves_for(runs: pl.DataFrame) -> dict[str, list[dict[str, float]]]:
    out = {}
    for r in runs.iter_rows(named=True):
        out[r["run"]] = [{"step": k, "train_loss": 6 - k / 10, "val_loss": 6.1 - k / 11} for k in range(0, 20, 5)]
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str]:
    runs = study_runs()
    result = relate(
        runs,
        ["exact_duplicate_share", "distinct_4gram_ratio"],
        ["val_loss", "bits_per_byte", "accuracy", "perplexity"],
    )
    out = tmp_path_factory.mktemp("report")
    paths = P.write_report(
        out,
        result=result,
        runs=runs,
        curves=curves_for(runs),
        title="Quality vs quantity",
        meta={"machine": "test", "preset": "paper", "steps": 20, "vocab_size": 8192},
        study_match=True,
        samples=[{"cell": "25% · 0%", "run": "r@1", "prompt": "Once upon a time", "text": " <b>there</b> | was\x00"}],
    )
    return paths, result.verdict


def test_files_exist_and_pngs_decode(written: tuple[dict[str, Path], str]) -> None:
    paths, _ = written
    assert set(paths) == {
        "markdown",
        "html",
        "metrics_vs_duplication",
        "learning_curves",
        "correlation_heatmap",
        "strongest_statistic",
    }
    for key, path in paths.items():
        assert path.is_file(), key
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_html_is_self_contained(written: tuple[dict[str, Path], str]) -> None:
    paths, verdict = written
    page = paths["html"].read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 4
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page
    assert "href=" not in page
    assert "url(" not in page
    assert "<script" not in page
    assert verdict.split(".")[0] in page
    # Printed data is data: the sample's markup is escaped, never rendered.
    assert "&lt;b&gt;there&lt;/b&gt;" in page and "<b>there</b>" not in page


def test_markdown_has_verdict_grid_study_warnings_compute_and_samples(written: tuple[dict[str, Path], str]) -> None:
    paths, verdict = written
    md = paths["markdown"].read_text(encoding="utf-8")
    assert verdict in md
    assert "## Results by cell" in md and "### Bits per byte (bits per UTF-8 byte)" in md
    assert "## Beside the original study" in md
    # The study's 100%-duplication, 25%-size loss appears with our mean beside it.
    assert "| 100.0% | 25.0% | validation loss | 12.289 |" in md
    # Steps and tokenizer differ from the study's, and the report says so.
    assert "These runs trained 20 steps, the study 1,000" in md
    assert "The tokenizer has 8,192 tokens" in md
    assert "## Compute per cell" in md and "7.2e+12" in md
    # The sample's NUL is shown as an escape, never written raw; its pipe is escaped inside markdown.
    assert "\x00" not in md and "\\x00" in md
    assert "\\| was" in md
    for name in (P.FIG_METRICS, P.FIG_CURVES, P.FIG_HEATMAP, P.FIG_SCATTER):
        assert f"({name})" in md


def test_grid_and_summary_tables() -> None:
    runs = pl.DataFrame(
        {
            "size_fraction": [0.5, 0.5, 0.5, 0.5, 1.0, 1.0],
            "dup_rate": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            "data_seed": [0, 0, 1, 1, 0, 0],
            "seed": [0, 1, 0, 1, 0, 0],
            "val_loss": [3.0, 3.2, 3.3, 3.5, 2.9, 9.0],
            "accuracy": [0.4, 0.5, 0.45, 0.45, 0.45, 0.1],
        }
    )
    result = relate(runs, [], ["val_loss", "accuracy"])
    header, rows = P.grid_table(result, runs, "val_loss")
    assert header == ["duplication", "50% of the data", "100% of the data"]
    # Training seeds averaged per data seed (3.1, 3.4), then a t interval over the 2 data seeds (1 df).
    half = 12.706204736 * 0.15  # t(0.975, 1) x sd 0.212 / sqrt(2)
    assert rows[0][1] == f"3.250 [{3.25 - half:.3f}, {3.25 + half:.3f}]"
    assert rows[0][2] == "2.900 (interval not estimable)"
    assert rows[1] == ["100%", "", "9.000 (interval not estimable)"]
    summary = P.summary_table(runs)
    assert summary[0]["size"] == "50.0%" and summary[0]["data seeds × training seeds"] == "2 × 2"
    assert summary[0]["top-1 accuracy"] == "45.000 (no spread between data seeds)"  # 0.45 in both data seeds
    assert [r["duplication"] for r in summary] == ["0.0%", "0.0%", "100.0%"]


def test_report_without_study(tmp_path: Path) -> None:
    runs = study_runs(seeds=1).filter(pl.col("size_fraction") == 1.0)
    result = relate(runs, ["exact_duplicate_share"], ["val_loss"])
    paths = P.write_report(tmp_path, result=result, runs=runs, curves={}, title="t", meta={}, study_match=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "Beside the original study" not in md
    assert result.verdict in md


def test_report_with_too_few_runs_and_no_statistics(tmp_path: Path) -> None:
    runs = study_runs(seeds=1, data_seeds=1).head(2)
    result = relate(runs, [], ["val_loss"])
    assert "Only one data seed" in result.verdict
    paths = P.write_report(tmp_path, result=result, runs=runs, curves={}, title="t", meta={}, study_match=False)
    assert paths["correlation_heatmap"].read_bytes()[:8] == PNG_MAGIC
    assert result.verdict in paths["markdown"].read_text(encoding="utf-8")
