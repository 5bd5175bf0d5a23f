"""`--engine ray` for `curate stats`: a version's statistics from Ray tasks over its Parquet parts.

    curate stats REF --engine ray [--address auto|HOST:PORT]

The statistics are those of `compute.dataset_stats`, from the same per-block code
(`stats._block_summary`), in four steps:

1. map: one task per slice of a part (`datadiet.engine.ray.plan_slices`) reads its texts (where the store
   keeps them: a shared folder, or the object store itself) and returns a small summary
   (documents, bytes, characters, words and n-gram occurrences, the type-token sum, histograms
   of characters and words per document) plus P hash partitions: the slice's distinct words
   with their counts, its distinct 2- and 4-gram hashes, and (normalised-text hash, position) of
   every document. Partition p holds the values whose `fmix64` is p modulo P.
2. reduce: one task per partition merges partition p of every slice: distinct words and their
   share of the unigram entropy, distinct 2- and 4-grams, distinct texts, singletons, the largest
   exact group and the partition's most repeated texts. No node ever holds more than 1/P of the
   distinct n-grams.
3. compression: the local engine's zlib sample (every document, or every k-th one above
   COMPRESSION_SAMPLE_BYTES, chosen by global position) is gathered by per-slice tasks and
   compressed in one task: at most ~50 MB of text goes to one node, whatever the size.
4. near duplicates: `datadiet.curate.dedupe.ray.find_members` (the `curate dedupe --engine ray` pipeline, which
   reads and signs the parts itself) with the statistics' MinHash settings; only the members of
   clusters come back, and the shares are counted from them.

Exact as the local engine (same integers, same floats): every count, share and ratio, the means
(integer sums divided by the count) and medians (from merged histograms), the compression ratio
(the same bytes compressed), the most repeated texts and the near-duplicate shares. Two floats are
sums taken in another order and agree to ~1e-15 relative (not bit for bit): `unigram_entropy_bits`
(a sum per partition) and `type_token_ratio` (a sum per slice).

Invoked by `datadiet.eval.stats.op.stats_version(..., engine="ray")`, which imports this module only then.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import ray

from datadiet.curate.dedupe.output import CLUSTER_ID
from datadiet.curate.dedupe.ray import find_members
from datadiet.engine.ray import Slice, connect, plan_slices
from datadiet.eval.stats import compute as local
from datadiet.eval.stats.compute import (
    BLOCK_DOCS,
    BYTES,
    COMPRESSION_RATIO,
    DISTINCT_1GRAM_RATIO,
    DISTINCT_2GRAM_RATIO,
    DISTINCT_4GRAM_RATIO,
    DOCUMENTS,
    EXACT_DUPLICATE_SHARE,
    LARGEST_CLUSTER_SHARE,
    MEAN_CHARS,
    MEAN_WORDS,
    MEDIAN_CHARS,
    MEDIAN_WORDS,
    NEAR_DUPLICATE_METHOD,
    NEAR_DUPLICATE_SHARE,
    NGRAM_SIZES,
    NUMERIC_STATS,
    PREVIEW_CHARS,
    TOKENS,
    TOP_N,
    TOP_REPEATED,
    TYPE_TOKEN_RATIO,
    UNIGRAM_ENTROPY_BITS,
    UNIQUE_DOCUMENT_SHARE,
    ZLIB_LEVEL,
    _block_summary,
    _unique,
    check_threshold,
)
from datadiet.eval.stats.signer import _config
from datadiet.hashing import fmix64
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.runtime import Timer
from datadiet.schema import TEXT
from datadiet.store import Dataset, PartSource, part_metadata

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

# Hash partitions: at least 2 per CPU (every core busy while one partition is slower), and one per
# 32 MiB of text (~6M words): a reduce task then holds at most ~6M (word, count) pairs and as many
# 2- and 4-gram hashes, ~200 MB, at any dataset size.
PARTS_PER_CPU = 2
TEXT_BYTES_PER_PART = 32 * 1024 * 1024

# Keys of a partition (numpy arrays): words and their counts, distinct 2- and 4-grams, and the
# normalised-text hash and position of each document.
_W, _C, _K, _I = "w", "c", "k", "i"


def _gram(n: int) -> str:
    return f"g{n}"


def _texts(source: PartSource, offset: int, length: int) -> pl.Series:
    frame = source.read([TEXT], offset, length)
    texts = frame[TEXT]
    if texts.dtype != pl.String:
        texts = texts.cast(pl.String)
    return texts.fill_null("") if texts.null_count() else texts


def _histogram(values: I64) -> tuple[I64, I64]:
    counts = pl.Series("v", values).value_counts(name="n")
    return counts["v"].to_numpy().astype(np.int64), counts["n"].to_numpy().astype(np.int64)


def _partition(values: U64, parts: int) -> I64:
    out: I64 = (fmix64(values) % np.uint64(parts)).astype(np.int64)
    return out


def _split(arrays: dict[str, Any], key: str, parts: int) -> list[dict[str, Any]]:
    """Rows of same-length arrays, split by the partition of `arrays[key]`."""
    part = _partition(arrays[key], parts)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    return [{k: v[order[bounds[p] : bounds[p + 1]]] for k, v in arrays.items()} for p in range(parts)]


@dataclass
class _Summary:
    """What one slice adds to the dataset's sums, counts and histograms."""

    documents: int
    bytes: int
    chars: int
    totals: dict[int, int]  # n -> n-gram occurrences (1: words)
    ttr_sum: float  # sum over non-empty documents of distinct words / words
    nonempty: int
    char_hist: tuple[I64, I64]
    word_hist: tuple[I64, I64]


