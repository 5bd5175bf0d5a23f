"""Evaluation artefacts in the store: run evaluations (`evals/`), the study table, relate and report.

`eval_version(store, run, val)` scores a run's final checkpoint on a validation set and stores the
metrics keyed by (run, val, cap), as `curate eval` and the sweep call it. Dataset statistics are
`datadiet.eval.stats.op.stats_version`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datadiet.errors import UsageError
from datadiet.eval.stats.op import stats_version
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store

EVAL_FILE = "eval.json"


def eval_version(
    store: Store,
    run_ref: str,
    val_ref: str | None = None,
    *,
    max_tokens: int | None = None,
    samples: int = 0,
    sample_tokens: int = 128,
    tracker: Tracker = NULL_TRACKER,
) -> Commit:
    """Score run RUN_REF's final checkpoint on VAL_REF (default: the run's own validation set).

    With `samples` > 0 it also generates that many continuations (seeded) and reports their
    distinct-n and the share of their word 8-grams copied verbatim from the run's training data.
    """
    from datadiet.eval.generations import sample_generations
    from datadiet.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
    from datadiet.train.device import select_device
    from datadiet.train.metrics import evaluate, token_byte_lengths
    from datadiet.train.model import GPT, GPTConfig
    from datadiet.train.pipeline import load_token_array, run_tokenizer, tokens_version
    from datadiet.train.trainer import autocast_dtype

    run = store.resolve(run_ref, "runs")
    val = store.resolve(val_ref or run.manifest.parents[1])
    tok = run_tokenizer(store, run)
    if samples < 0 or sample_tokens < 1:
        raise UsageError("--samples must be >= 0 and --sample-tokens >= 1")
    params = {"max_tokens": max_tokens, "samples": samples, "sample_tokens": sample_tokens if samples else None}

    def build(writer: PartWriter) -> dict[str, Any]:
        val_tokens_ds = tokens_version(store, val, tok, tracker)
        val_tokens = load_token_array(val_tokens_ds)
        model_cfg = GPTConfig(**run.manifest.params["model"])
        device = select_device("auto")
        # The run's training precision where it matches float32 (metrics.EVAL_PRECISION_TOL), as its final metrics.
        amp = autocast_dtype(str(run.manifest.params.get("train", {}).get("dtype", "auto")), device)
        model = GPT(model_cfg).to(device)
        model.load_state_dict(load_checkpoint(run.file(CHECKPOINT_FILE), map_location=device)["model"])
        with tracker.task(f"Evaluating {run.ref}", total=None):
            metrics = evaluate(
                model,
                val_tokens,
                block_size=model_cfg.block_size,
                batch_size=32,
                max_tokens=max_tokens,
                device=str(device),
                token_bytes=token_byte_lengths(tok.load()),
                amp=amp,
            )
        result: dict[str, Any] = {"metrics": metrics, "val": val.ref, "val_tokens": len(val_tokens)}
        if samples:
            train_ds = store.resolve(run.manifest.parents[0])
            with tracker.task(f"Sampling {samples} generations", total=None):
                result["generations"] = sample_generations(
                    model, tok.load(), samples, sample_tokens, 0, train_ds.read()["text"].to_list(), device=str(device)
                )
        writer.write_file(EVAL_FILE, json.dumps(result, indent=2).encode())
        return result

    return store.commit(
        run.name, operation="eval", params=params, parents=[run.ref, val.ref], build=build, kind="evals"
    )


def repeated_key(stats: dict[str, Any]) -> str | None:
    """The repeated story (or pool) of a `duplicate` version, from its manifest stats: ids joined by commas."""
    ids = stats.get("pool_ids")
    return ",".join(str(i) for i in ids) if ids else None


def lineage_factors(store: Store, dataset: Dataset) -> dict[str, Any]:
    """The study's factors of a training dataset, read from its lineage.

    `size_fraction` is the share kept by the nearest `subset` (1 when there is none) and `dup_rate`,
    `pool`, `repeated` (the copied story's id, or the pool's) come from the nearest `duplicate` (0,
    1 and None when there is none); `data_seed` is the subset's seed (else the duplicate's), so runs
    trained outside a sweep can be related and reported just the same.
    """
    factors: dict[str, Any] = {"size_fraction": 1.0, "dup_rate": 0.0, "pool": 1.0, "data_seed": 0, "repeated": None}
    seen: set[str] = set()
    current: Dataset | None = dataset
    found_subset = found_dup = False
    while current is not None and current.ref not in seen:
        seen.add(current.ref)
        m = current.manifest
        if m.operation == "duplicate" and not found_dup:
            factors["dup_rate"] = float(m.params.get("rate", 0.0))
            factors["pool"] = float(m.stats.get("pool_size", 1))
            factors["repeated"] = repeated_key(m.stats)
            if not found_subset:
                factors["data_seed"] = int(m.params.get("seed", 0))
            found_dup = True
        elif m.operation == "subset" and not found_subset:
            share = m.params.get("fraction") or m.stats.get("row_share") or 1.0
            factors["size_fraction"] = float(share)
            factors["data_seed"] = int(m.params.get("seed", 0))
            found_subset = True
        parent = next((p for p in m.parents if "@" in p and not p.startswith("file:")), None)
        try:
            current = store.resolve(parent) if parent else None
        except UsageError:
            current = None
    return factors


def run_row(
    store: Store,
    run: Dataset,
    factors: dict[str, Any] | None = None,
    *,
    tracker: Tracker = NULL_TRACKER,
) -> dict[str, Any]:
    """One row of a study table: factors, the training data's statistics (`stat_*`), metrics and compute.

    FACTORS given (by the sweep) override those read from the lineage; `repeated` is always read
    from the training dataset's own manifest, so the report checks what was actually repeated.
    """
    from datadiet.train.pipeline import run_tokenizer, tokens_version

    train = store.resolve(run.manifest.parents[0])
    tok = run_tokenizer(store, run)
    tokens = int(tokens_version(store, train, tok, tracker).manifest.stats["tokens"])
    stats = stats_version(store, train, tokens=tokens, tracker=tracker).manifest.stats
    metrics = run.manifest.stats["metrics"]
    row: dict[str, Any] = lineage_factors(store, train) | dict(factors or {})
    if train.manifest.operation == "duplicate":
        row["repeated"] = repeated_key(train.manifest.stats)
    row["seed"] = int(run.manifest.params.get("seed", 0))
    row["budget_steps"] = int(run.manifest.stats.get("train", {}).get("steps") or 0)
    row["variant"] = train.ref
    row["run"] = run.ref
    row.update({f"stat_{k}": v for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    row.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    compute = run.manifest.stats.get("compute") or {}
    row.update({k: float(v) for k, v in compute.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return row


METRIC_COLUMNS = ("val_loss", "perplexity", "accuracy", "bits_per_byte")


def relate_runs(runs: Any) -> Any:
    """`relate` over every statistic that varies across the runs and every metric they report."""
    from datadiet.eval.relate import relate

    stat_cols = [c for c in runs.columns if c.startswith("stat_") and runs[c].n_unique() > 1]
    metric_cols = [m for m in METRIC_COLUMNS if m in runs.columns and runs[m].null_count() < runs.height]
    return relate(runs, stats=stat_cols, metrics=metric_cols)


def study_report(
    out_dir: Path,
    store: Store,
    runs: Any,
    *,
    title: str,
    meta: dict[str, Any],
    study_match: bool,
    tracker: Tracker = NULL_TRACKER,
) -> tuple[Any, dict[str, Path]]:
    """Relate a study table and write its report (markdown, self-contained HTML, PNGs) into OUT_DIR."""
    from datadiet.eval.report import write_report
    from datadiet.train.pipeline import run_curve

    result = relate_runs(runs)
    curves = {row["run"]: run_curve(store.resolve(row["run"], "runs")) for row in runs.to_dicts()}
    with tracker.task("Sampling one model per cell", total=None):
        samples = cell_samples(store, runs)
    with tracker.task("Writing report", total=None):
        paths = write_report(
            out_dir,
            result=result,
            runs=runs,
            curves=curves,
            title=title,
            meta=meta,
            study_match=study_match,
            samples=samples,
        )
    runs.write_parquet(out_dir / "runs.parquet")
    return result, paths


# The report's prompt: how most TinyStories begin, so every cell's model continues the same text.
SAMPLE_PROMPT = "Once upon a time"
SAMPLE_TOKENS = 40


def cell_samples(store: Store, runs: Any, prompt: str = SAMPLE_PROMPT) -> list[dict[str, str]]:
    """One seeded sample (temperature 0.8) of `prompt` from one model per (size, rate) cell: the first run."""
    from datadiet.train.generate import SampleConfig, load_run_model, sample_texts

    cfg = SampleConfig(max_new_tokens=SAMPLE_TOKENS, temperature=0.8, seed=0)
    order = [c for c in ("size_fraction", "dup_rate", "data_seed", "seed") if c in runs.columns]
    out = []
    for row in (
        runs.sort(order).unique(subset=["size_fraction", "dup_rate"], keep="first", maintain_order=True).to_dicts()
    ):
        rm = load_run_model(store, row["run"])
        text = sample_texts(rm, [prompt], cfg)[0].text
        cell = f"{100 * row['size_fraction']:.0f}% of the data, {100 * row['dup_rate']:.0f}% duplication"
        out.append({"cell": cell, "run": row["run"], "prompt": prompt, "text": text})
    return out
