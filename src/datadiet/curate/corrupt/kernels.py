"""Vectorised corruptions of UTF-8 text: typos, words shuffled within sentences, truncation.

Each kernel works on a chunk of documents held as one byte buffer and its offsets (`Texts`, taken
from the Arrow string column without copying) and returns the new buffer and offsets, so a chunk
of 10,000 stories is a handful of numpy passes instead of 10,000 Python calls.

Randomness comes in blocks of BLOCK_ROWS consecutive rows of the whole dataset: block b draws
from its own numpy stream, `SeedSequence([seed, tag, b])`, in a fixed order (typos: the chosen
byte positions of the block, then their operations, then their letters; shuffle: one draw per
sentence, then one per word of a chosen sentence). A chunk is a whole number of blocks, so the
result depends only on the seed and the rows, never on how they were split into parts or chunks,
and a block gives the same bytes in this process, in a worker or in a Ray task. Per-document
choices (where `truncate` cuts) are `splitmix64` of the row number, which needs no block.

Only ASCII bytes are ever inspected as letters, whitespace or punctuation, and edits only move or
replace whole ASCII letters or whole byte runs between ASCII whitespace, so valid UTF-8 stays valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_LOW32 = np.uint64(0xFFFFFFFF)
# 2**53: uniforms in [0, 1) from the top 53 bits of a hash, as numpy's own doubles are made.
_TO_UNIT = 1.0 / float(1 << 53)

# Rows per block of randomness. Each block costs a SeedSequence and a few numpy calls (~40 µs):
# 256 rows keep that under 0.2 s for 2.1M documents while a block of the longest documents the
# store takes stays a bounded chunk. Changing it changes the rows: bump SCHEME in op.py with it.
BLOCK_ROWS = 256
# Seed tags: one per use of the seed, so no two uses share a stream.
TAG_TYPOS, TAG_SHUFFLE, TAG_TRUNCATE, TAG_MIX = 1, 2, 3, 4

# Typo operations, chosen uniformly (2 bits of the hash) for every letter that gets a typo.
SUB, DELETE, INSERT, SWAP = 0, 1, 2, 3

_TERMINAL = np.zeros(256, dtype=bool)
_TERMINAL[[ord("."), ord("!"), ord("?")]] = True
_CLOSER = np.zeros(256, dtype=bool)
_CLOSER[[ord('"'), ord("'"), ord(")")]] = True


@dataclass(frozen=True)
class Texts:
    """A chunk of documents as UTF-8 bytes back to back.

    Attributes:
        data: (bytes,) uint8, every document's bytes in row order.
        offsets: (n+1,) int64 byte offset of each document in `data`, from 0.
        rows: (n,) int64 row number of each document in the whole dataset (the key of its randomness).
    """

    data: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray

    @property
    def n(self) -> int:
        return int(self.rows.size)


def texts_of(series: pl.Series, rows: int | np.ndarray) -> Texts:
    """The strings of SERIES (nulls read as empty) as a `Texts`: their dataset rows are ROWS, or count from it."""
    arrow = series.fill_null("").to_arrow()
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    arrow = arrow.cast(pa.large_string())
    offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    buf = arrow.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
    data = data[offsets[0] : offsets[-1]]
    if isinstance(rows, int):
        rows = np.arange(rows, rows + len(arrow), dtype=np.int64)
    return Texts(data=data, offsets=(offsets - offsets[0]).astype(np.int64), rows=rows.astype(np.int64))


def to_series(name: str, data: np.ndarray, offsets: np.ndarray) -> pl.Series:
    """A polars string column from UTF-8 bytes and (n+1,) int64 offsets."""
    arr = pa.LargeStringArray.from_buffers(
        offsets.size - 1, pa.py_buffer(np.ascontiguousarray(offsets, dtype=np.int64)), pa.py_buffer(data.tobytes())
    )
    series = pl.Series(name, arr)
    return series.cast(pl.String)


def salts(seed: int, tag: int, count: int) -> list[int]:
    """COUNT independent 64-bit salts for one use (TAG) of the seed: SeedSequence mixes them well."""
    state = np.random.SeedSequence([seed, tag]).generate_state(count, dtype=np.uint64)
    return [int(s) for s in state]


def hash64(keys: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of KEYS xor SALT: a bijection of uint64 whose outputs pass as independent uniforms."""
    x = keys.astype(np.uint64) ^ np.uint64(salt)
    x = x + _GAMMA
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def unit(h: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) from hashes (their top 53 bits)."""
    out: np.ndarray = (h >> np.uint64(11)).astype(np.float64) * _TO_UNIT
    return out


def block_rng(seed: int, tag: int, block: int) -> np.random.Generator:
    """The stream of one block of BLOCK_ROWS rows for one use (TAG) of the seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, tag, block]))


