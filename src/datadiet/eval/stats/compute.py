"""Dataset statistics of one version: size, duplication, diversity and compressibility.

Computed once per version by `curate stats REF` (the CLI stores the dict in the manifest's stats;
`--engine ray` computes the same dict on a Ray cluster, `ray.py` beside this module); library use::

    from datadiet.eval.stats.compute import dataset_stats
    stats = dataset_stats(dataset.read(), tokens=n_tokens)

Definitions (keys are the constants below):

- words are those of `datadiet.curate.dedupe.normalize.normalize` (NFKC, lowercase, every punctuation,
  symbol or whitespace character separates words), so "exact duplicate" here means the same as in
  `curate dedupe --method exact`;
- `exact_duplicate_share`: documents whose normalised text equals that of an earlier document;
- `near_duplicate_share`: documents `curate dedupe` (MinHash LSH, word 5-grams, 128 permutations,
  at `minhash_threshold`) would remove; exact duplicates are removed by it too, so this is >= the
  exact share. None when `near_dup=False`;
- `largest_cluster_share` / `unique_document_share`: size of the largest duplicate cluster, and the
  number of documents in no cluster (no exact or near copy anywhere), over all documents. Clusters
  are the near-duplicate ones, or the exact ones when `near_dup=False`;
- `distinct_{1,2,4}gram_ratio`: distinct word n-grams / n-gram occurrences over the whole dataset
  (n-grams do not cross documents; a document shorter than n words has none);
- `unigram_entropy_bits`: Shannon entropy of the word frequency distribution, in bits;
- `type_token_ratio`: the mean over non-empty documents of distinct words / words in that document
  (corpus-level types/tokens is `distinct_1gram_ratio`; this one does not shrink as the corpus grows);
- `compression_ratio`: zlib (level 6) compressed bytes / raw bytes of the documents joined by "\n",
  over every document, or an evenly spaced deterministic sample of whole documents when the text
  exceeds `COMPRESSION_SAMPLE_BYTES`;
- lengths: mean and median characters and words per document;
- `top_repeated`: the 5 normalised texts with the most exact copies (count >= 2), with a preview of
  the first occurrence.

Speed and memory: one pass over blocks of documents, on a thread per core (numpy and polars
release the GIL in every heavy step). Each block is a flat numpy array of its UTF-8 bytes; the
non-ASCII documents are NFKC-folded in Python first, and no Python code runs per word. A word's
hash is `curate dedupe`'s own token value (`normalize.word_tokens`), so the same hashes feed the
statistics and, through `normalize.shingle_hashes`, `minhash.signatures` and `minhash.band_keys`,
the MinHash signatures of the block's documents whose normalised text is new (first seen, in
position order): no text is normalised twice and none is copied to another process. Signing a
block overlaps with the statistics of the next ones. Only hashes outlive a block: per document a
few integers and its signature (640 bytes at 128 permutations and 16 bands); distinct 2- and
4-gram hashes are merged as they accumulate. The clusters are then `dedupe.find_duplicates` over
those signatures, so the share is what the dedupe would remove (a test checks it against
`dedupe_texts`). `benchmarks/stats_speed.py` measures it; the tests check every diversity
statistic against a per-word Python reference built on `normalize`.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from datadiet.curate.dedupe.normalize import word_tokens
from datadiet.errors import UsageError
from datadiet.eval.stats.signer import _config, _Signer
from datadiet.hashing import fmix64
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import cpu_count
from datadiet.schema import TEXT

U32 = npt.NDArray[np.uint32]

U64 = npt.NDArray[np.uint64]

I64 = npt.NDArray[np.int64]


# -- keys of the returned dict -------------------------------------------------------------------
DOCUMENTS = "documents"

BYTES = "bytes"

TOKENS = "tokens"

EXACT_DUPLICATE_SHARE = "exact_duplicate_share"

NEAR_DUPLICATE_SHARE = "near_duplicate_share"

LARGEST_CLUSTER_SHARE = "largest_cluster_share"

UNIQUE_DOCUMENT_SHARE = "unique_document_share"

DISTINCT_1GRAM_RATIO = "distinct_1gram_ratio"

DISTINCT_2GRAM_RATIO = "distinct_2gram_ratio"

DISTINCT_4GRAM_RATIO = "distinct_4gram_ratio"

UNIGRAM_ENTROPY_BITS = "unigram_entropy_bits"

COMPRESSION_RATIO = "compression_ratio"

MEAN_CHARS = "mean_chars"

MEDIAN_CHARS = "median_chars"

MEAN_WORDS = "mean_words"

MEDIAN_WORDS = "median_words"

TYPE_TOKEN_RATIO = "type_token_ratio"

TOP_REPEATED = "top_repeated"

NEAR_DUPLICATE_METHOD = "near_duplicate_method"


# The numeric statistics, in display order (what `relate` can correlate with metrics).
NUMERIC_STATS: tuple[str, ...] = (
    DOCUMENTS,
    BYTES,
    TOKENS,
    EXACT_DUPLICATE_SHARE,
    NEAR_DUPLICATE_SHARE,
    LARGEST_CLUSTER_SHARE,
    UNIQUE_DOCUMENT_SHARE,
    DISTINCT_1GRAM_RATIO,
    DISTINCT_2GRAM_RATIO,
    DISTINCT_4GRAM_RATIO,
    UNIGRAM_ENTROPY_BITS,
    COMPRESSION_RATIO,
    MEAN_CHARS,
    MEDIAN_CHARS,
    MEAN_WORDS,
    MEDIAN_WORDS,
    TYPE_TOKEN_RATIO,
)


NGRAM_SIZES = (1, 2, 4)

TOP_N = 5

PREVIEW_CHARS = 80

ZLIB_LEVEL = 6

# ~50 MB of text compresses in ~2-3 s at level 6 and pins the ratio to well under 1% (it is a
# property of the text's redundancy, which a few thousand stories already sample).
COMPRESSION_SAMPLE_BYTES = 50_000_000

# Documents per numpy block: ~7 MB of stories, ~1.4M words, so a block's 8-byte-per-word arrays
# stay ~11 MB each; 32,768 was no faster and held 4x the memory per thread.
BLOCK_DOCS = 8192

# The per-block distinct n-gram hashes of one size are merged once they outnumber 4x the distinct
# ones (and 16M, 128 MB): memory stays a small multiple of the distinct n-grams, with few sorts.
MERGE_MIN = 16_000_000


_MASK64 = (1 << 64) - 1

# Odd 64-bit multipliers (invertible mod 2^64, which the prefix-sum trick needs).
_WORD_BASE = 0x9E3779B97F4A7C15

_OFFSET = 0xCBF29CE484222325

# One odd multiplier per position of an n-gram (n <= 8), so "a b" and "b a" hash differently.
_NGRAM_MULT = (
    0xD6E8FEB86659FD93,
    0xA0761D6478BD642F,
    0xE7037ED1A0B428DB,
    0x8EBC6AF09C88C6E3,
    0x589965CC75374CC3,
    0x1D8E4E27C47D124F,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
)


def _separator_lut() -> npt.NDArray[np.bool_]:
    # The ASCII half of `normalize`'s definition; bytes >= 0x80 only occur in documents that went
    # through `_fold` first, which blanked the non-ASCII separators, so they are parts of words.
    lut = np.zeros(256, dtype=bool)
    for b in range(128):
        ch = chr(b)
        lut[b] = ch.isspace() or unicodedata.category(ch)[0] in "PS"
    return lut


_IS_WORD = ~_separator_lut()

_LOWER = np.arange(256, dtype=np.uint8)

_LOWER[ord("A") : ord("Z") + 1] += 32


class _Powers:
    """base^i and base^-i mod 2^64, computed once and grown on demand (16 bytes per word).

    Safe to share between threads: the pair is replaced in one assignment, so a reader never sees
    a new `pos` with an old, shorter `inv`.
    """

    def __init__(self, base: int) -> None:
        self.base = base
        self.arrays = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    def get(self, n: int) -> tuple[U64, U64]:
        pos, inv = self.arrays
        if pos.size < n:
            arr = np.full(max(n, 2 * pos.size), self.base, dtype=np.uint64)
            arr[0] = 1
            pos = np.cumprod(arr, dtype=np.uint64)
            arr[1:] = pow(self.base, -1, 1 << 64)
            inv = np.cumprod(arr, dtype=np.uint64)
            self.arrays = (pos, inv)
        return pos[:n], inv[:n]


_WORD_POWERS = _Powers(_WORD_BASE)


def _segment_poly(values: U64, starts: I64, ends: I64, powers: _Powers) -> U64:
    """Polynomial hash sum_j values[s + j] * base^(len - 1 - j) of every segment [s, e), mod 2^64."""
    pos, inv = powers.get(values.size + 1)
    prefix = np.zeros(values.size + 1, dtype=np.uint64)
    np.cumsum(values * inv[: values.size], out=prefix[1:])
    out = np.zeros(starts.size, dtype=np.uint64)
    nonempty = ends > starts
    s, e = starts[nonempty], ends[nonempty]
    out[nonempty] = (prefix[e] - prefix[s]) * pos[e - 1]
    # Mixing in the length keeps a segment from colliding with its own zero-padded extensions.
    mixed: U64 = out + np.uint64(_OFFSET) * pos[ends - starts]
    return mixed


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


@functools.lru_cache(maxsize=65536)
def _blank_run(run: str) -> str:
    return "".join(" " if ch.isspace() or unicodedata.category(ch)[0] in "PS" else ch for ch in run)


def _fold(text: str) -> str:
    """NFKC and lowercase, with non-ASCII separators blanked: the byte pass then yields `normalize`'s words."""
    folded = unicodedata.normalize("NFKC", text).lower()
    # Only the (rare) non-ASCII runs are classified in Python, each distinct run once.
    return folded if folded.isascii() else _NON_ASCII.sub(lambda m: _blank_run(m.group()), folded)