def _map(source: PartSource, offset: int, length: int, start: int, parts: int) -> list[Any]:
    """One slice -> [summary, partition 0, ..., partition P-1] (a Ray task with P + 1 returns)."""
    texts = _texts(source, offset, length)
    n = texts.len()
    word_counts, distinct_words, doc_keys, unigrams = [], [], [], []
    grams: dict[int, list[U64]] = {size: [] for size in NGRAM_SIZES[1:]}
    totals = dict.fromkeys(NGRAM_SIZES, 0)
    for s in range(0, n, BLOCK_DOCS):
        block = _block_summary(texts.slice(s, BLOCK_DOCS))
        word_counts.append(block.word_counts)
        distinct_words.append(block.distinct_words)
        doc_keys.append(block.doc_keys)
        unigrams.append(block.unigrams)
        for size in NGRAM_SIZES:
            totals[size] += block.totals[size]
            if size > 1:
                grams[size].append(block.distinct[size])
    words = np.concatenate(word_counts) if word_counts else np.zeros(0, dtype=np.int64)
    distinct = np.concatenate(distinct_words) if distinct_words else np.zeros(0, dtype=np.int64)
    chars = texts.str.len_chars().to_numpy().astype(np.int64)
    nonempty = words > 0
    summary = _Summary(
        documents=n,
        bytes=int(texts.str.len_bytes().sum() or 0),
        chars=int(chars.sum()),
        totals=totals,
        ttr_sum=float(np.sum(distinct[nonempty] / words[nonempty])),
        nonempty=int(nonempty.sum()),
        char_hist=_histogram(chars),
        word_hist=_histogram(words),
    )
    if unigrams:
        counts = pl.concat(unigrams).group_by("w").agg(pl.col("c").sum())
        w = counts["w"].to_numpy().astype(np.uint64)
        c = counts["c"].to_numpy().astype(np.int64)
    else:
        w, c = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    pieces = [
        _split({_W: w, _C: c}, _W, parts),
        *(
            _split(
                {_gram(size): _unique(np.concatenate(grams[size])) if grams[size] else np.zeros(0, np.uint64)},
                _gram(size),
                parts,
            )
            for size in NGRAM_SIZES[1:]
        ),
        _split(
            {
                _K: np.concatenate(doc_keys) if doc_keys else np.zeros(0, dtype=np.uint64),
                _I: np.arange(start, start + n, dtype=np.int64),
            },
            _K,
            parts,
        ),
    ]
    return [summary, *({k: v for piece in pieces for k, v in piece[p].items()} for p in range(parts))]


