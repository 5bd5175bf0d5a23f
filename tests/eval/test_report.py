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


def study_runs(seeds: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for (rate, by_size), s in itertools.product(P.STUDY_RESULTS.items(), range(seeds)):
        for size, (loss, acc, ppl) in by_size.items():
            noise = 0.01 * rng.standard_normal()
            rows.append(
                {
                    "size_fraction": size,
                    "dup_rate": rate,
                    "pool": 1,
                    "seed": s,
                    "exact_duplicate_share": rate,
                    "distinct_4gram_ratio": 1 - 0.9 * rate + 0.05 * size,
                    "val_loss": loss + noise,
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
        label = f"s{r['size_fraction']}-d{r['dup_rate']}-seed{r['seed']}"
        out[label] = [{"step": k, "train_loss": 6 - k / 10, "val_loss": 6.1 - k / 11} for k in range(0, 20, 5)]
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str]:
    runs = study_runs()
    result = relate(
        runs, ["exact_duplicate_share", "distinct_4gram_ratio"], ["val_loss", "accuracy", "perplexity"], n_boot=100
    )
    out = tmp_path_factory.mktemp("report")
    paths = P.write_report(
        out,
        result=result,
        runs=runs,
        curves=curves_for(runs),
        title="Quality vs quantity",
        meta={"machine": "test", "preset": "paper", "steps": 20},
        study_match=True,
    )
    return paths, result.verdict


def test_files_exist_and_pngs_decode(written: tuple[dict[str, Path], str]) -> None:
    paths, _ = written
    assert set(paths) == {
        "markdown",
        "html",
        "metrics_vs_duplication",
        "training_curves",
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
    assert verdict.split(":")[0] in page


def test_markdown_has_verdict_grid_and_study(written: tuple[dict[str, Path], str]) -> None:
    paths, verdict = written
    md = paths["markdown"].read_text(encoding="utf-8")
    assert verdict in md
    assert "## Results grid" in md
    assert "## Beside the original study" in md
    # The study's 100%-duplication, 25%-size loss appears with our mean beside it.
    assert "| 100% | 25% | validation loss | 12.2886 |" in md
    for name in (P.FIG_METRICS, P.FIG_CURVES, P.FIG_HEATMAP, P.FIG_SCATTER):
        assert f"({name})" in md


def test_grid_and_summary_tables() -> None:
    runs = pl.DataFrame(
        {
            "size_fraction": [0.5, 0.5, 1.0, 1.0],
            "dup_rate": [0.0, 0.0, 0.0, 1.0],
            "seed": [0, 1, 0, 0],
            "val_loss": [3.0, 3.2, 2.9, 9.0],
            "accuracy": [0.4, 0.5, 0.45, 0.1],
            "perplexity": [20.0, 24.0, 18.0, 8000.0],
        }
    )
    header, rows = P.grid_table(runs, "val_loss")
    assert header == ["duplication", "50% data", "100% data"]
    assert rows == [["0%", "3.1000 ± 0.1414", "2.9000"], ["100%", "", "9.0000"]]
    summary = P.summary_table(runs)
    assert summary[0] == {
        "size": "50%",
        "duplication": "0%",
        "validation loss": "3.1000 ± 0.1414",
        "top-1 accuracy (%)": "45.0000 ± 7.0711",
        "perplexity": "22.0000 ± 2.8284",
        "seeds": "2",
    }
    assert [r["duplication"] for r in summary] == ["0%", "0%", "100%"]


def test_report_without_study(tmp_path: Path) -> None:
    runs = study_runs(seeds=1).filter(pl.col("size_fraction") == 1.0)
    result = relate(runs, ["exact_duplicate_share"], ["val_loss"], n_boot=20)
    paths = P.write_report(tmp_path, result=result, runs=runs, curves={}, title="t", meta={}, study_match=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "Beside the original study" not in md
    assert result.verdict in md


def test_report_with_too_few_runs_and_no_statistics(tmp_path: Path) -> None:
    runs = study_runs(seeds=1).head(2)
    result = relate(runs, [], ["val_loss"], n_boot=10)
    assert result.verdict.startswith("Only 2 run(s)")
    paths = P.write_report(tmp_path, result=result, runs=runs, curves={}, title="t", meta={}, study_match=False)
    assert paths["correlation_heatmap"].read_bytes()[:8] == PNG_MAGIC
    assert result.verdict in paths["markdown"].read_text(encoding="utf-8")
