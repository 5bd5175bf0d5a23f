"""MinHash signatures, LSH band keys and the choice of bands and rows for `curate dedupe`.

Signatures follow datasketch 2.0's default scheme ("affine32") bit for bit: each 32-bit shingle
hash h is pre-mixed with the MurmurHash3 32-bit finaliser, then permutation k maps it to
`a_k * h + b_k mod 2^32` (a_k odd), with (a, b) drawn from `numpy.random.RandomState(seed)` exactly
as `datasketch.MinHash._init_permutations` draws them; the signature is the minimum per
permutation, 2^32 - 1 for a document without shingles. So a signature from here equals
`datasketch.MinHash(num_perm, seed, hashfunc=normalize.hashfunc(kind))` updated with the same
shingles, and can be used with datasketch's own LSH indexes.

The permutation step is the hot loop (~150 shingles x 128 permutations per story). It runs over
windows of 4,096 shingles in a (permutations x shingles) layout: the 2 MiB product stays in the L2
cache and `minimum.reduceat` along the contiguous axis is ~10x faster than along rows, ~0.35 ns per
shingle-permutation on one core (pure numpy; numba was measured at ~0.1 ns but is not needed for
the targets, see docs/dedupe.md).

Invoked by `datadiet.curate.dedupe`; directly::

    cfg = MinhashConfig(threshold=0.8)
    bands, rows = cfg.bands_rows()
    sig = signatures(block.hashes, block.offsets, permutations(cfg.num_perm, cfg.seed))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, Strict

from datadiet.config import PLAIN, Count, Flag, choice, schema
from datadiet.curate.dedupe.normalize import SHINGLE_KINDS
from datadiet.errors import UsageError
from datadiet.hashing import fmix64

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

METHODS = ("exact", "minhash")
KEEP_POLICIES = ("first", "longest", "random")
MAX_HASH32 = np.uint32(0xFFFFFFFF)
# 4,096 shingles x 128 permutations x 4 bytes = 2 MiB, the L2 cache of one core here; measured
# 0.35 ns per element, against 1.0 ns at 2,048 and 0.46 ns at 8,192.
WINDOW = 4096
# Recall is worth far more than a candidate check (128 integer comparisons), so false negatives
# weigh 19x false positives; at threshold 0.8 and 128 permutations this gives 16 bands x 8 rows,
# P(candidate) = 0.947 at J = 0.8 and 0.994 at J = 0.85 (0.69 at J = 0.85 with equal weights).
FALSE_POSITIVE_WEIGHT = 0.05
FALSE_NEGATIVE_WEIGHT = 0.95
_BAND_BASE = np.uint64(0x9FB21C651E98DF25)


# The settings' bounds (a signature longer than 4,096 or a 1,000-word shingle is a typo, not a choice).
MAX_PERM = 4096
MAX_NGRAM = 1000
# Strictly between 0 and 1; numpy floats (a threshold computed by a Python caller) pass as floats.
Threshold = Annotated[float, PLAIN, Strict(), Field(gt=0, lt=1, allow_inf_nan=False)]


def _both(template: str) -> dict[str, str]:
    return {"type": template, "value": template}


# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_WORDING = {
    "method": _both(f"--method must be one of {', '.join(METHODS)}, not {{value!r}}"),
    "threshold": _both("--threshold must be a number strictly between 0 and 1, not {value!r}; try 0.8"),
    "num_perm": _both(f"--num-perm must be an integer from 1 to {MAX_PERM}, not {{value!r}}"),
    "ngram": _both(f"--ngram must be an integer from 1 to {MAX_NGRAM}, not {{value!r}}"),
    "shingle": _both(f"--shingle must be one of {', '.join(SHINGLE_KINDS)}, not {{value!r}}"),
    "keep": _both(f"--keep must be one of {', '.join(KEEP_POLICIES)}, not {{value!r}}"),
    "verify": _both("verify must be true or false, not {value!r}"),
    "seed": _both("--seed must be an integer from 0 to 2^32-1, not {value!r}"),
    "bands": _both("--bands must be a positive integer, not {value!r}"),
    "rows": _both("--rows must be a positive integer, not {value!r}"),
}


@schema(wording=_WORDING)
class MinhashConfig:
    """Every parameter of `curate dedupe` that changes which rows are kept (all go into the version id).

    Attributes:
        method: "exact" (identical normalised text) or "minhash" (near duplicates; exact ones too).
        threshold: Jaccard similarity of shingle sets at or above which two documents are duplicates, in (0, 1).
        num_perm: MinHash permutations (signature length).
        ngram: Tokens per shingle.
        shingle: "word" (word n-grams) or "char" (character n-grams).
        bands: LSH bands; None chooses bands and rows for high recall at the threshold.
        rows: Rows (signature values) per band; None as for bands.
        keep: Which document of a cluster is kept: "first" (lowest position), "longest" (ties: lowest
            position) or "random" (seeded).
        verify: Also check each candidate pair against the exact Jaccard of the shingle sets.
        seed: Seed of the permutations (datasketch's `seed`) and of keep="random".
    """

    method: Annotated[str, Strict(), choice(METHODS)] = "minhash"
    threshold: Threshold = 0.8
    num_perm: Annotated[int, PLAIN, Strict(), Field(ge=1, le=MAX_PERM)] = 128
    ngram: Annotated[int, PLAIN, Strict(), Field(ge=1, le=MAX_NGRAM)] = 5
    shingle: Annotated[str, Strict(), choice(SHINGLE_KINDS)] = "word"
    bands: Count | None = None
    rows: Count | None = None
    keep: Annotated[str, Strict(), choice(KEEP_POLICIES)] = "first"
    verify: Flag = False
    seed: Annotated[int, PLAIN, Strict(), Field(ge=0, lt=2**32)] = 1

    def __post_init__(self) -> None:
        # Field types and bounds are pydantic's (the wording above); what spans fields is checked here.
        b, r = self.bands, self.rows
        if b is not None and r is not None and b * r > self.num_perm:
            raise UsageError(
                f"--bands {b} x --rows {r} = {b * r} exceeds --num-perm {self.num_perm}; lower one or raise --num-perm"
            )
        for name, given in (("--bands", b), ("--rows", r)):
            if given is not None and (b is None or r is None) and self.num_perm % given:
                raise UsageError(
                    f"--num-perm {self.num_perm} is not divisible by {name} {given}; "
                    f"give both --bands and --rows, or a divisor of {self.num_perm}"
                )

    def bands_rows(self) -> tuple[int, int]:
        """The (bands, rows) actually used: as given, derived from one of them, or `optimal_param`."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        if self.rows is not None:
            return self.num_perm // self.rows, self.rows
        return optimal_param(self.threshold, self.num_perm)

    def params(self) -> dict[str, Any]:
        """The manifest parameters: every field, with bands and rows resolved."""
        out = asdict(self)
        out["threshold"] = float(self.threshold)
        if self.method == "minhash":
            out["bands"], out["rows"] = self.bands_rows()
        else:
            # Exact dedupe ignores these; keeping them out means changing them does not make a new version.
            for key in ("threshold", "num_perm", "ngram", "shingle", "bands", "rows", "verify"):
                out.pop(key)
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MinhashConfig:
        """The config recorded in a manifest's params (unknown keys ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in params.items() if k in known})


# -- bands and rows ------------------------------------------------------------------------------


def candidate_probability(jaccard: float | F64, bands: int, rows: int) -> float | F64:
    """P(two documents with this Jaccard share at least one band): the LSH S-curve 1 - (1 - J^r)^b."""
    out: float | F64 = 1.0 - (1.0 - np.power(jaccard, rows)) ** bands
    return out


@functools.cache
def optimal_param(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
    false_negative_weight: float = FALSE_NEGATIVE_WEIGHT,
) -> tuple[int, int]:
    """The (bands, rows) with bands * rows <= num_perm minimising the weighted false positive and negative areas.

    As datasketch's `_optimal_param`: the false-positive area is the integral of the S-curve over
    [0, threshold], the false-negative area that of 1 - S over [threshold, 1] (trapezoid rule on
    401 points instead of scipy's quad; the choices agree at the thresholds tested).
    """
    lo = np.linspace(0.0, threshold, 401)
    hi = np.linspace(threshold, 1.0, 401)
    best = (math.inf, 1, 1)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = float(np.trapezoid(candidate_probability(lo, b, r), lo))
            fn = float(np.trapezoid(1.0 - candidate_probability(hi, b, r), hi))
            err = false_positive_weight * fp + false_negative_weight * fn
            if err < best[0]:
                best = (err, b, r)
    return best[1], best[2]


def s_curve(
    bands: int, rows: int, points: tuple[float, ...] = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
) -> list[tuple[float, float]]:
    """(Jaccard, P(candidate)) pairs for a table of the S-curve."""
    return [(j, float(candidate_probability(j, bands, rows))) for j in points]


# -- signatures ----------------------------------------------------------------------------------


@functools.cache
def permutations(num_perm: int, seed: int) -> tuple[U32, U32]:
    """The affine32 permutation parameters (a, b), drawn exactly as datasketch 2.0 draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def fmix32(h: U32) -> U32:
    """MurmurHash3's 32-bit finaliser (datasketch's pre-mix of every input hash)."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    out: U32 = h
    return out


def hash32(hashes64: U64) -> U32:
    """The 32-bit shingle hashes MinHash permutes: the top half of the 64-bit ones."""
    out: U32 = (hashes64 >> np.uint64(32)).astype(np.uint32)
    return out


def signatures(hashes64: U64, offsets: I64, perms: tuple[U32, U32], window: int = WINDOW) -> U32:
    """MinHash signatures of many documents at once.

    Args:
        hashes64: 64-bit shingle hashes of all documents, concatenated (from `block_shingles`).
        offsets: (docs + 1,) boundaries of each document's shingles in `hashes64`.
        perms: (a, b) from `permutations`.
        window: Shingles per vectorised step.

    Returns:
        (docs, num_perm) uint32; rows of documents without shingles are all 2^32 - 1.
    """
    a, b = perms
    p = a.size
    docs = offsets.size - 1
    sig = np.full((docs, p), MAX_HASH32, dtype=np.uint32)
    total = int(offsets[-1])
    if total == 0:
        return sig
    hv = fmix32(hash32(hashes64))
    a_col = a[:, None]
    b_col = b[:, None]
    scratch = np.empty(p * min(window, total), dtype=np.uint32)
    for s in range(0, total, window):
        t = min(s + window, total)
        d0 = int(np.searchsorted(offsets, s, side="right")) - 1
        d1 = int(np.searchsorted(offsets, t - 1, side="right")) - 1
        ds = np.arange(d0, d1 + 1)
        seg_start = np.maximum(offsets[ds], s)
        seg_end = np.minimum(offsets[ds + 1], t)
        nonempty = seg_end > seg_start
        ds = ds[nonempty]
        buf = scratch[: p * (t - s)].reshape(p, t - s)
        np.multiply(a_col, hv[None, s:t], out=buf)
        np.add(buf, b_col, out=buf)
        mins = np.minimum.reduceat(buf, seg_start[nonempty] - s, axis=1)
        sig[ds] = np.minimum(sig[ds], mins.T)
    return sig


def band_keys(sig: U32, bands: int, rows: int) -> U64:
    """(docs, bands) uint64 keys: documents share band k's key iff they agree on its `rows` values (up to 2^-64)."""
    docs = sig.shape[0]
    keys = np.empty((docs, bands), dtype=np.uint64)
    for k in range(bands):
        h = np.full(docs, k + 1, dtype=np.uint64)
        for j in range(k * rows, (k + 1) * rows):
            h = h * _BAND_BASE + sig[:, j]
        keys[:, k] = fmix64(h)
    return keys


def estimate_jaccard(sig_a: U32, sig_b: U32) -> F64:
    """Row-wise MinHash Jaccard estimate: the share of equal signature values (as datasketch's `jaccard`)."""
    if sig_a.ndim == 1:
        return np.asarray(float(np.count_nonzero(sig_a == sig_b)) / sig_a.size)
    out: F64 = np.count_nonzero(sig_a == sig_b, axis=1) / sig_a.shape[1]
    return out


def exact_jaccard(a: U64, b: U64) -> float:
    """Jaccard similarity of two shingle-hash sets (two empty sets count as identical, 1.0)."""
    ua, ub = np.unique(a), np.unique(b)
    union = np.union1d(ua, ub).size
    if union == 0:
        return 1.0
    return np.intersect1d(ua, ub, assume_unique=True).size / union