def _reduce(total_words: int, *pieces: dict[str, Any]) -> dict[str, Any]:
    """Partition p of every slice -> its distinct counts, entropy share and exact-duplicate groups."""

    def cat(key: str, dtype: Any) -> Any:
        arrays = [piece[key] for piece in pieces]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    # Sorted, because polars' group_by returns groups in a thread-dependent order and a float sum
    # in another order differs in its last bit: the stored entropy must be the same on every run.
    counts = np.sort(
        pl.DataFrame({"w": cat(_W, np.uint64), "c": cat(_C, np.int64)})
        .group_by("w")
        .agg(pl.col("c").sum())["c"]
        .to_numpy()
        .astype(np.float64)
    )
    out: dict[str, Any] = {"distinct_1": int(counts.size)}
    if total_words and counts.size:
        p = counts / total_words
        out["entropy"] = float(-(p * np.log2(p)).sum())
    else:
        out["entropy"] = 0.0
    for size in NGRAM_SIZES[1:]:
        out[f"distinct_{size}"] = int(_unique(cat(_gram(size), np.uint64)).size)
    groups = (
        pl.DataFrame({"k": cat(_K, np.uint64), "i": cat(_I, np.int64)})
        .group_by("k")
        .agg(pl.len().alias("count"), pl.col("i").min().alias("first"))
    )
    top = groups.filter(pl.col("count") >= 2).sort(["count", "first"], descending=[True, False]).head(TOP_N)
    out["texts"] = groups.height
    out["singles"] = int((groups["count"] == 1).sum())
    out["largest"] = int(groups["count"].max() or 0)  # type: ignore[arg-type]
    out["top"] = list(zip(top["count"].to_list(), top["first"].to_list(), strict=True))
    return out


def _sample(source: PartSource, offset: int, length: int, start: int, step: int) -> tuple[int, str]:
    """The slice's documents at global positions divisible by `step`, joined by newlines, and how many."""
    texts = _texts(source, offset, length)
    first = (-start) % step
    if first >= texts.len():
        return 0, ""
    picked = texts.gather_every(step, offset=first)
    return picked.len(), "\n".join(picked.to_list())


def _compress(*samples: tuple[int, str]) -> float | None:
    raw = "\n".join(text for count, text in samples if count).encode("utf-8")
    return len(zlib.compress(raw, ZLIB_LEVEL)) / len(raw) if raw else None


