"""Random, nested subsets of a dataset: `curate subset REF (--fraction F | --docs N | --tokens T) [--seed S]`.

One seeded permutation of the rows is drawn (numpy's Generator, never Python's hash()), and a
subset is a prefix of it: the `k` rows ranked first. Subsets of one dataset with one seed are
therefore nested (the 25% subset lies inside the 50% one), so that a size effect is not confounded
with which stories were drawn. The kept rows stay in their original order, written one
`PartWriter.write` per input part (its kept rows), so `--engine ray`, whose tasks each filter and
write one input part, gives byte-identical parts (`datadiet.engine.ray_degrade`).

Sizes:

* `--fraction F` (0 < F <= 1): k = round(F·N) rows (halves round up), at least 1.
* `--docs N`: exactly N rows (1 <= N <= the dataset's size).
* `--tokens T`: the shortest prefix whose estimated tokens reach T, with tokens estimated as
  characters / 4 (GPT-2-style BPE averages about 4 characters per token on English stories); the
  estimate is integer arithmetic on character counts (prefix characters >= 4·T), so it is exact and
  deterministic.

Library use::

    frame, stats = subset_frame(frame, SubsetConfig(fraction=0.25, seed=1))
    commit = subset(Store(), "tiny", SubsetConfig(docs=1000))
    commit = subset(Store(), "tiny", SubsetConfig(docs=1000), engine="ray")   # same version, on Ray
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from datadiet.curate.inject import read_parts
from datadiet.engine import check_engine, load_ray
from datadiet.errors import UsageError, whole_number
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import TEXT, conform
from datadiet.store import Commit, PartWriter, Store

OPERATION = "subset"
# GPT-2 BPE averages ~4 characters of English per token; used only to size --tokens subsets.
CHARS_PER_TOKEN = 4

STAT_ROWS_IN = "rows_in"
STAT_ROWS_OUT = "rows_out"
STAT_ROW_SHARE = "row_share"
STAT_EST_TOKENS_IN = "est_tokens_in"
STAT_EST_TOKENS_OUT = "est_tokens_out"
STAT_CHARS_OUT = "chars_out"

SUBSET_HELP: dict[str, str] = {
    "fraction": (
        "Keep round(F·N) documents, 0 < F <= 1; subsets of one dataset with one seed are nested "
        "(the 25% subset lies inside the 50% one)."
    ),
    "docs": "Keep exactly N documents, the first N of the same seeded order, so smaller subsets nest in larger ones.",
    "tokens": "Keep the shortest prefix of the seeded order with at least T tokens, estimated as characters / 4.",
    "seed": "Seed of the random order; the same seed gives nested subsets and the same version for the same input.",
}


@dataclass(frozen=True)
class SubsetConfig:
    """How large a subset to take; exactly one of `fraction`, `docs`, `tokens` is set.

    Attributes:
        fraction: Share of the documents to keep, in (0, 1].
        docs: Number of documents to keep (>= 1).
        tokens: Estimated number of tokens to keep (>= 1; characters / 4).
        seed: Seed of the permutation the subset is a prefix of.
    """

    fraction: float | None = None
    docs: int | None = None
    tokens: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        given = [
            n
            for n, v in (("--fraction", self.fraction), ("--docs", self.docs), ("--tokens", self.tokens))
            if v is not None
        ]
        if len(given) != 1:
            raise UsageError(f"give exactly one of --fraction, --docs, --tokens (got {', '.join(given) or 'none'})")
        if self.fraction is not None:
            if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)):
                raise UsageError(f"--fraction must be a number, not {self.fraction!r}")
            if not 0.0 < float(self.fraction) <= 1.0:
                raise UsageError(
                    f"--fraction must be above 0 and at most 1, not {self.fraction}; e.g. --fraction 0.25"
                )
            # Canonical type, so --fraction 1 and --fraction 1.0 give the same version id.
            object.__setattr__(self, "fraction", float(self.fraction))
        if self.docs is not None and whole_number(self.docs, "--docs") < 1:
            raise UsageError(f"--docs must be at least 1, not {self.docs}")
        if self.tokens is not None and whole_number(self.tokens, "--tokens") < 1:
            raise UsageError(f"--tokens must be at least 1, not {self.tokens}")
        if whole_number(self.seed, "--seed") < 0:
            raise UsageError(f"--seed must be >= 0, not {self.seed}")

    def to_params(self) -> dict[str, Any]:
        """The parameters as stored in the manifest and hashed into the version id."""
        return asdict(self)


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


def subset(
    store: Store,
    ref: str,
    cfg: SubsetConfig,
    name: str | None = None,
    tracker: Tracker = NULL_TRACKER,
    *,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Commit a subset of REF as a new version (operation "subset", params = CFG, parent = REF's full ref).

    Args:
        store: The store holding REF and receiving the new version.
        ref: `NAME` or `NAME@VERSION` of the input dataset.
        cfg: The size of the subset and the seed.
        name: Name of the new version; defaults to the input's name (a new version of it).
        tracker: Progress reporting.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.engine.ray_degrade`);
            the result, version id and Parquet files included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").

    Returns:
        The commit; `up_to_date` is True when the same subset of the same input already existed.
    """
    on_ray = check_engine(engine) == "ray"
    source = store.resolve(ref)
    params = cfg.to_params()
    if on_ray:
        return load_ray("ray_degrade").subset(
            store, source, cfg, name or source.name, params=params, address=address, tracker=tracker
        )

    def build(writer: PartWriter) -> dict[str, Any]:
        with tracker.task(f"Reading {source.ref}", total=None):
            frame, part_rows = read_parts(source)
        out, stats, keep = _subset(frame, cfg, tracker)
        del frame
        # Output chunk t is input part t's kept rows.
        kept_before = np.concatenate([[0], np.cumsum(keep)])[np.cumsum([0, *part_rows])]
        with tracker.task("Writing", total=len(part_rows)) as task:
            for lo, hi in itertools.pairwise(kept_before.tolist()):
                writer.write(out.slice(lo, hi - lo))
                task.advance()
        return stats

    return store.commit(name or source.name, operation=OPERATION, params=params, parents=[source.ref], build=build)
