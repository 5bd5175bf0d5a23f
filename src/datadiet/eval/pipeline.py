"""Evaluation artefacts in the store: dataset statistics (`stats/`) and run evaluations (`evals/`).

`stats_version(store, dataset)` computes a version's statistics once and stores them keyed by the
version (and the token count, when a tokenizer gave one); `eval_version(store, run, val)` scores a
run's final checkpoint on a validation set and stores the metrics keyed by (run, val, cap). Both
are what `curate stats`, `curate eval` and the sweep call.
"""

from __future__ import annotations

import json
from typing import Any

from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store

STATS_FILE = "stats.json"
EVAL_FILE = "eval.json"


def stats_version(store: Store, ds: Dataset, *, tokens: int | None = None, tracker: Tracker = NULL_TRACKER) -> Dataset:
    """The statistics of dataset version DS, computed only if not stored yet."""
    from datadiet.eval.stats import dataset_stats

    def build(writer: PartWriter) -> dict[str, Any]:
        stats = dataset_stats(ds.read(), tokens=tokens, tracker=tracker)
        writer.write_file(STATS_FILE, json.dumps(stats, indent=2, default=str).encode())
        return stats

    params = {"tokens": tokens}
    return store.commit(ds.name, operation="stats", params=params, parents=[ds.ref], build=build, kind="stats").dataset


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
    from datadiet.errors import UsageError
    from datadiet.eval.metrics import evaluate, sample_generations
    from datadiet.train.checkpoint import load_checkpoint
    from datadiet.train.model import GPT, GPTConfig
    from datadiet.train.pipeline import load_token_array, resolve_tokenizer, tokens_version
    from datadiet.train.trainer import select_device

    run = store.resolve(run_ref, "runs")
    val = store.resolve(val_ref or run.manifest.parents[1])
    tok = resolve_tokenizer(store, run.manifest.params["tokenizer"])
    if samples < 0 or sample_tokens < 1:
        raise UsageError("--samples must be >= 0 and --sample-tokens >= 1")
    params = {"max_tokens": max_tokens, "samples": samples, "sample_tokens": sample_tokens if samples else None}

    def build(writer: PartWriter) -> dict[str, Any]:
        val_tokens_ds = tokens_version(store, val, tok, tracker)
        val_tokens = load_token_array(val_tokens_ds)
        model_cfg = GPTConfig(**run.manifest.params["model"])
        device = select_device("auto")
        model = GPT(model_cfg).to(device)
        model.load_state_dict(load_checkpoint(run.path / "checkpoint.pt", map_location=device)["model"])
        with tracker.task(f"Evaluating {run.ref}", total=None):
            metrics = evaluate(
                model,
                val_tokens,
                block_size=model_cfg.block_size,
                batch_size=32,
                max_tokens=max_tokens,
                device=str(device),
                bytes_per_token=float(val_tokens_ds.manifest.stats["bytes_per_token"]),
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