def block_bounds(t: Texts) -> list[tuple[int, int, int]]:
    """(block number, first document, end document) of each block in the chunk, in order.

    Raises:
        ValueError: the chunk does not start at a block boundary (an internal error of the caller).
    """
    if t.n == 0:
        return []
    first = int(t.rows[0])
    if first % BLOCK_ROWS:
        raise ValueError(f"a chunk must start at a multiple of {BLOCK_ROWS} rows, not at row {first}")
    starts = range(0, t.n, BLOCK_ROWS)
    return [((first + lo) // BLOCK_ROWS, lo, min(lo + BLOCK_ROWS, t.n)) for lo in starts]


def bernoulli_positions(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Ascending positions in range(N), each present independently with probability P.

    Drawn as geometric gaps, so the cost is that of the ~P·N positions, not of N coin flips.
    """
    if n == 0 or p == 0.0:
        return np.zeros(0, dtype=np.int64)
    if p == 1.0:
        return np.arange(n, dtype=np.int64)
    expected = n * p
    parts, reach = [], -1
    while reach < n - 1:
        gaps = rng.geometric(p, int(expected + 8 * math.sqrt(expected) + 16))
        pos = reach + np.cumsum(gaps)
        parts.append(pos)
        reach = int(pos[-1])
    out = np.concatenate(parts)
    result: np.ndarray = out[out < n]
    return result


def ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The positions of the ranges [starts[i], starts[i] + lens[i]) back to back.

    int32 when every position fits (a chunk of a few MiB always does): half the memory traffic of
    int64 in the two per-byte passes (repeat, add) that dominate the shuffle.
    """
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(starts.max()) + int(lens.max()) if starts.size else 0
    dtype = np.int32 if max(total, top) < 2**31 else np.int64
    lens = lens.astype(dtype)
    out_start = np.cumsum(lens, dtype=dtype) - lens
    out: np.ndarray = np.repeat(starts.astype(dtype) - out_start, lens) + np.arange(total, dtype=dtype)
    return out


def gather_ranges(data: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """DATA's byte ranges [starts[i], starts[i] + lens[i]) back to back, in one gather."""
    out: np.ndarray = data[ranges(starts, lens)]
    return out


def per_doc(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n,) how many bytes of each document MASK marks.

    One reduceat over the mask's bytes into uint32 (a document is at most 16 MiB): measured 5x
    faster than summing the bools into int64 and 15x faster than a running sum.
    """
    lens = np.diff(offsets)
    out = np.zeros(lens.size, dtype=np.int64)
    full = lens > 0
    if full.any():
        out[full] = np.add.reduceat(mask.view(np.uint8), offsets[:-1][full], dtype=np.uint32)
    return out


def letters(data: np.ndarray) -> np.ndarray:
    """Whether each byte is an ASCII letter: (b | 0x20) − 'a' < 26 in wrapping uint8 (no table lookup)."""
    out: np.ndarray = ((data | np.uint8(0x20)) - np.uint8(ord("a"))) < 26
    return out


def spaces(data: np.ndarray) -> np.ndarray:
    """Whether each byte is ASCII whitespace (tab, line feed, vertical tab, form feed, return, space)."""
    out: np.ndarray = (data == 0x20) | ((data - np.uint8(0x09)) < 5)
    return out


# -- typos ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edited:
    """A kernel's result: the new bytes and offsets, and per document how many units changed out of how many."""

    data: np.ndarray
    offsets: np.ndarray
    changed: np.ndarray  # (n,) int64 units changed (typos, moved words, removed characters)
    units: np.ndarray  # (n,) int64 units the rate applies to (letters, words, characters)


def _typo_draws(t: Texts, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte positions chosen with probability RATE, block by block, and an operation and a letter for each."""
    sel, ops, picks = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for block, lo, hi in block_bounds(t):
        rng = block_rng(seed, TAG_TYPOS, block)
        start, end = int(t.offsets[lo]), int(t.offsets[hi])
        pos = bernoulli_positions(rng, end - start, rate)
        sel.append(pos + start)
        ops.append(rng.integers(0, 4, pos.size))
        picks.append(rng.integers(0, 26 * 25, pos.size))
    return np.concatenate(sel), np.concatenate(ops), np.concatenate(picks)


def typos(t: Texts, rate: float, seed: int) -> Edited:
    """Give each ASCII letter a typo with probability RATE.

    A typo is one of, uniformly: substitution by another letter of the same case, deletion,
    insertion of a random letter of the same case before it, or a swap with the next character
    when that is a different ASCII letter of the same document without a typo of its own
    (otherwise a substitution). Non-letters (digits, punctuation, non-ASCII text) are never touched:
    every byte is chosen with probability RATE and the chosen non-letters are dropped, which
    leaves each letter chosen with probability RATE.
    """
    d = t.data
    sel, op, pick = _typo_draws(t, rate, seed)
    keep = letters(d[sel])
    sel, op, pick = sel[keep], op[keep], pick[keep]
    # sel is ascending: counting it per document (n binary searches) beats a search per typo.
    per = np.diff(np.searchsorted(sel, t.offsets))
    doc = np.repeat(np.arange(t.n, dtype=np.int64), per)
    chosen = np.zeros(d.size, dtype=bool)
    chosen[sel] = True
    nxt = np.minimum(sel + 1, max(d.size - 1, 0))
    swappable = (sel + 1 < t.offsets[doc + 1]) & letters(d[nxt]) & ~chosen[nxt] & (d[nxt] != d[sel])
    op[(op == SWAP) & ~swappable] = SUB
    case = d[sel] & np.uint8(0x20)  # 0x20 for lower case, 0 for upper
    out = d.copy()
    sub = op == SUB
    letter = (d[sel[sub]] | np.uint8(0x20)).astype(np.int64) - ord("a")
    out[sel[sub]] = ((letter + 1 + pick[sub] % 25) % 26 + ord("A")).astype(np.uint8) | case[sub]
    sw = sel[op == SWAP]
    out[sw], out[sw + 1] = d[sw + 1], d[sw]
    dels, ins = sel[op == DELETE], sel[op == INSERT]
    new_letters = ((pick[op == INSERT] % 26) + ord("A")).astype(np.uint8) | case[op == INSERT]
    out = np.delete(out, dels)
    out = np.insert(out, ins - np.searchsorted(dels, ins), new_letters)
    offsets = t.offsets - np.searchsorted(dels, t.offsets) + np.searchsorted(ins, t.offsets)
    return Edited(
        data=out,
        offsets=offsets.astype(np.int64),
        changed=per.astype(np.int64),
        units=per_doc(letters(d), t.offsets),
    )


# -- words and sentences -------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The words of a chunk (maximal runs of non-ASCII-whitespace bytes), in order."""

    starts: np.ndarray  # (W,) byte offset of each word
    ends: np.ndarray  # (W,) byte offset just past it
    doc: np.ndarray  # (W,) document (chunk position) of each word
    first: np.ndarray  # (n+1,) first word of each document, and W at the end


def words(t: Texts) -> Words:
    """Split every document of T into words at ASCII whitespace."""
    d = t.data
    word = ~spaces(d)
    lens = np.diff(t.offsets)
    opens = t.offsets[:-1][lens > 0]  # first byte of each non-empty document
    closes = t.offsets[1:][lens > 0] - 1  # its last byte
    start = word.copy()
    start[1:] &= ~word[:-1]
    start[opens] = word[opens]  # a document's first byte follows no word of its own
    end = word.copy()
    end[:-1] &= ~word[1:]
    end[closes] = word[closes]
    counts = per_doc(start, t.offsets)
    return Words(
        starts=np.flatnonzero(start),
        ends=np.flatnonzero(end) + 1,
        doc=np.repeat(np.arange(t.n, dtype=np.int64), counts),
        first=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


def sentence_ends(t: Texts, w: Words) -> np.ndarray:
    """(W,) whether each word ends a sentence.

    A sentence ends at a word ending in `.`, `!` or `?` (optionally followed by a closing quote or
    bracket, ASCII or the curly ’ ”), at a word followed by a line break, and at a document's end.
    """
    d = t.data
    if w.starts.size == 0:
        return np.zeros(0, dtype=bool)
    last = d[w.ends - 1]
    before = d[np.maximum(w.ends - 2, 0)]
    long = w.ends - w.starts
    end = _TERMINAL[last] | (_CLOSER[last] & (long >= 2) & _TERMINAL[before])
    # ’ is E2 80 99 and ” is E2 80 9D in UTF-8.
    curly = (
        (long >= 4)
        & ((last == 0x99) | (last == 0x9D))
        & (before == 0x80)
        & (d[np.maximum(w.ends - 3, 0)] == 0xE2)
        & _TERMINAL[d[np.maximum(w.ends - 4, 0)]]
    )
    doc_last = np.ones(w.starts.size, dtype=bool)
    doc_last[:-1] = w.doc[1:] != w.doc[:-1]
    # A line break lies in the whitespace after the last word that ends at or before it (line
    # breaks are few, so this is a search per line break, not a pass per word).
    breaks = np.flatnonzero(d == 0x0A)
    after = np.searchsorted(w.ends, breaks, side="right") - 1
    broken = np.zeros(w.starts.size, dtype=bool)
    broken[after[after >= 0]] = True
    out: np.ndarray = end | curly | broken | doc_last
    return out


def _shuffle_order(t: Texts, w: Words, heads: np.ndarray, sizes: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """(W,) the word that lands in each word slot: its own, or a random one of its sentence's when chosen.

    Block by block: one uniform per sentence (chosen when below RATE), then one per word of the
    block's chosen sentences, in order; the chosen words are sorted by (sentence, uniform), which
    only ever permutes words within a sentence.
    """
    n_words = w.starts.size
    head_doc = w.doc[heads]
    picked, keys = [], []
    for block, lo, hi in block_bounds(t):
        a, b = np.searchsorted(head_doc, [lo, hi])
        rng = block_rng(seed, TAG_SHUFFLE, block)
        chosen = np.flatnonzero((rng.random(b - a) < rate) & (sizes[a:b] >= 2)) + a
        picked.append(chosen)
        keys.append(rng.random(int(sizes[chosen].sum())))
    perm = np.arange(n_words, dtype=np.int64)
    sent = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    if sent.size:
        slots = ranges(heads[sent], sizes[sent])
        # Sentence index + a uniform in [0, 1): sorts by sentence first (indices < 2^31 keep ~20 bits
        # of the uniform), and a stable sort keeps ties in place.
        key = np.repeat(sent.astype(np.float64), sizes[sent]) + np.concatenate(keys)
        perm[slots] = slots[np.argsort(key, kind="stable")]
    return perm


def shuffle(t: Texts, rate: float, seed: int) -> Edited:
    """Put the words of each sentence in a random order, for each sentence with probability RATE.

    The whitespace between words stays where it was (paragraphs survive) and so do the documents'
    lengths; a word keeps its punctuation. A shuffled order may by chance be the original one, so
    `changed` counts the words that actually moved.
    """
    w = words(t)
    n_words = w.starts.size
    units = np.diff(w.first).astype(np.int64)
    if n_words == 0:
        return Edited(t.data, t.offsets, np.zeros(t.n, dtype=np.int64), units)
    is_end = sentence_ends(t, w)
    heads = np.flatnonzero(np.concatenate([[True], is_end[:-1]]))
    sizes = np.diff(np.append(heads, n_words))
    perm = _shuffle_order(t, w, heads, sizes, rate, seed)
    moved = np.flatnonzero(perm != np.arange(n_words))
    out = t.data.copy()
    if moved.size:
        # Rewrite only the spans of sentences with a moved word: slot j of such a sentence gets word
        # perm[j], then the whitespace that followed slot j's original word (none after the last).
        hit = np.zeros(heads.size, dtype=bool)
        hit[np.searchsorted(heads, moved, side="right") - 1] = True
        touched = np.flatnonzero(hit)
        slots = ranges(heads[touched], sizes[touched])
        last = np.zeros(n_words, dtype=bool)
        last[heads[1:] - 1] = True
        last[-1] = True
        seg_start = np.empty(2 * slots.size, dtype=np.int64)
        seg_len = np.empty_like(seg_start)
        src = perm[slots]
        seg_start[0::2], seg_len[0::2] = w.starts[src], w.ends[src] - w.starts[src]
        gap_end = np.append(w.starts[1:], 0)
        seg_start[1::2] = w.ends[slots]
        seg_len[1::2] = np.where(last[slots], 0, gap_end[slots] - w.ends[slots])
        span_start = w.starts[heads[touched]]
        span_len = w.ends[heads[touched] + sizes[touched] - 1] - span_start
        out[ranges(span_start, span_len)] = t.data[ranges(seg_start, seg_len)]
    return Edited(
        data=out,
        offsets=t.offsets,
        changed=np.bincount(w.doc[moved], minlength=t.n).astype(np.int64),
        units=units,
    )


def truncate(t: Texts, salt: int) -> Edited:
    """Cut each document after a random word: it keeps its first k of W words, k uniform in 1..W−1.

    T holds only the documents chosen to be cut (the caller gathers them, so the other ~1 − R of
    the text costs nothing). Documents of fewer than two words cannot be cut and are left as they
    are. `changed` and `units` count characters (removed, and in the original), not bytes.
    """
    w = words(t)
    counts = np.diff(w.first)
    cut = np.flatnonzero(counts >= 2)
    u = unit(hash64(t.rows[cut].astype(np.uint64), salt))
    k = np.clip(np.floor(u * counts[cut]).astype(np.int64), 1, counts[cut] - 1)
    # Mark the removed tails with +1 at their start and -1 at their end: one int8 running sum.
    delta = np.zeros(t.data.size + 1, dtype=np.int8)
    delta[w.ends[w.first[cut] + k - 1]] = 1
    delta[t.offsets[cut + 1]] = -1
    removed = np.cumsum(delta[:-1], dtype=np.int8).view(bool)
    lead = (t.data & 0xC0) != 0x80  # the first byte of each UTF-8 character
    new_offsets = t.offsets - np.concatenate([[0], np.cumsum(per_doc(removed, t.offsets))])
    return Edited(
        data=t.data[~removed],
        offsets=new_offsets.astype(np.int64),
        changed=per_doc(removed & lead, t.offsets),
        units=per_doc(lead, t.offsets),
    )
