"""The public Python API: everything `curate` does, as functions (the CLI is a thin layer over these).

Import from the package (names load lazily, so `import datadiet` stays light):

    import datadiet as dd
    store = dd.Store("datadiet-store")
    train, val = dd.write_corpus(store, dd.CorpusConfig(stories=2000), "c")
    clean = dd.dedupe(store, "c-train", dd.MinhashConfig())

See docs/api.md for the whole flow (its examples are run by the test suite).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from datadiet.curate.corpus.op import CorpusConfig, write_corpus
from datadiet.curate.corrupt.op import CorruptConfig, corrupt
from datadiet.curate.dedupe.minhash import MinhashConfig
from datadiet.curate.dedupe.op import dedupe
from datadiet.curate.diff.compare import Diff, diff_versions
from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
from datadiet.curate.export import export
from datadiet.curate.filter.op import FilterConfig, filter_dataset, read_removed
from datadiet.curate.hf.arrow import commit_table
from datadiet.curate.hf.convert import export_hf, from_hf, to_hf
from datadiet.curate.ingest.op import IngestConfig, ingest
from datadiet.curate.subset.op import SubsetConfig, subset
from datadiet.errors import DatadietError, InputError, RefError, UsageError
from datadiet.eval.pipeline import eval_version, relate_runs, run_row, study_report
from datadiet.eval.stats.op import stats_version
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, Store, lineage, verify
from datadiet.sweep import SweepConfig, run_sweep
from datadiet.train.generate import RunModel, Sample, SampleConfig, generate, load_run_model, sample_texts
from datadiet.train.pipeline import RunSpec, run_curve, tokenizer_version, train_run


def runs_table(store: Store, refs: Sequence[str], *, tracker: Tracker = NULL_TRACKER) -> pl.DataFrame:
    """One row per run: its factors (read from its data's lineage), dataset statistics and model metrics.

    This is the table `curate relate RUNS…` and `curate report RUNS…` start from.

    Args:
        store: The store holding the runs.
        refs: Runs, `NAME[@VERSION]`.
        tracker: Progress (statistics are computed once per dataset and stored).
    """
    return pl.DataFrame([run_row(store, store.resolve(r, "runs"), tracker=tracker) for r in refs])


def relate(store: Store, refs: Sequence[str], *, tracker: Tracker = NULL_TRACKER) -> Any:
    """Relate the runs' dataset statistics to their metrics (`curate relate RUNS…`): effects, split, verdict.

    Raises:
        UsageError: Fewer than 2 runs.
    """
    table = runs_table(store, refs, tracker=tracker)
    if table.height < 2:
        raise UsageError(f"relating needs at least 2 runs, got {table.height}")
    return relate_runs(table)


__all__ = [
    "NULL_TRACKER",
    "Commit",
    "CorpusConfig",
    "CorruptConfig",
    "DatadietError",
    "Dataset",
    "Diff",
    "DuplicateConfig",
    "FilterConfig",
    "IngestConfig",
    "InputError",
    "MinhashConfig",
    "RefError",
    "RunModel",
    "RunSpec",
    "Sample",
    "SampleConfig",
    "Store",
    "SubsetConfig",
    "SweepConfig",
    "Tracker",
    "UsageError",
    "commit_table",
    "corrupt",
    "dedupe",
    "diff_versions",
    "duplicate",
    "eval_version",
    "export",
    "export_hf",
    "filter_dataset",
    "from_hf",
    "generate",
    "ingest",
    "lineage",
    "load_run_model",
    "read_removed",
    "relate",
    "relate_runs",
    "run_curve",
    "run_row",
    "run_sweep",
    "runs_table",
    "sample_texts",
    "stats_version",
    "study_report",
    "subset",
    "to_hf",
    "tokenizer_version",
    "train_run",
    "verify",
    "write_corpus",
]