@dataclass
class _Block:
    """Word-level view of one block of documents."""

    words: U64  # (W,) `normalize.word_token` of each word, in document order
    word_counts: I64  # (D,) words per document
    offsets: I64  # (D + 1,) document d's words are words[offsets[d]:offsets[d + 1]]
    doc_keys: U64  # (D,) 64-bit hash of each document's normalised text


def _texts_array(texts: pl.Series) -> tuple[npt.NDArray[np.uint8], I64]:
    """The UTF-8 bytes of all texts and (D + 1,) offsets into them, without a Python loop."""
    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    base = int(offsets[0])
    return data[base : int(offsets[-1])], (offsets - base).astype(np.int64)


def _block_words(texts: pl.Series) -> _Block:
    """Normalise and hash the words of a block of documents (no nulls)."""
    data, offsets = _texts_array(texts)
    hi = np.flatnonzero(data >= 0x80)
    if hi.size:
        # Non-ASCII documents are folded in Python first (NFKC turns e.g. ligatures into letters).
        rows = np.unique(np.searchsorted(offsets, hi, side="right") - 1)
        texts = texts.scatter(rows, [_fold(t) for t in texts.gather(rows).to_list()])
        data, offsets = _texts_array(texts)
    # Case does not change which bytes separate words, so only the word bytes are lowercased.
    is_word = _IS_WORD[data]
    # A word ends at a separator or at the end of its document, and starts likewise.
    starts_mask = is_word.copy()
    starts_mask[1:] &= ~is_word[:-1]
    ends_mask = is_word.copy()
    ends_mask[:-1] &= ~is_word[1:]
    filled = offsets[:-1] < offsets[1:]
    doc_starts = offsets[:-1][filled]
    doc_lasts = offsets[1:][filled] - 1
    starts_mask[doc_starts] = is_word[doc_starts]
    ends_mask[doc_lasts] = is_word[doc_lasts]
    w_start = np.flatnonzero(starts_mask)
    w_len = np.flatnonzero(ends_mask) + 1 - w_start
    # The normalised words back to back; each word's hash is the dedupe's own token value, so
    # the MinHash shingles are built from these very hashes (`_Signer.sign`).
    w_off = np.zeros(w_len.size + 1, dtype=np.int64)
    np.cumsum(w_len, out=w_off[1:])
    compact = _LOWER[data[is_word]]
    words = word_tokens(compact, w_off[:-1], w_off[1:])
    # Word starts are sorted, so locating the document boundaries among them is D binary searches.
    d_off = np.searchsorted(w_start, offsets, side="left").astype(np.int64)
    word_counts = np.diff(d_off)
    doc_keys = fmix64(_segment_poly(words, d_off[:-1], d_off[1:], _WORD_POWERS))
    return _Block(words=words, word_counts=word_counts, offsets=d_off, doc_keys=doc_keys)


