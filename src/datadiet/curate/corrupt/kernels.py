"""Vectorised corruptions of UTF-8 text: typos, words shuffled within sentences, truncation.

Each kernel works on a chunk of documents held as one byte buffer and its offsets (`Texts`, taken
from the Arrow string column without copying) and returns the new buffer and offsets, so a chunk
of 10,000 stories is a handful of numpy passes instead of 10,000 Python calls. Edits that move or
drop bytes (typos' deletions and insertions, shuffled words) never build an index per byte: the
buffer is cut into pieces at the edits and Arrow's `take` concatenates the pieces in their new
order, one memcpy per piece (`concat_pieces`).

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
# numpy draws geometric variates by inversion below this p, by search from it (`random_geometric`).
_INVERSION_BELOW = 0.333333333333333333333333

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
# Last bytes of a word that may end a sentence: a terminal, a closer, or the last byte of ’ (99) or ” (9D).
_MAY_END = _TERMINAL | _CLOSER
_MAY_END[[0x99, 0x9D]] = True


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
    """A polars string column from UTF-8 bytes and (n+1,) int64 offsets (the bytes are not copied here)."""
    arr = pa.LargeStringArray.from_buffers(
        offsets.size - 1,
        pa.py_buffer(np.ascontiguousarray(offsets, dtype=np.int64)),
        pa.py_buffer(np.ascontiguousarray(data, dtype=np.uint8)),
    )
    series = pl.Series(name, arr)
    return series.cast(pl.String)


def concat_pieces(data: np.ndarray, bounds: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The pieces [bounds[i], bounds[i+1]) of DATA in the order ORDER (piece numbers), back to back.

    One Arrow `take` over the pieces as a binary array: a memcpy per piece, where a numpy gather
    would need an index per byte; measured ~12 ns a piece, 3-5x less than the per-byte index for
    the 5-20 byte pieces (words, runs between typos) the kernels cut.
    """
    if order.size == 0:
        return np.zeros(0, dtype=np.uint8)
    pieces = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(),
        bounds.size - 1,
        [None, pa.py_buffer(np.ascontiguousarray(bounds, dtype=np.int64)), pa.py_buffer(data)],
    )
    out = pieces.take(pa.array(order))
    total = int(np.frombuffer(out.buffers()[1], dtype=np.int64)[out.offset + len(out)])
    buf = out.buffers()[2]
    return np.frombuffer(buf, dtype=np.uint8, count=total) if total else np.zeros(0, dtype=np.uint8)


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


def geometric(rng: np.random.Generator, p: float, size: int) -> np.ndarray:
    """`rng.geometric(p, size)`: the same values from the same draws, faster for p < 1/3.

    Below 1/3 numpy draws each variate by inversion, ceil(−E / log1p(−p)) with E one standard
    exponential of the stream (`random_geometric_inversion`, log1p from the C library, as
    `math.log1p`); written out over the array it takes ~60% of the time (870k draws: 6.4 vs
    10.2 ms). Values past 2^62 are capped there (numpy caps at 2^63 − 1): every caller treats a
    gap that large as "past the end".
    """
    if p >= _INVERSION_BELOW:
        return rng.geometric(p, size)
    z = np.ceil(rng.standard_exponential(size) / -math.log1p(-p))
    out: np.ndarray = np.minimum(z, float(1 << 62)).astype(np.int64)
    return out


