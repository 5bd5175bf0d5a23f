"""A finished run's final evaluation: one run alone, or every run of an ensemble in one batched pass.

    metrics, seconds = evaluate_final(model_cfg, train_cfg, [ckpt_a, ckpt_b], [val_a, val_b], token_bytes)
    save_final_eval(work_a, key_a, metrics[0], seconds[0])      # the grid, after an ensemble has trained
    cached_final_eval(work_a, key_a)                             # `pipeline.train_run`, before evaluating

Every run's final metrics are `metrics.evaluate` on at most FINAL_EVAL_TOKENS validation tokens, in
the run's training precision where that matches float32 (`metrics.EVAL_PRECISION_TOL`). Runs that
trained together as an `EnsembleGPT` are scored together: their checkpoints are stacked again and every
forward pass covers all of them (`metrics.evaluate_members`), under `torch.inference_mode`. Their
metrics equal the solo evaluation's up to the batched matmuls' float rounding (≤ 1e-5 relative on
`val_loss` and `bits_per_byte`; `eval_tokens` and `eval_bytes` exactly; tests/train/test_final_eval.py).

The grid evaluates an ensemble's runs right after training them and leaves each run's metrics in its
work folder (FINAL_EVAL_FILE) under a key naming everything they depend on: the checkpoint's sha256,
the validation token file, the tokenizer's byte lengths, the evaluation's settings and the device type.
`pipeline.train_run` publishes those metrics when the key matches and evaluates the run alone
otherwise, so a cached result can only ever stand for the evaluation it replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import file_sha256
from datadiet.train.checkpoint import load_checkpoint
from datadiet.train.config import TrainConfig
from datadiet.train.device import cpu_threads, select_device
from datadiet.train.ensemble_model import EnsembleGPT
from datadiet.train.metrics import autocast, evaluate, evaluate_members
from datadiet.train.model import GPT, GPTConfig
from datadiet.train.trainer import autocast_dtype

# Final metrics use more of the validation set than the periodic evaluations during training.
FINAL_EVAL_TOKENS = 262_144
FINAL_EVAL_FILE = "final_eval.json"


def final_eval_key(
    model_cfg: GPTConfig, train_cfg: TrainConfig, checkpoint: Path, val_file: str, token_bytes: np.ndarray
) -> dict[str, Any]:
    """Everything a run's final metrics depend on, to check a cached result against."""
    return {
        "checkpoint_sha256": file_sha256(checkpoint),
        "val_tokens": str(val_file),
        "token_bytes_sha256": hashlib.sha256(np.ascontiguousarray(token_bytes, dtype=np.int64).tobytes()).hexdigest(),
        "max_tokens": FINAL_EVAL_TOKENS,
        "block_size": model_cfg.block_size,
        "batch_size": train_cfg.batch_size,
        "dtype": train_cfg.dtype,
        "device": select_device(train_cfg.device).type,
    }


def evaluate_final(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    checkpoints: Sequence[Path],
    val_tokens: Sequence[np.ndarray],
    token_bytes: np.ndarray,
    tracker: Tracker = NULL_TRACKER,
) -> tuple[list[dict[str, Any]], list[float]]:
    """The final metrics of runs sharing one model shape and training settings, in one batched pass.

    One checkpoint is evaluated by the solo model (`metrics.evaluate`); several are stacked into an
    `EnsembleGPT` and scored together, unless their validation sets differ in windows (then one by one).

    Returns:
        Per run, its metrics and its share of the evaluation's seconds.
    """
    started = time.perf_counter()
    device = select_device(train_cfg.device)
    amp = autocast_dtype(train_cfg.dtype, device)  # the training precision, kept only where it matches fp32
    states = [load_checkpoint(c, map_location=device)["model"] for c in checkpoints]
    settings: dict[str, Any] = {
        "block_size": model_cfg.block_size,
        "batch_size": train_cfg.batch_size,
        "max_tokens": FINAL_EVAL_TOKENS,
        "token_bytes": token_bytes,
        "amp": amp,
        "tracker": tracker,
    }
    # The same thread count as training: on a busy CPU, more threads than cores is many times slower.
    with cpu_threads(device, train_cfg.threads):
        windows = {(len(v) - 1) // model_cfg.block_size for v in val_tokens}
        if len(states) == 1 or len(windows) > 1:
            metrics = [
                evaluate(_solo(model_cfg, s, device), v, device=device, **settings)
                for s, v in zip(states, val_tokens, strict=True)
            ]
        else:
            metrics = _evaluate_stacked(model_cfg, states, val_tokens, device, settings)
    seconds = time.perf_counter() - started
    return metrics, [seconds / len(states)] * len(states)


def _solo(model_cfg: GPTConfig, state: dict[str, torch.Tensor], device: torch.device) -> GPT:
    model = GPT(model_cfg).to(device)
    model.load_state_dict(state)
    return model


def _evaluate_stacked(
    model_cfg: GPTConfig,
    states: list[dict[str, torch.Tensor]],
    val_tokens: Sequence[np.ndarray],
    device: torch.device,
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    """The runs' metrics from one `EnsembleGPT` of their weights: one forward pass per batch for all."""
    ens = EnsembleGPT(model_cfg, {n: torch.stack([s[n] for s in states]) for n in states[0]}).to(device)
    ens.eval()

    def logits(x: torch.Tensor, dtype: torch.dtype | None) -> Iterator[torch.Tensor]:
        E, B, T = x.shape
        with autocast(device, dtype):
            hidden = ens.hidden(x)  # (E, B*T, C): every member's trunk in one batched pass
        for e in range(E):
            with autocast(device, dtype):
                out = ens.member_logits(hidden, e)  # one member's (B*T, V) at a time
            yield out.float().view(B, T, -1)

    return evaluate_members(logits, val_tokens, device=device, **settings)


def save_final_eval(work: Path, key: dict[str, Any], metrics: dict[str, Any], seconds: float) -> None:
    """Leave a run's final metrics in its work folder for `pipeline.train_run` (written atomically)."""
    tmp = work / f".{FINAL_EVAL_FILE}.tmp"
    tmp.write_text(json.dumps({"key": key, "metrics": metrics, "eval_seconds": seconds}))
    os.replace(tmp, work / FINAL_EVAL_FILE)


def cached_final_eval(work: Path, key: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
    """The metrics and seconds left in WORK for exactly KEY, or None (none, unreadable, or another key)."""
    try:
        saved = json.loads((work / FINAL_EVAL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    return dict(saved["metrics"]), float(saved["eval_seconds"])