def _ngrams(words: U64, word_counts: I64, n: int, *, mix: bool = True) -> U64:
    """64-bit hashes of every word n-gram that lies within one document.

    `mix=False` skips the final fmix64, a bijection: equality, all that counting needs, is unchanged.
    """
    if n == 1:
        return words
    total = words.size
    if total < n:
        return np.zeros(0, dtype=np.uint64)
    windows = total - n + 1
    acc = words[:windows] * np.uint64(_NGRAM_MULT[0])
    for j in range(1, n):
        acc += words[j : windows + j] * np.uint64(_NGRAM_MULT[j])
    # Words left in the document from each position on: an n-gram starting there fits iff >= n.
    ends = np.cumsum(word_counts)
    left = np.repeat(ends, word_counts)[:windows] - np.arange(windows)
    out: U64 = acc[left >= n]
    return fmix64(out) if mix else out


def ngram_hashes(texts: pl.Series, n: int) -> U64:
    """64-bit hashes of every word n-gram (1 <= n <= 8) of the texts, within documents; equal n-grams hash equally.

    Hashes are stable across processes and versions (they are built on `normalize.word_token`).
    """
    if not 1 <= n <= len(_NGRAM_MULT):
        raise ValueError(f"n-gram size must be from 1 to {len(_NGRAM_MULT)}, not {n}")
    block = _block_words(texts.cast(pl.String).fill_null(""))
    return _ngrams(block.words, block.word_counts, n)