def bernoulli_positions(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Ascending positions in range(N), each present independently with probability P.

    Drawn as geometric gaps, so the cost is that of the ~P·N positions, not of N coin flips.
    """
    if n == 0 or p == 0.0:
        return np.zeros(0, dtype=np.int64)
    if p == 1.0:
        return np.arange(n, dtype=np.int64)
    expected = n * p
    size = int(expected + 8 * math.sqrt(expected) + 16)
    parts, reach = [], -1
    while reach < n - 1:
        gaps = geometric(rng, p, size)
        # A gap past the end ends the draw; capping it at n + 1 keeps every position < n as it
        # was and the running sum inside int64 for the tiniest p.
        np.minimum(gaps, n + 1, out=gaps)
        pos = np.cumsum(gaps)
        pos += reach
        parts.append(pos)
        reach = int(pos[-1])
    out = parts[0] if len(parts) == 1 else np.concatenate(parts)
    result: np.ndarray = out[: int(np.searchsorted(out, n))]
    return result


def ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The positions of the ranges [starts[i], starts[i] + lens[i]) back to back.

    int32 when every position fits (a chunk of a few MiB always does): half the memory traffic of int64.
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
    folded = data | np.uint8(0x20)
    folded -= np.uint8(ord("a"))
    out: np.ndarray = folded < 26
    return out


def spaces(data: np.ndarray) -> np.ndarray:
    """Whether each byte is ASCII whitespace (tab, line feed, vertical tab, form feed, return, space)."""
    shifted = data - np.uint8(0x09)
    out: np.ndarray = shifted < 5
    out |= data == 0x20
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
    """The letters that get a typo, block by block, and an operation and a letter number for each.

    Every byte position is drawn with probability RATE, then its operation and letter, and the
    chosen bytes that are not ASCII letters are dropped (in the block, before the draws are joined).
    """
    d = t.data
    sel, ops, picks = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for block, lo, hi in block_bounds(t):
        rng = block_rng(seed, TAG_TYPOS, block)
        start, end = int(t.offsets[lo]), int(t.offsets[hi])
        pos = bernoulli_positions(rng, end - start, rate)
        op = rng.integers(0, 4, pos.size)
        pick = rng.integers(0, 26 * 25, pos.size)
        pos += start
        keep = np.flatnonzero(letters(d[pos]))
        sel.append(pos.take(keep))
        ops.append(op.take(keep))
        picks.append(pick.take(keep))
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
    d, n = t.data, t.data.size
    sel, op, pick = _typo_draws(t, rate, seed)
    # sel is ascending: counting it per document (n binary searches) beats a search per typo.
    per = np.diff(np.searchsorted(sel, t.offsets)).astype(np.int64)
    units = per_doc(letters(d), t.offsets)
    if sel.size == 0:
        return Edited(data=d, offsets=t.offsets, changed=per, units=units)
    cur, nxt = d[sel], sel + 1
    after = d[np.minimum(nxt, n - 1)]
    free = np.ones(sel.size, dtype=bool)  # the next byte has no typo of its own
    free[:-1] = sel[1:] != nxt[:-1]
    swappable = (nxt < np.repeat(t.offsets[1:], per)) & letters(after) & free & (after != cur)
    op = np.where((op == SWAP) & ~swappable, SUB, op)
    case = cur & np.uint8(0x20)  # 0x20 for lower case, 0 for upper
    # Index arrays, not boolean masks: numpy compresses an irregular mask ~8x slower than it
    # finds the indices once and takes with them (210k draws: 2.7 vs 0.35 ms for three arrays).
    i_sub, i_ins, i_sw = (np.flatnonzero(op == k) for k in (SUB, INSERT, SWAP))
    # The edited bytes, then the inserted letters after them (pieces of one buffer for `concat_pieces`).
    buf = np.empty(n + i_ins.size, dtype=np.uint8)
    buf[:n] = d
    buf[n:] = ((pick.take(i_ins) % 26) + ord("A")).astype(np.uint8) | case.take(i_ins)
    letter = (cur.take(i_sub) | np.uint8(0x20)).astype(np.int64) - ord("a")
    buf[sel.take(i_sub)] = ((letter + 1 + pick.take(i_sub) % 25) % 26 + ord("A")).astype(np.uint8) | case.take(i_sub)
    buf[sel.take(i_sw)], buf[nxt.take(i_sw)] = after.take(i_sw), cur.take(i_sw)
    data, offsets = _insert_and_delete(buf, n, sel, op, t.offsets)
    return Edited(data=data, offsets=offsets, changed=per, units=units)


def _insert_and_delete(
    buf: np.ndarray, n: int, sel: np.ndarray, op: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """BUF[:N] with the bytes at SEL where OP is DELETE dropped and BUF[N:] inserted, in order, where it is INSERT.

    Cut at every edit e (sorted): the run before it, the piece [e, e) or [e, e + 1) (the
    deleted byte, never taken), the run after it, ...; the k-th inserted letter is piece
    2E + 1 + k (buf[n + k]), taken just before the run that starts at its position.

    Returns:
        The new bytes and the new document offsets (OFFSETS moved by the edits before them).
    """
    edit = np.flatnonzero((op == DELETE) | (op == INSERT))
    e, e_ins = sel.take(edit), op.take(edit) == INSERT
    n_edits, n_ins = e.size, buf.size - n
    bounds = np.empty(2 * n_edits + 2 + n_ins, dtype=np.int64)
    bounds[0] = 0
    bounds[1 : 2 * n_edits + 1 : 2] = e
    bounds[2 : 2 * n_edits + 2 : 2] = e + ~e_ins  # + 1 past a deleted byte
    bounds[2 * n_edits + 1 :] = np.arange(n, n + n_ins + 1, dtype=np.int64)
    j = np.arange(n_edits, dtype=np.int64)
    slot = j + np.cumsum(e_ins)  # output slot of each edit's inserted letter; its run comes next
    order = np.empty(1 + n_edits + n_ins, dtype=np.int64)
    order[0] = 0
    order[slot + 1] = 2 * j + 2
    order[slot.take(np.flatnonzero(e_ins))] = 2 * n_edits + 1 + np.arange(n_ins, dtype=np.int64)
    shift = np.concatenate([[0], np.cumsum(np.where(e_ins, 1, -1))])
    return concat_pieces(buf, bounds, order), (offsets + shift[np.searchsorted(e, offsets)]).astype(np.int64)


# -- words and sentences -------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The words of a chunk (maximal runs of non-ASCII-whitespace bytes inside one document), in order."""

    starts: np.ndarray  # (W,) byte offset of each word
    ends: np.ndarray  # (W,) byte offset just past it
    first: np.ndarray  # (n+1,) first word of each document, and W at the end


def words(t: Texts) -> Words:
    """Split every document of T into words at ASCII whitespace.

    Word edges are the places where whitespace turns into text or back (one comparison of
    neighbours, one scan for the changes), plus each document boundary that falls inside a run
    of text: a word ends there and the next document's begins.
    """
    d, n = t.data, t.data.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Words(starts=empty, ends=empty, first=np.zeros(t.n + 1, dtype=np.int64))
    space = spaces(d)
    edges = np.flatnonzero(space[1:] != space[:-1]) + 1
    inner = t.offsets[1:-1]
    inner = np.unique(inner[(inner > 0) & (inner < n)])
    split = inner[~space[inner - 1] & ~space[inner]]
    if split.size:
        edges = np.insert(edges, np.repeat(np.searchsorted(edges, split), 2), np.repeat(split, 2))
    # Before the first byte the text is "whitespace", so the edges alternate start, end, start, ...
    parts = [np.zeros(1, dtype=np.int64)] if not space[0] else []
    parts.append(edges)
    if not space[-1]:
        parts.append(np.full(1, n, dtype=np.int64))
    edges = np.concatenate(parts) if len(parts) > 1 else edges
    starts = np.ascontiguousarray(edges[0::2])
    return Words(starts=starts, ends=np.ascontiguousarray(edges[1::2]), first=np.searchsorted(starts, t.offsets))


def sentence_heads(t: Texts, w: Words) -> np.ndarray:
    """(S,) the first word of each sentence, ascending (0 first when there are words).

    A sentence ends at a word ending in `.`, `!` or `?` (optionally followed by a closing quote or
    bracket, ASCII or the curly ’ ”), at a word followed by a line break, and at a document's end.
    Only the words whose last byte may end a sentence (`_MAY_END`) are looked at closely.
    """
    d = t.data
    n_words = w.starts.size
    if n_words == 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.flatnonzero(_MAY_END[d[w.ends - 1]])
    ends = w.ends[cand]
    last, before = d[ends - 1], d[np.maximum(ends - 2, 0)]
    long = ends - w.starts[cand]
    end = _TERMINAL[last] | (_CLOSER[last] & (long >= 2) & _TERMINAL[before])
    # ’ is E2 80 99 and ” is E2 80 9D in UTF-8.
    end |= (
        (long >= 4)
        & ((last == 0x99) | (last == 0x9D))
        & (before == 0x80)
        & (d[np.maximum(ends - 3, 0)] == 0xE2)
        & _TERMINAL[d[np.maximum(ends - 4, 0)]]
    )
    is_end = np.zeros(n_words, dtype=bool)
    is_end[cand.take(np.flatnonzero(end))] = True
    f = w.first
    is_end[f[1:][f[1:] > f[:-1]] - 1] = True  # each document's last word
    # A line break lies in the whitespace after the last word that ends at or before it (line
    # breaks are few, so this is a search per line break, not a pass per word).
    breaks = np.flatnonzero(d == 0x0A)
    after = np.searchsorted(w.ends, breaks, side="right") - 1
    is_end[after[after >= 0]] = True
    return np.concatenate([np.zeros(1, dtype=np.int64), np.flatnonzero(is_end[:-1]) + 1])


def _shuffle_order(
    t: Texts, w: Words, heads: np.ndarray, sizes: np.ndarray, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The word slots of the chosen sentences (ascending) and the word that lands in each.

    Block by block: one uniform per sentence (chosen when below RATE), then one per word of the
    block's chosen sentences, in order; the chosen words are sorted by (sentence, uniform), which
    only ever permutes words within a sentence.
    """
    picked, keys = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for block, lo, hi in block_bounds(t):
        a, b = np.searchsorted(heads, w.first[[lo, hi]])
        rng = block_rng(seed, TAG_SHUFFLE, block)
        chosen = np.flatnonzero((rng.random(b - a) < rate) & (sizes[a:b] >= 2)) + a
        picked.append(chosen)
        keys.append(rng.random(int(sizes[chosen].sum())))
    sent = np.concatenate(picked)
    slots = ranges(heads[sent], sizes[sent])
    # Sentence index + a uniform in [0, 1): sorts by sentence first (indices < 2^31 keep ~20 bits
    # of the uniform), and a stable sort keeps ties in place.
    key = np.repeat(sent.astype(np.float64), sizes[sent]) + np.concatenate(keys)
    return slots, slots[np.argsort(key, kind="stable")]


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
    heads = sentence_heads(t, w)
    sizes = np.diff(np.append(heads, n_words))
    slots, src = _shuffle_order(t, w, heads, sizes, rate, seed)
    moved = slots.take(np.flatnonzero(src != slots))
    changed = np.diff(np.searchsorted(moved, w.first)).astype(np.int64)
    if moved.size == 0:
        return Edited(t.data, t.offsets, changed, units)
    # Cut the text at both ends of every chosen word: piece 2q + 1 is the q-th chosen word, the
    # pieces between are the whitespace after it (or the untouched text up to the next chosen
    # word). Slot q then takes the piece of the word that lands in it; all else stays in place.
    q = slots.size
    bounds = np.empty(2 * q + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, t.data.size
    bounds[1:-1:2], bounds[2:-1:2] = w.starts[slots], w.ends[slots]
    order = np.arange(2 * q + 1, dtype=np.int64)
    order[1::2] = 2 * (np.arange(q, dtype=np.int64) + (src - slots)) + 1
    return Edited(data=concat_pieces(t.data, bounds, order), offsets=t.offsets, changed=changed, units=units)


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
