"""The subset itself, the same for both engines: one seeded permutation, the subset size, the keep
mask (a prefix of the permutation, rows in their original order) and the manifest stats.

    frame, stats = subset_frame(frame, SubsetConfig(fraction=0.25, seed=1))    # pure
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from datadiet.curate.subset.op import SubsetConfig
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import TEXT, conform

# GPT-2 BPE averages ~4 characters of English per token; used only to size --tokens subsets.
CHARS_PER_TOKEN = 4


STAT_ROWS_IN = "rows_in"


STAT_ROWS_OUT = "rows_out"


STAT_ROW_SHARE = "row_share"


STAT_EST_TOKENS_IN = "est_tokens_in"


STAT_EST_TOKENS_OUT = "est_tokens_out"


STAT_CHARS_OUT = "chars_out"


def permutation(n: int, seed: int) -> np.ndarray:
    """The seeded order every subset of an N-row dataset is a prefix of (rank -> row position)."""
    return np.random.default_rng(np.random.SeedSequence(seed)).permutation(n)


def text_chars(frame: pl.DataFrame) -> np.ndarray:
    """Characters of each row's text (0 for a null one), the unit of the --tokens estimate."""
    out: np.ndarray = frame.get_column(TEXT).str.len_chars().fill_null(0).to_numpy().astype(np.int64)
    return out


def subset_size(n: int, cfg: SubsetConfig, order: np.ndarray, chars: np.ndarray | None = None) -> int:
    """How many rows of the seeded order the subset keeps.

    Args:
        n: Rows of the dataset (>= 1).
        cfg: The size asked for.
        order: `permutation(n, cfg.seed)`.
        chars: `text_chars` of every row, by position; needed only for `cfg.tokens`.

    Raises:
        UsageError: `docs` / `tokens` ask for more than the dataset holds.
    """
    if cfg.fraction is not None:
        return min(n, max(1, math.floor(cfg.fraction * n + 0.5)))
    if cfg.docs is not None:
        if cfg.docs > n:
            raise UsageError(f"--docs {cfg.docs} is more than the {n} documents of the dataset; use at most {n}")
        return cfg.docs
    assert cfg.tokens is not None and chars is not None
    need = CHARS_PER_TOKEN * cfg.tokens
    total_chars = int(chars.sum())
    if need > total_chars:
        have = total_chars // CHARS_PER_TOKEN
        raise UsageError(
            f"--tokens {cfg.tokens} is more than the ~{have} estimated tokens of the dataset; use at most {have}"
        )
    return int(np.searchsorted(np.cumsum(chars[order]), need, side="left")) + 1


def keep_mask(order: np.ndarray, k: int) -> np.ndarray:
    """Which positions the subset of the first K rows of ORDER keeps."""
    keep = np.zeros(order.size, dtype=bool)
    keep[order[:k]] = True
    return keep


def summary_stats(n: int, k: int, total_chars: int, kept_chars: int) -> dict[str, Any]:
    """The manifest stats of a subset version (the same whichever engine made it)."""
    return {
        STAT_ROWS_IN: n,
        STAT_ROWS_OUT: k,
        STAT_ROW_SHARE: k / n,
        STAT_CHARS_OUT: kept_chars,
        STAT_EST_TOKENS_IN: total_chars // CHARS_PER_TOKEN,
        STAT_EST_TOKENS_OUT: kept_chars // CHARS_PER_TOKEN,
    }


def empty_error() -> UsageError:
    """The error of a subset of an empty dataset."""
    return UsageError("the dataset is empty; there is nothing to take a subset of")


def subset_frame(
    frame: pl.DataFrame, cfg: SubsetConfig, tracker: Tracker = NULL_TRACKER
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Return the subset of FRAME that CFG asks for (rows in their original order) and its stats.

    Args:
        frame: Rows with at least `id` and `text`.
        cfg: The size of the subset and the seed.
        tracker: Progress reporting.

    Returns:
        The kept rows and a stats dict with the keys `STAT_*`.

    Raises:
        UsageError: the dataset is empty, or `docs` / `tokens` ask for more than it holds.
    """
    out, stats, _ = _subset(frame, cfg, tracker)
    return out, stats


def _subset(
    frame: pl.DataFrame, cfg: SubsetConfig, tracker: Tracker
) -> tuple[pl.DataFrame, dict[str, Any], np.ndarray]:
    frame = conform(frame)
    n = frame.height
    if n == 0:
        raise empty_error()
    with tracker.task("Choosing subset", total=None):
        order = permutation(n, cfg.seed)
        chars = text_chars(frame)
        k = subset_size(n, cfg, order, chars)
        keep = keep_mask(order, k)
        out = frame.filter(pl.Series(keep))
    return out, summary_stats(n, k, int(chars.sum()), int(chars[keep].sum())), keep