def _distinct_per_doc(words: U64, word_counts: I64) -> I64:
    """Distinct words in each document of a block."""
    docs = word_counts.size
    doc_of = np.repeat(np.arange(docs, dtype=np.uint64), word_counts)
    # 24 bits of document index above 40 bits of word hash: blocks have < 2^24 documents, and two
    # different words of one document share 40 hash bits with probability ~1e-8.
    key = (doc_of << np.uint64(40)) | (words >> np.uint64(24))
    key.sort()
    new = np.ones(key.size, dtype=bool)
    new[1:] = key[1:] != key[:-1]
    return np.bincount((key[new] >> np.uint64(40)).astype(np.int64), minlength=docs).astype(np.int64)


@dataclass
class _Summary:
    """What one block contributes to the dataset's statistics."""

    word_counts: I64
    doc_keys: U64
    distinct_words: I64
    unigrams: pl.DataFrame  # word hash -> count
    distinct: dict[int, U64]  # n -> distinct n-gram hashes of the block
    totals: dict[int, int]  # n -> n-gram occurrences
    words: U64  # the block's word tokens and their offsets, kept for signing
    offsets: I64


def _block_summary(texts: pl.Series) -> _Summary:
    block = _block_words(texts)
    totals = {1: int(block.words.size)}
    distinct = {}
    for size in NGRAM_SIZES[1:]:
        grams = _ngrams(block.words, block.word_counts, size, mix=False)
        totals[size] = int(grams.size)
        # Made distinct in the worker thread: merging raw hashes instead held ~250 MB more per
        # 300k stories and moved the work to the serial main thread, for no measurable CPU gain.
        distinct[size] = _unique(grams)
    return _Summary(
        word_counts=block.word_counts,
        doc_keys=block.doc_keys,
        distinct_words=_distinct_per_doc(block.words, block.word_counts),
        unigrams=pl.Series("w", block.words).value_counts(name="c").shrink_to_fit(),
        distinct=distinct,
        totals=totals,
        words=block.words,
        offsets=block.offsets,
    )


def _unique(values: U64) -> U64:
    """The distinct values, in a numpy array of their own.

    A polars `unique()` result keeps ~4x its size allocated (measured: 150 MB of hashes held
    570 MB), so only a tight copy outlives the call.
    """
    out: U64 = pl.Series("g", values).unique().to_numpy().copy()
    return out


@dataclass
class _DistinctCount:
    """Distinct values over many blocks' hashes, merged into one distinct array as they accumulate."""

    parts: list[U64] = field(default_factory=list)
    held: int = 0
    distinct: int = 0

    def add(self, values: U64) -> None:
        self.parts.append(values)
        self.held += values.size
        if self.held > max(4 * self.distinct, MERGE_MIN):
            self.parts = [_unique(np.concatenate(self.parts))]
            self.held = self.distinct = self.parts[0].size

    def count(self) -> int:
        return _unique(np.concatenate(self.parts)).size if self.parts else 0