def _median(hist: Sequence[tuple[I64, I64]], n: int) -> float:
    """np.median of the values whose histograms (value, count) are given, n values in all."""
    merged = (
        pl.DataFrame(
            {"v": np.concatenate([v for v, _ in hist]), "n": np.concatenate([c for _, c in hist])},
            schema={"v": pl.Int64, "n": pl.Int64},
        )
        .group_by("v")
        .agg(pl.col("n").sum())
        .sort("v")
    )
    values = merged["v"].to_numpy()
    cum = np.cumsum(merged["n"].to_numpy())

    def at(rank: int) -> float:
        return float(values[int(np.searchsorted(cum, rank, side="right"))])

    if n % 2:
        return at(n // 2)
    return (at(n // 2 - 1) + at(n // 2)) / 2


def _head(source: PartSource, offset: int) -> str:
    """The first PREVIEW_CHARS characters of one document."""
    text: str = _texts(source, offset, 1)[0]
    return text[:PREVIEW_CHARS]


def _preview(sources: Sequence[PartSource], positions: Sequence[int]) -> dict[int, str]:
    """The first PREVIEW_CHARS characters of the documents at these global positions, read by Ray tasks."""
    refs: dict[int, Any] = {}
    offset = 0
    for source in sources:
        for pos in positions:
            if offset <= pos < offset + source.rows:
                refs[pos] = _head_task.remote(source, pos - offset)
        offset += source.rows
    return dict(zip(refs, ray.get(list(refs.values())), strict=True))


def _text_bytes(sources: Sequence[PartSource]) -> int:
    """Uncompressed bytes of the text column in the parts' footers (sizes the partitions)."""
    total = 0
    for meta in part_metadata(sources):
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            total += sum(
                rg.column(j).total_uncompressed_size
                for j in range(rg.num_columns)
                if rg.column(j).path_in_schema == TEXT
            )
    return total


_map_task = ray.remote(_map)
_reduce_task = ray.remote(_reduce)
_sample_task = ray.remote(_sample)
_compress_task = ray.remote(_compress)
_head_task = ray.remote(_head)


def dataset_stats(
    ds: Dataset,
    *,
    tokens: int | None = None,
    near_dup: bool = True,
    minhash_threshold: float = 0.8,
    seed: int = 0,
    address: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> dict[str, Any]:
    """`stats.dataset_stats(ds.read(), ...)` computed on a Ray cluster (see the module docstring).

    Args:
        ds: The dataset version (in a folder every worker mounts, or on an object store).
        tokens: Token count under the run's tokenizer, when known; stored as given.
        near_dup: Also count MinHash near duplicates (`datadiet.curate.dedupe.ray.find_members`).
        minhash_threshold: Jaccard threshold of the near-duplicate detection, in (0, 1).
        seed: MinHash permutation seed.
        address: The Ray cluster (see `datadiet.engine.ray.connect`).
        tracker: Progress.

    Returns:
        The local engine's dict, key for key.
    """
    check_threshold(minhash_threshold)
    n = ds.rows
    if n == 0:  # nothing to distribute; Ray is not started
        return local.dataset_stats(
            ds.read(), tokens=tokens, near_dup=near_dup, minhash_threshold=minhash_threshold, seed=seed
        )
    cfg = _config(minhash_threshold, seed)
    cpus = connect(address)
    sources = ds.part_sources()  # handles read where the store keeps the parts: nothing is downloaded here
    slices = plan_slices(sources, 2 * cpus)
    parts = max(PARTS_PER_CPU * cpus, math.ceil(_text_bytes(sources) / TEXT_BYTES_PER_PART))
    done, partitions = _map_slices(slices, parts, n, tracker)
    members = None
    if near_dup:
        # Before the merge tasks, not beside them: Ray Data's operators in find_members wait for
        # free CPUs rather than share them.
        bands, rows = cfg.bands_rows()
        members, _ = find_members([ds], cfg, bands, rows, cpus=cpus, timer=Timer(), tracker=tracker)
    total_words = sum(s.totals[1] for s in done)
    total_bytes = sum(s.bytes for s in done)
    with tracker.task("Merging (ray)", total=None):
        reduced = [_reduce_task.remote(total_words, *(blocks[p] for blocks in partitions)) for p in range(parts)]
        compression = _compression_task(slices, total_bytes)
        merged = ray.get(reduced)
        compression_ratio = ray.get(compression) if compression is not None else None

    out: dict[str, Any] = {DOCUMENTS: n, BYTES: total_bytes, TOKENS: tokens}
    out.update(_diversity(done, merged, n, total_words))
    out[COMPRESSION_RATIO] = compression_ratio
    out[EXACT_DUPLICATE_SHARE] = float((n - sum(r["texts"] for r in merged)) / n)
    top = sorted((pair for r in merged for pair in r["top"]), key=lambda cf: (-cf[0], cf[1]))[:TOP_N]
    previews = _preview(sources, [first for _, first in top])
    out[TOP_REPEATED] = [{"preview": previews[first], "count": int(count)} for count, first in top]
    out.update(_cluster_shares(members, merged, n, f"minhash threshold={minhash_threshold} seed={seed}"))
    return {key: out.get(key) for key in (*NUMERIC_STATS, NEAR_DUPLICATE_METHOD, TOP_REPEATED)}


def _map_slices(
    slices: Sequence[Slice], parts: int, n: int, tracker: Tracker
) -> tuple[list[_Summary], list[list[Any]]]:
    """Stage 1: a map task per slice; its summary (gathered here), its PARTS hash partitions (left in the cluster)."""
    summaries: list[Any] = []
    partitions: list[list[Any]] = []
    with tracker.task("Statistics (ray)", total=n) as task:
        for s in slices:
            refs: Any = _map_task.options(num_returns=parts + 1).remote(s.source, s.offset, s.length, s.start, parts)
            partitions.append(list(refs[1:]))
            summaries.append(refs[0])
        done: list[_Summary] = []
        for ref in summaries:
            summary = ray.get(ref)
            done.append(summary)
            task.advance(summary.documents)
    return done, partitions


def _compression_task(slices: Sequence[Slice], total_bytes: int) -> Any:
    """The compression ratio's task over every k-th document (every one up to the sample size), or None."""
    if not total_bytes:
        return None
    sample_bytes = local.COMPRESSION_SAMPLE_BYTES  # the driver's, so a worker's settings cannot change it
    step = 1 if total_bytes <= sample_bytes else math.ceil(total_bytes / sample_bytes)
    return _compress_task.remote(*(_sample_task.remote(s.source, s.offset, s.length, s.start, step) for s in slices))


def _diversity(done: Sequence[_Summary], merged: Sequence[dict[str, Any]], n: int, total_words: int) -> dict[str, Any]:
    """Entropy, distinct-n ratios, type/token ratio and document lengths from the slices and partitions."""
    out: dict[str, Any] = {}
    distinct_1 = sum(r["distinct_1"] for r in merged)
    if total_words:
        out[UNIGRAM_ENTROPY_BITS] = math.fsum(r["entropy"] for r in merged)
        out[DISTINCT_1GRAM_RATIO] = distinct_1 / total_words
    else:
        out[UNIGRAM_ENTROPY_BITS] = None
        out[DISTINCT_1GRAM_RATIO] = None
    for size, key in ((2, DISTINCT_2GRAM_RATIO), (4, DISTINCT_4GRAM_RATIO)):
        occurrences = sum(s.totals[size] for s in done)
        out[key] = sum(r[f"distinct_{size}"] for r in merged) / occurrences if occurrences else None
    nonempty = sum(s.nonempty for s in done)
    out[TYPE_TOKEN_RATIO] = math.fsum(s.ttr_sum for s in done) / nonempty if nonempty else None
    out[MEAN_CHARS] = float(sum(s.chars for s in done)) / n
    out[MEDIAN_CHARS] = _median([s.char_hist for s in done], n)
    out[MEAN_WORDS] = float(total_words) / n
    out[MEDIAN_WORDS] = _median([s.word_hist for s in done], n)
    return out


def _cluster_shares(
    members: pl.DataFrame | None, merged: Sequence[dict[str, Any]], n: int, method: str
) -> dict[str, Any]:
    """Near-duplicate shares from the members of clusters; without them, the exact groups' shares."""
    if members is None:
        return {
            NEAR_DUPLICATE_METHOD: None,
            NEAR_DUPLICATE_SHARE: None,
            LARGEST_CLUSTER_SHARE: max(r["largest"] for r in merged) / n,
            UNIQUE_DOCUMENT_SHARE: sum(r["singles"] for r in merged) / n,
        }
    sizes = members.group_by(CLUSTER_ID).len()["len"]
    clustered, clusters = members.height, sizes.len()
    return {
        NEAR_DUPLICATE_METHOD: method,
        NEAR_DUPLICATE_SHARE: (clustered - clusters) / n,
        LARGEST_CLUSTER_SHARE: int(sizes.max() or 1) / n,  # type: ignore[arg-type]
        UNIQUE_DOCUMENT_SHARE: (n - clustered) / n,
    }
