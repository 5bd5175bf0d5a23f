"""datadiet: does training-data quality or quantity matter more for a small language model?

The public API is importable from here (`import datadiet as dd; dd.Store(...)`, `dd.dedupe(...)`); the
names live in `datadiet.api` and load on first use, so importing the package does nothing else (and
`curate --help` never loads torch). docs/api.md walks through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from datadiet.api import (
        NULL_TRACKER,
        Commit,
        CorpusConfig,
        CorruptConfig,
        DatadietError,
        Dataset,
        Diff,
        DuplicateConfig,
        FilterConfig,
        IngestConfig,
        InputError,
        MinhashConfig,
        RefError,
        RunModel,
        RunSpec,
        Sample,
        SampleConfig,
        Store,
        SubsetConfig,
        SweepConfig,
        Tracker,
        UsageError,
        commit_table,
        corrupt,
        dedupe,
        diff_versions,
        duplicate,
        eval_version,
        export,
        export_hf,
        filter_dataset,
        from_hf,
        generate,
        ingest,
        lineage,
        load_run_model,
        read_removed,
        relate,
        relate_runs,
        run_curve,
        run_row,
        run_sweep,
        runs_table,
        sample_texts,
        stats_version,
        study_report,
        subset,
        to_hf,
        tokenizer_version,
        train_run,
        verify,
        write_corpus,
    )

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("datadiet.api"), name)
    raise AttributeError(f"module 'datadiet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