def _compression_ratio(texts: pl.Series, lengths: I64) -> float | None:
    total = int(lengths.sum())
    if total == 0:
        return None
    if total <= COMPRESSION_SAMPLE_BYTES:
        sample = texts
    else:
        # Every k-th document, k fixed by the size: deterministic and spread over the whole dataset.
        step = math.ceil(total / COMPRESSION_SAMPLE_BYTES)
        sample = texts.gather_every(step)
    raw = "\n".join(sample.to_list()).encode("utf-8")
    return len(zlib.compress(raw, ZLIB_LEVEL)) / len(raw) if raw else None


def check_threshold(threshold: float) -> float:
    """Validate the near-duplicate Jaccard threshold (every engine checks it first, with this message).

    Raises:
        UsageError: it is not strictly between 0 and 1.
    """
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"minhash threshold must be strictly between 0 and 1, not {threshold!r}; try 0.8")
    return threshold


def near_duplicate_labels(texts: Sequence[str] | pl.Series, *, threshold: float = 0.8, seed: int = 0) -> I64:
    """Cluster label (lowest member position) of each text under `curate dedupe --method minhash`.

    Args:
        texts: Documents (a polars Series avoids materialising Python strings for large inputs).
        threshold: Jaccard threshold of the dedupe.
        seed: MinHash permutation seed.

    Returns:
        (N,) int64 labels; documents with the same label are one near-duplicate cluster.
    """
    series = texts if isinstance(texts, pl.Series) else pl.Series(TEXT, list(texts), dtype=pl.String)
    series = series.cast(pl.String).fill_null("")
    signer = _Signer(_config(threshold, seed), series.len())
    keys = np.zeros(series.len(), dtype=np.uint64)
    for start in range(0, series.len(), BLOCK_DOCS):
        block = _block_words(series.slice(start, BLOCK_DOCS))
        docs = np.arange(block.doc_keys.size, dtype=np.int64)
        signer.sign(signer.reserve(docs.size), block.words, block.offsets, docs)
        keys[start : start + docs.size] = block.doc_keys
    return signer.labels(keys)


def dataset_stats(
    frame: pl.DataFrame,
    *,
    tokens: int | None = None,
    near_dup: bool = True,
    minhash_threshold: float = 0.8,
    seed: int = 0,
    tracker: Tracker = NULL_TRACKER,
) -> dict[str, Any]:
    """The statistics of one dataset (definitions in the module docstring).

    Args:
        frame: Rows with a `text` column (nulls count as empty documents).
        tokens: Token count under the run's tokenizer, when known; stored as given.
        near_dup: Also run MinHash near-duplicate detection (the slowest part).
        minhash_threshold: Jaccard threshold of the near-duplicate detection, in (0, 1).
        seed: MinHash permutation seed.
        tracker: Progress.

    Returns:
        A JSON-ready dict keyed by this module's constants; shares and ratios are in [0, 1],
        None where undefined (no words, no documents).
    """
    if TEXT not in frame.columns:
        raise UsageError(f"the frame has no {TEXT!r} column; pass a dataset with the datadiet schema")
    check_threshold(minhash_threshold)
    texts = _text_column(frame)
    n = texts.len()
    lengths = texts.str.len_bytes().to_numpy().astype(np.int64)
    chars = texts.str.len_chars().to_numpy().astype(np.int64)
    signer = _Signer(_config(minhash_threshold, seed), n) if near_dup and n else None
    scan = _scan(texts, lengths, signer, tracker)
    out: dict[str, Any] = {DOCUMENTS: n, BYTES: int(lengths.sum()), TOKENS: tokens}
    out.update(_diversity(scan, chars))
    out[COMPRESSION_RATIO] = scan.compression_ratio
    roots = _exact_roots(scan.doc_keys)
    out[EXACT_DUPLICATE_SHARE] = float((roots != np.arange(n)).sum() / n) if n else None
    out[TOP_REPEATED] = _top_repeated(scan.doc_keys, texts)
    labels = _cluster_labels(scan.doc_keys, roots, signer, tracker)
    out[NEAR_DUPLICATE_METHOD] = f"minhash threshold={minhash_threshold} seed={seed}" if signer is not None else None
    out.update(_cluster_shares(labels, near_dup))
    return {key: out.get(key) for key in (*NUMERIC_STATS, NEAR_DUPLICATE_METHOD, TOP_REPEATED)}


