"""Checkpoints of a training run, written atomically so a crash never leaves a torn file.

`save_checkpoint` writes to a temporary file in the same folder, fsyncs it and renames it over
`checkpoint.pt` (`os.replace` is atomic on POSIX), so the file on disk is always the last complete
checkpoint. Used by `datadiet.train.trainer.train`; `load_checkpoint` also serves evaluation.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from datadiet.errors import DatadietError

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"  # one JSON line per logged step, beside the checkpoint


def checkpoint_path(out_dir: Path) -> Path:
    """Where the run in `out_dir` keeps its latest checkpoint."""
    return Path(out_dir) / CHECKPOINT_FILE


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors, plain Python values) to `path` atomically.

    Args:
        path: Destination; its folder must exist.
        state: What to save, e.g. model and optimizer state dicts, step, configs and RNG state.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`.

    Args:
        path: The checkpoint file.
        map_location: Device to load tensors onto.

    Raises:
        DatadietError: The file is missing or not a datadiet checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DatadietError(f"no checkpoint at {path}; train without --resume to start the run")
    try:
        # weights_only: the file holds tensors and plain containers only, so refuse to unpickle code.
        state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise DatadietError(f"cannot read checkpoint {path} ({exc}); delete it and train without --resume") from exc
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise DatadietError(f"{path} is not a datadiet checkpoint; delete it and train without --resume")
    return state