def _text_column(frame: pl.DataFrame) -> pl.Series:
    # No copy of the text unless needed: at 2.1M stories it is ~1.8 GB.
    texts = frame[TEXT]
    if texts.dtype != pl.String:
        texts = texts.cast(pl.String)
    if texts.null_count():
        texts = texts.fill_null("")
    return texts


@dataclass
class _Scan:
    """What one pass over the blocks gathers: per-document word counts and text keys, n-gram tallies."""

    word_counts: I64
    distinct_words: I64
    doc_keys: U64
    unigram_parts: list[pl.DataFrame] = field(default_factory=list)
    distinct_counts: dict[int, _DistinctCount] = field(default_factory=dict)
    ngram_totals: dict[int, int] = field(default_factory=dict)
    compression_ratio: float | None = None

    def add(self, start: int, part: _Summary) -> int:
        """Take one block's summary (documents from START); return the position after it."""
        end = start + part.word_counts.size
        self.word_counts[start:end] = part.word_counts
        self.doc_keys[start:end] = part.doc_keys
        self.distinct_words[start:end] = part.distinct_words
        self.unigram_parts.append(part.unigrams)
        for size in NGRAM_SIZES:
            self.ngram_totals[size] += part.totals[size]
            if size > 1:
                self.distinct_counts[size].add(part.distinct[size])
        return end


def _scan(texts: pl.Series, lengths: I64, signer: _Signer | None, tracker: Tracker) -> _Scan:
    """Summarise every block of documents in worker threads, signing each new text as its block arrives."""
    n = texts.len()
    scan = _Scan(
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.uint64),
        distinct_counts={size: _DistinctCount() for size in NGRAM_SIZES[1:]},
        ngram_totals=dict.fromkeys(NGRAM_SIZES, 0),
    )
    # Normalised-text hashes seen in earlier blocks: a document is signed iff its text is new.
    seen: set[int] = set()
    workers = cpu_count()
    with tracker.task("Statistics", total=n) as task, ThreadPoolExecutor(max_workers=workers) as pool:
        # Threads, not processes: numpy and polars release the GIL in every heavy step, so blocks
        # overlap on all cores without copying text between processes. zlib does too.
        compression: Future[float | None] = pool.submit(_compression_ratio, texts, lengths)
        signing: list[Future[None]] = []
        block_starts = iter(range(0, n, BLOCK_DOCS))
        # A few blocks in flight, not all: each holds ~60 MB until the main thread takes it.
        ahead = deque(
            (s, pool.submit(_block_summary, texts.slice(s, BLOCK_DOCS)))
            for s in itertools.islice(block_starts, workers + 1)
        )
        while ahead:
            start, future = ahead.popleft()
            part = future.result()
            following = next(block_starts, None)
            if following is not None:
                ahead.append((following, pool.submit(_block_summary, texts.slice(following, BLOCK_DOCS))))
            end = scan.add(start, part)
            if signer is not None:
                # Queued behind the blocks already in flight, so signing overlaps the next blocks.
                local = np.flatnonzero(pl.Series(part.doc_keys).is_first_distinct().to_numpy())
                candidates = part.doc_keys[local].tolist()
                new = local[np.fromiter((k not in seen for k in candidates), dtype=bool, count=local.size)]
                seen.update(candidates)
                row = signer.reserve(new.size)
                signing.append(pool.submit(signer.sign, row, part.words, part.offsets, new))
            task.advance(end - start)
        for done in signing:
            done.result()
        scan.compression_ratio = compression.result()
    return scan


def _diversity(scan: _Scan, chars: I64) -> dict[str, Any]:
    """Entropy, distinct-n ratios, type/token ratio and document lengths."""
    out: dict[str, Any] = {}
    # Sorted, because polars' group_by returns groups in a thread-dependent order and a float sum
    # in another order differs in its last bit: the stored entropy must be the same on every run
    # (as the Ray build's).
    if scan.unigram_parts:
        unigrams = pl.concat(scan.unigram_parts).group_by("w").agg(pl.col("c").sum())
        counts = np.sort(unigrams["c"].to_numpy().astype(np.float64))
    else:
        counts = np.zeros(0)
    total_words = scan.ngram_totals[1]
    if total_words:
        p = counts / total_words
        out[UNIGRAM_ENTROPY_BITS] = float(-(p * np.log2(p)).sum())
        out[DISTINCT_1GRAM_RATIO] = counts.size / total_words
    else:
        out[UNIGRAM_ENTROPY_BITS] = None
        out[DISTINCT_1GRAM_RATIO] = None
    for size, key in ((2, DISTINCT_2GRAM_RATIO), (4, DISTINCT_4GRAM_RATIO)):
        distinct = scan.distinct_counts[size].count() if scan.ngram_totals[size] else 0
        out[key] = distinct / scan.ngram_totals[size] if scan.ngram_totals[size] else None
    word_counts, n = scan.word_counts, scan.word_counts.size
    nonempty = word_counts > 0
    out[TYPE_TOKEN_RATIO] = (
        float((scan.distinct_words[nonempty] / word_counts[nonempty]).mean()) if nonempty.any() else None
    )
    out[MEAN_CHARS] = float(chars.mean()) if n else None
    out[MEDIAN_CHARS] = float(np.median(chars)) if n else None
    out[MEAN_WORDS] = float(word_counts.mean()) if n else None
    out[MEDIAN_WORDS] = float(np.median(word_counts)) if n else None
    return out


def _exact_roots(doc_keys: U64) -> I64:
    """For each document, the first position with its normalised text (itself for a first occurrence)."""
    keyed = pl.DataFrame({"k": doc_keys}).with_row_index("i")
    roots: I64 = keyed.select(pl.col("i").min().over("k"))["i"].to_numpy().astype(np.int64)
    return roots


def _top_repeated(doc_keys: U64, texts: pl.Series) -> list[dict[str, Any]]:
    """The TOP_N most repeated texts (ties: first seen first), each with a preview and its count."""
    groups = (
        pl.DataFrame({"k": doc_keys})
        .with_row_index("i")
        .group_by("k")
        .agg(pl.len().alias("count"), pl.col("i").min().alias("first"))
        .filter(pl.col("count") >= 2)
        .sort(["count", "first"], descending=[True, False])
        .head(TOP_N)
    )
    return [
        {"preview": texts[int(first)][:PREVIEW_CHARS], "count": int(count)}
        for first, count in zip(groups["first"].to_list(), groups["count"].to_list(), strict=True)
    ]


def _cluster_labels(doc_keys: U64, roots: I64, signer: _Signer | None, tracker: Tracker) -> I64:
    """Each document's cluster: its near-duplicate cluster over the distinct texts, else its exact group."""
    if signer is None:
        return roots
    n = roots.size
    rep_pos = np.flatnonzero(roots == np.arange(n))
    # The signed rows are the first occurrences in position order, i.e. exactly the roots.
    if rep_pos.size != signer.used:  # pragma: no cover - an internal invariant
        raise RuntimeError(f"signed {signer.used} distinct texts but found {rep_pos.size}")
    with tracker.task("Near duplicates", total=None):
        rep_labels = signer.labels(doc_keys[rep_pos])
    rep_index = np.zeros(n, dtype=np.int64)
    rep_index[rep_pos] = np.arange(rep_pos.size)
    labels: I64 = rep_pos[rep_labels][rep_index[roots]]
    return labels


def _cluster_shares(labels: I64, near_dup: bool) -> dict[str, Any]:
    n = labels.size
    if not n:
        return dict.fromkeys((NEAR_DUPLICATE_SHARE, LARGEST_CLUSTER_SHARE, UNIQUE_DOCUMENT_SHARE))
    sizes = np.bincount(labels, minlength=n)
    components = int(np.count_nonzero(sizes))
    return {
        NEAR_DUPLICATE_SHARE: (n - components) / n if near_dup else None,
        LARGEST_CLUSTER_SHARE: int(sizes.max()) / n,
        UNIQUE_DOCUMENT_SHARE: int(np.count_nonzero(sizes == 1)) / n,
    }
