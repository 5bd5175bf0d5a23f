"""Near copies for `curate duplicate --near E`: every copy gets round(E·W) of its W words edited
(substitution, deletion, insertion, swap), vectorised over blocks of similar source length; block
b draws from its own stream spawned from (seed, b) (edit scheme NEAR_SCHEME), so it gives the same
rows in this process, in worker processes (from MIN_PARALLEL_COPIES copies on) or in a Ray task.

    texts, edit_fraction, jaccard = near_copies(pool_texts, copy_pool, near=0.1, seed=1, vocab=vocab)
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datadiet.runtime import cpu_count, worker_pool
from datadiet.schema import TEXT

SHINGLE_WORDS = 5


# Substitutions and insertions draw from the words of this many seeded sample documents plus the
# pool's own: ~10k TinyStories give ~20k word types, plenty of variety at a fraction of a second.
VOCAB_SAMPLE_DOCS = 10_000


# Near copies are built in blocks of about this many (copy, word) cells: 64k cells keep each
# per-block int64 temporary at 512 KiB, inside the L2 cache, which measured 3x faster than 8M-cell
# blocks (memory-bound) at 150k copies. Each block has its own stream, so changing this changes
# near-copy rows: bump NEAR_SCHEME with it.
BLOCK_CELLS = 1 << 16


# The edit scheme of near copies, in the parameters (and so the version id) of every version with
# --near > 0. 1: all blocks drew in turn from one stream (workers needed the parent to replay it);
# 2: block b draws from its own stream spawned from (seed, b), so blocks are independent and can
# be edited on any machine. Exact copies draw no edits, so their versions keep their ids.
NEAR_SCHEME = 2


NEAR_SCHEME_PARAM = "near_scheme"


# -- near copies ---------------------------------------------------------------------------------

_TOKEN_RE = r"\S+\s*"


_WORD_RE = r"\S+"
# Edit operations, drawn uniformly for every chosen word.
_SUB, _DEL, _INS, _SWAP = 0, 1, 2, 3


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)


_GRAM_MUL = np.uint64(0x9E3779B97F4A7C15)


_SENTINEL = np.uint64(0xFFFFFFFFFFFFFFFF)


# Below this many copies the near copies are edited in this process: spawning a worker and
# importing polars costs ~1 s, the time of ~100k copies in one process.
MIN_PARALLEL_COPIES = 100_000


# Blocks are handed to the workers in about this many tasks per worker, so a worker slowed down by
# other load does not leave the other cores idle for long; each task costs one message of block
# ranges and one result message.
TASKS_PER_WORKER = 4


def _mix(x: np.ndarray) -> np.ndarray:
    """Multiply-xorshift, a bijection of uint64s: grams differing by a small amount get unrelated low bits.

    `_jaccard_rows` overwrites each hash's lowest bit, so neighbouring polynomial hashes (which
    differ by 1 when only the last word id does) must first be spread apart.
    """
    x = x * _MIX1
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


@dataclass(frozen=True)
class _Tables:
    """The pool documents as byte spans and word ids: every copy is spliced together from these.

    `data` holds the pool texts back to back, then the vocabulary words, then one space; a copy is
    its source's byte range with the edited words' ranges replaced, so unedited text is copied as
    whole runs of bytes. Token t (a word and the whitespace after it) is `data[start[t] :
    start[t] + token_len[t]]`, its word the first `word_len[t]` of those bytes.
    """

    data: np.ndarray  # (bytes,) uint8
    doc_start: np.ndarray  # (P+1,) byte offset of each pool text in data (and the end of the last)
    tok_offsets: np.ndarray  # (P+1,) first token of each pool document
    start: np.ndarray  # (T,) byte offset of each token in data
    word_len: np.ndarray  # (T,) bytes of its word
    token_len: np.ndarray  # (T,) bytes of its word and the whitespace after it
    breaks: np.ndarray  # (T,) whether that whitespace holds a line break
    word_all: np.ndarray  # (T+V,) vocabulary id of each token's word, then 0..V-1 (the vocabulary itself)
    vocab_start: np.ndarray  # (V,) byte offset of each vocabulary word in data
    vocab_len: np.ndarray  # (V,) its bytes
    space_at: int  # byte offset of " " in data (put after an inserted word)

    @property
    def n_tokens(self) -> int:
        return int(self.start.size)

    @property
    def n_vocab(self) -> int:
        return int(self.vocab_start.size)


def _large_strings(series: pl.Series) -> pa.LargeStringArray:
    arrow = series.to_arrow()
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    return arrow.cast(pa.large_string())


def _string_buffers(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of non-null strings back to back and their (n+1,) offsets from 0."""
    arrow = _large_strings(series)
    offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    buf = arrow.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def word_counts(texts: pl.Series) -> np.ndarray:
    """Words of each text (maximal runs of non-whitespace; a null text has none): the length a copy is sorted by."""
    out: np.ndarray = texts.fill_null("").str.count_matches(_WORD_RE).to_numpy().astype(np.int64)
    return out


def vocab_sample(n_corpus: int, seed: int) -> np.ndarray:
    """Ascending positions of the seeded sample of documents whose words join the vocabulary."""
    _, _, edit_seq = np.random.SeedSequence(seed).spawn(3)
    vocab_seq, _ = edit_seq.spawn(2)
    size = min(n_corpus, VOCAB_SAMPLE_DOCS)
    return np.sort(np.random.default_rng(vocab_seq).choice(n_corpus, size, replace=False))


def _pool_tokens(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The tokens (a word and the whitespace after it) of the non-null texts, and their words."""
    tokens = texts.fill_null("").str.extract_all(_TOKEN_RE).explode(empty_as_null=False).drop_nulls()
    # A token is a word and the whitespace after it; plain stripping is ~10x faster than a regex here.
    return tokens, tokens.str.strip_chars_end()


def vocab_words(pool_texts: pl.Series, sample_texts: pl.Series) -> pl.Series:
    """The distinct words of some pool texts and sample texts, unordered (one share of the vocabulary)."""
    sample_words = sample_texts.fill_null("").str.extract_all(_WORD_RE).explode().drop_nulls()
    return pl.concat([_pool_tokens(pool_texts)[1], sample_words]).unique()


def merge_vocab(shares: Sequence[pl.Series]) -> pl.Series:
    """The vocabulary: the distinct words of all shares (`vocab_words`), sorted; ids are positions in it."""
    return pl.concat(list(shares)).unique().sort()


def _tables(pool_texts: pl.Series, vocab: pl.Series) -> _Tables:
    """The tables of these pool texts; VOCAB (sorted) holds every word of them, and word ids are positions in it."""
    texts = pool_texts.fill_null("")
    tokens, words = _pool_tokens(texts)
    n_tokens = word_counts(texts)
    prefix_len = texts.str.extract(r"^(\s*)", 1).fill_null("").str.len_bytes().to_numpy().astype(np.int64)
    text_bytes, doc_start = _string_buffers(texts)
    vocab_bytes, vocab_offsets = _string_buffers(vocab)
    token_len = tokens.str.len_bytes().to_numpy().astype(np.int64)
    tok_offsets = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int64)
    doc = np.repeat(np.arange(texts.len(), dtype=np.int64), n_tokens)
    before = np.cumsum(token_len) - token_len  # bytes of the tokens before each one, over all documents
    start = doc_start[doc] + prefix_len[doc] + before - before[tok_offsets[doc]] if doc.size else before
    return _Tables(
        data=np.concatenate([text_bytes, vocab_bytes, np.frombuffer(b" ", dtype=np.uint8)]),
        doc_start=doc_start,
        tok_offsets=tok_offsets,
        start=start.astype(np.int64),
        word_len=words.str.len_bytes().to_numpy().astype(np.int64),
        token_len=token_len,
        # The word has no whitespace, so a line break in the token is in the whitespace after it.
        breaks=tokens.str.contains("\n", literal=True).fill_null(False).to_numpy().astype(bool),
        word_all=np.concatenate([vocab.search_sorted(words).to_numpy(), np.arange(vocab.len())]).astype(np.int64),
        vocab_start=vocab_offsets[:-1] + text_bytes.size,
        vocab_len=np.diff(vocab_offsets),
        space_at=int(text_bytes.size + vocab_bytes.size),
    )


def _choose(rng: np.random.Generator, lengths: np.ndarray, m: np.ndarray, width: int) -> np.ndarray:
    """A (rows, width) mask with exactly m[r] distinct True cells among the first lengths[r] of row r.

    Rejection sampling on the edited positions only (or on the unedited ones when m > W/2, so a draw
    is accepted with probability >= 1/2): the cost is proportional to the number of edits, not cells.
    """
    rows = lengths.size
    flip = 2 * m > lengths
    k = np.where(flip, lengths - m, m)
    row_of = np.repeat(np.arange(rows, dtype=np.int64), k)
    taken = np.zeros(rows * width, dtype=bool)
    pending = np.arange(row_of.size)
    while pending.size:
        r = row_of[pending]
        key = r * width + (rng.random(pending.size) * lengths[r]).astype(np.int64)
        _, first = np.unique(key, return_index=True)
        ok = np.zeros(pending.size, dtype=bool)
        ok[first] = True
        ok &= ~taken[key]
        taken[key[ok]] = True
        pending = pending[~ok]
    taken2 = taken.reshape(rows, width)
    if not flip.any():
        return taken2
    valid = np.arange(width)[None, :] < lengths[:, None]
    return np.where(flip[:, None], valid & ~taken2, taken2)


def _gram_hashes(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hashes of the word 5-grams of padded word-id rows; cells past a row's last gram hold _SENTINEL.

    A row shorter than 5 words has one shingle, the whole row; an empty row has none.
    """
    rows, width = ids.shape
    padded = np.zeros((rows, width + SHINGLE_WORDS - 1), dtype=np.uint64)
    # Word ids shifted by one so that 0 is the padding of short rows.
    padded[:, :width] = np.where(np.arange(width)[None, :] < lengths[:, None], ids + 1, 0).astype(np.uint64)
    h = padded[:, :width].copy()
    for k in range(1, SHINGLE_WORDS):
        h *= _GRAM_MUL
        h += padded[:, k : k + width]
    h = _mix(h)
    n_grams = np.where(lengths > 0, np.maximum(lengths - (SHINGLE_WORDS - 1), 1), 0)
    h[np.arange(width)[None, :] >= n_grams[:, None]] = _SENTINEL
    return h


def _jaccard_rows(copy_h: np.ndarray, source_h: np.ndarray) -> np.ndarray:
    """Set Jaccard of each row of COPY_H to the same row of SOURCE_H (gram hashes from `_gram_hashes`).

    One row-wise sort does it: copy hashes get the low bit 0 and source hashes 1, so in a sorted
    row a source gram is preceded by the copy's equal gram when both sets have it (63 hash bits
    leave collisions at ~n²/2⁶⁴, nil for stories).
    """
    one = np.uint64(1)
    both = np.concatenate([copy_h & ~one, source_h | one], axis=1)
    both.sort(axis=1)
    # Counted on neighbour differences in place of masks over the whole row: ~2x fewer passes.
    real = both < (_SENTINEL & ~one)
    step = both[:, 1:] - both[:, :-1]  # >= 0: rows are sorted
    union = real[:, 0].astype(np.int64) + np.count_nonzero(real[:, 1:] & (step != 0), axis=1)
    inter = np.count_nonzero(real[:, 1:] & (step == one) & ((both[:, 1:] & one) == one), axis=1)
    union -= inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float32)


def _splice(
    row_start: np.ndarray,
    row_end: np.ndarray,
    rep_row: np.ndarray,
    cut: tuple[np.ndarray, np.ndarray],
    put: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans (start, length) of rows made of [row_start, row_end) ranges with replacements spliced in.

    Replacement j (sorted by row, then by position, not overlapping) takes out [cut_a, cut_b) of
    row rep_row[j] and puts in the ranges (put_a1, len1) and (put_a2, len2). Each replacement gives
    three spans (the kept run before it and its two ranges), each row one more (the run after its
    last replacement), so row r's spans end at index 3·(replacements in rows <= r) + r.

    Returns:
        The span starts and lengths (a row's spans in order), and the index of each row's last span.
    """
    rows, n_rep = row_start.size, rep_row.size
    cut_a, cut_b = cut
    put_a1, len1, put_a2, len2 = put
    same_row = np.zeros(n_rep, dtype=bool)
    same_row[1:] = rep_row[1:] == rep_row[:-1]
    prev_b = np.where(same_row, np.roll(cut_b, 1), row_start[rep_row])
    per_row = np.bincount(rep_row, minlength=rows)
    last = 3 * np.cumsum(per_row) + np.arange(rows)
    starts = np.empty(3 * n_rep + rows, dtype=np.int64)
    lengths = np.empty(3 * n_rep + rows, dtype=np.int64)
    at = 3 * np.arange(n_rep) + rep_row
    starts[at], lengths[at] = prev_b, cut_a - prev_b
    starts[at + 1], lengths[at + 1] = put_a1, len1
    starts[at + 2], lengths[at + 2] = put_a2, len2
    # The run after a row's last replacement (or the whole row when it has none).
    tail_from = row_start.copy()
    if n_rep:
        is_last = np.ones(n_rep, dtype=bool)
        is_last[:-1] = ~same_row[1:]
        tail_from[rep_row[is_last]] = cut_b[is_last]
    starts[last], lengths[last] = tail_from, row_end - tail_from
    return starts, lengths, last


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FLAT[starts[i] : starts[i] + lengths[i]] for all i, concatenated (one gather, no Python loop)."""
    total = int(lengths.sum())
    shift = starts - (np.cumsum(lengths) - lengths)
    idx = np.repeat(shift, lengths)
    idx += np.arange(total, dtype=np.int64)
    out: np.ndarray = flat[idx]
    return out


def _row_lengths(lengths: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Total length of each row's spans (row r's spans end at index last[r])."""
    ends = np.cumsum(lengths)[last] if last.size else np.zeros(0, dtype=np.int64)
    return np.diff(ends, prepend=0)


_Block = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _edit_block(tab: _Tables, rng: np.random.Generator, s: np.ndarray, near: float) -> _Block:
    """Edit one block of copies (pool members S, ascending source length), drawing from RNG in turn.

    Returns:
        The copies' UTF-8 bytes back to back, their byte lengths, edit fractions and Jaccards.
    """
    v = max(tab.n_vocab, 1)
    first = tab.tok_offsets[s]
    w_len = tab.tok_offsets[s + 1] - first
    m = np.floor(near * w_len + 0.5).astype(np.int64)
    rows, width = s.size, max(int(w_len.max()), 1)
    # The draws (and their order) are those of the dense version this replaced, so rows stay as they were.
    chosen = _choose(rng, w_len, m, width)
    cr, cc = np.nonzero(chosen)
    op = rng.integers(0, 4, size=cr.size)
    draw = rng.integers(0, v, size=cr.size)
    tok = first[cr] + cc  # token of each edited word
    word = tab.word_all[tok]
    draw = np.where(draw == word, (draw + 1) % v, draw)
    inside = cc + 1 < w_len[cr]
    tok_next = np.where(inside, tok + 1, tok)
    swap_ok = inside & ~chosen[cr, np.minimum(cc + 1, width - 1)] & (tab.word_all[tok_next] != word)
    is_swap = (op == _SWAP) & swap_ok
    is_sub = (op == _SUB) | ((op == _SWAP) & ~swap_ok)
    is_del, is_ins = op == _DEL, op == _INS

    # Replacements: one per edit, and a second one for a swap (the next word), right after it.
    at = np.arange(cr.size) + np.cumsum(is_swap) - is_swap
    n_rep = cr.size + int(is_swap.sum())
    second = at[is_swap] + 1
    rep_row = np.empty(n_rep, dtype=np.int64)
    rep_row[at], rep_row[second] = cr, cr[is_swap]
    tn = tok_next[is_swap]
    zeros = np.zeros(n_rep, dtype=np.int64)

    # Bytes: a substituted or swapped word replaces the word's bytes and keeps the whitespace after
    # it; a deletion removes word and whitespace unless that holds a line break (paragraphs survive);
    # an insertion puts a vocabulary word and a space before the word.
    start, word_len = tab.start[tok], tab.word_len[tok]
    cut_len = np.where(is_del & ~tab.breaks[tok], tab.token_len[tok], word_len)
    cut_a, cut_b = zeros.copy(), zeros.copy()
    cut_a[at], cut_b[at] = start, start + np.where(is_ins, 0, cut_len)
    cut_a[second], cut_b[second] = tab.start[tn], tab.start[tn] + tab.word_len[tn]
    a1, l1, a2, l2 = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    new_word = is_sub | is_ins
    a1[at] = np.where(new_word, tab.vocab_start[draw], tab.start[tok_next])
    l1[at] = np.where(new_word, tab.vocab_len[draw], np.where(is_swap, tab.word_len[tok_next], 0))
    a1[second], l1[second] = start[is_swap], word_len[is_swap]
    a2[at], l2[at] = tab.space_at, is_ins.astype(np.int64)
    spans = _splice(tab.doc_start[s], tab.doc_start[s + 1], rep_row, (cut_a, cut_b), (a1, l1, a2, l2))
    text = _gather(tab.data, spans[0], spans[1])
    text_len = _row_lengths(spans[1], spans[2])

    # Word ids of the copy, spliced the same way in token space (vocabulary word x is word_all[T + x]).
    cut_a[at], cut_b[at] = tok, tok + (~is_ins)
    cut_a[second], cut_b[second] = tn, tn + 1
    a1[at] = np.where(new_word, tab.n_tokens + draw, tok_next)
    l1[at] = (new_word | is_swap).astype(np.int64)
    a1[second], l1[second] = tok[is_swap], 1
    l2[:] = 0
    spans = _splice(first, first + w_len, rep_row, (cut_a, cut_b), (a1, l1, a2, l2))
    out_word = _gather(tab.word_all, spans[0], spans[1])
    out_len = _row_lengths(spans[1], spans[2])
    out_ids = np.zeros((rows, max(int(out_len.max()), 1)), dtype=np.int64)
    column = np.arange(out_word.size) - np.repeat(np.cumsum(out_len) - out_len, out_len)
    out_ids[np.repeat(np.arange(rows), out_len), column] = out_word

    # Every chosen word got exactly one operation that changes it, so the realised share is m/W.
    edit = np.where(w_len > 0, m / np.maximum(w_len, 1), 0.0).astype(np.float32)
    # A source's grams are hashed once per block and shared by all its copies in it.
    _, first_row, inverse = np.unique(s, return_index=True, return_inverse=True)
    source_ids = _rows(tab.word_all, first[first_row], w_len[first_row], width)
    source_h = _gram_hashes(source_ids, w_len[first_row])[inverse.reshape(-1)]
    jac = _jaccard_rows(_gram_hashes(out_ids, out_len), source_h)
    return text, text_len, edit, jac


def _block_rng(seed: int, block: int) -> np.random.Generator:
    """Block `block`'s stream: child `block` of the edit draws' SeedSequence(seed).spawn(3)[2].spawn(2)[1]."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, 1, block)))


def _edit_blocks(
    tab: _Tables,
    sources: np.ndarray,
    bounds: Sequence[tuple[int, int]],
    first_block: int,
    near: float,
    seed: int,
    task: Any = None,
) -> _Block:
    """Edit consecutive blocks (row ranges of SOURCES, the first being block `first_block`); results concatenated."""
    parts = []
    for b, (lo, hi) in enumerate(bounds, start=first_block):
        parts.append(_edit_block(tab, _block_rng(seed, b), sources[lo:hi], near))
        if task is not None:
            task.advance(hi - lo)
    return _concat_blocks(parts)


def _concat_blocks(parts: list[_Block]) -> _Block:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), empty, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    text, text_len, edit, jac = zip(*parts, strict=True)
    return np.concatenate(text), np.concatenate(text_len), np.concatenate(edit), np.concatenate(jac)


def _texts(text: np.ndarray, text_len: np.ndarray) -> pl.Series:
    """UTF-8 bytes back to back and their lengths -> a String series."""
    offsets = np.concatenate([[0], np.cumsum(text_len)]).astype(np.int64)
    arrow = pa.LargeStringArray.from_buffers(text_len.size, pa.py_buffer(offsets), pa.py_buffer(text))
    series = pl.from_arrow(arrow)
    assert isinstance(series, pl.Series)
    return series.cast(pl.String).alias(TEXT)


def edit_plan(lengths: np.ndarray, copy_pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """How the copies are edited: in blocks of ascending source length (a function of word counts alone).

    Args:
        lengths: Words of each pool document (`word_counts`).
        copy_pool: Pool member of each copy.

    Returns:
        `order` (copy of each edit row: rows sorted by source length, stably), `sources` (pool member
        of each edit row) and the blocks, as [lo, hi) ranges of edit rows; block b draws from stream b.
    """
    # Sorted by source length so a block's padding stays small.
    order = np.argsort(lengths[copy_pool], kind="stable")
    sources = copy_pool[order].astype(np.int64)
    return order, sources, _blocks(lengths[sources])


def edit_texts(
    pool_texts: pl.Series,
    vocab: pl.Series,
    sources: np.ndarray,
    bounds: Sequence[tuple[int, int]],
    first_block: int,
    near: float,
    seed: int,
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Edit some consecutive blocks of `edit_plan` anywhere (a worker, a Ray task) with this process alone.

    Args:
        pool_texts: The texts of (at least) the pool documents these blocks copy.
        vocab: The whole vocabulary (`merge_vocab`).
        sources: Row of POOL_TEXTS each edit row copies.
        bounds: The blocks, as ranges of SOURCES; the first is block `first_block` of the plan.
        near: Share E of words to edit.
        seed: The config's seed.

    Returns:
        The copies' texts, edit fractions and Jaccards to their sources, in edit-row order.
    """
    tab = _tables(pool_texts, vocab)
    text, text_len, edit, jac = _edit_blocks(tab, sources, bounds, first_block, near, seed)
    return _texts(text, text_len), edit, jac


# Tables of the current near_copies call in a worker process, memory-mapped from the parent's files.
_WORKER_TABLES: _Tables | None = None


_ARRAY_FIELDS = (
    "data",
    "doc_start",
    "tok_offsets",
    "start",
    "word_len",
    "token_len",
    "breaks",
    "word_all",
    "vocab_start",
    "vocab_len",
)


def _save_tables(tab: _Tables, folder: str) -> None:
    for name in _ARRAY_FIELDS:
        np.save(os.path.join(folder, f"{name}.npy"), getattr(tab, name))


def _init_worker(folder: str, space_at: int) -> None:
    global _WORKER_TABLES
    arrays = {name: np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r") for name in _ARRAY_FIELDS}
    _WORKER_TABLES = _Tables(**arrays, space_at=space_at)


def _worker_edit(
    sources: np.ndarray, bounds: list[tuple[int, int]], first_block: int, near: float, seed: int
) -> _Block:
    assert _WORKER_TABLES is not None, "worker started without _init_worker"
    return _edit_blocks(_WORKER_TABLES, sources, bounds, first_block, near, seed)


def near_copies(
    pool_texts: pl.Series,
    copy_pool: np.ndarray,
    corpus_texts: pl.Series,
    near: float,
    seed: int,
    task: Any = None,
    workers: int | None = None,
) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Make one edited copy of `pool_texts[copy_pool[j]]` for every j (vectorised, in blocks).

    Each copy of a source of W words gets exactly round(near·W) distinct words edited, each by one
    operation drawn uniformly from substitution (a different vocabulary word), deletion, insertion
    of a vocabulary word before it, and swap with the next word (when that one is unedited and
    different; otherwise a substitution).

    The copies are edited in blocks of ascending source length (`edit_plan`), block b drawing from
    its own stream (`_block_rng`), so the rows are the same for any number of workers and any
    machine the blocks run on.

    Args:
        pool_texts: Texts of the pool documents.
        copy_pool: Pool member of each copy.
        corpus_texts: The whole dataset's texts; a seeded sample of them gives the vocabulary.
        near: Share E of words to edit.
        seed: The config's seed (the edit streams are spawned from it).
        task: Optional progress task advanced by copies done.
        workers: Processes to edit in (default: every core); below MIN_PARALLEL_COPIES copies, this
            one. Does not change the result.

    Returns:
        Texts of the copies, their edit fractions (Float32) and their word-5-gram Jaccard to the source (Float32).
    """
    sample = vocab_sample(corpus_texts.len(), seed)
    vocab = merge_vocab([vocab_words(pool_texts, corpus_texts[sample])])
    tab = _tables(pool_texts, vocab)
    n = copy_pool.size
    if n == 0:
        return pl.Series(TEXT, [], dtype=pl.String), np.zeros(0, dtype=np.float32), np.ones(0, dtype=np.float32)
    order, sources, bounds = edit_plan(np.diff(tab.tok_offsets), copy_pool)
    workers = workers or cpu_count()
    if workers == 1 or n < MIN_PARALLEL_COPIES:
        result = _edit_blocks(tab, sources, bounds, 0, near, seed, task)
    else:
        result = _edit_parallel(tab, sources, bounds, near, seed, workers, task)
    text, text_len, edit, jac = result
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n, dtype=np.int64)
    return _texts(text, text_len)[inverse], edit[inverse], jac[inverse]


def _edit_parallel(
    tab: _Tables,
    sources: np.ndarray,
    bounds: list[tuple[int, int]],
    near: float,
    seed: int,
    workers: int,
    task: Any,
) -> _Block:
    n_tasks = min(len(bounds), workers * TASKS_PER_WORKER)
    cuts = np.linspace(0, len(bounds), n_tasks + 1).round().astype(int)
    groups = [(int(a), bounds[a:b]) for a, b in itertools.pairwise(cuts) if b > a]
    results: dict[int, _Block] = {}
    with tempfile.TemporaryDirectory(prefix="datadiet-near-") as folder:
        _save_tables(tab, folder)
        # Spawned workers that end with this process, however it ends (runtime.worker_pool).
        with worker_pool(min(workers, len(groups)), _init_worker, (folder, tab.space_at)) as pool:
            pending: dict[Future[_Block], int] = {}
            for g, (first_block, group) in enumerate(groups):
                lo, hi = group[0][0], group[-1][1]
                local = [(a - lo, b - lo) for a, b in group]
                pending[pool.submit(_worker_edit, sources[lo:hi], local, first_block, near, seed)] = g
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    g = pending.pop(fut)
                    results[g] = fut.result()
                    if task is not None:
                        group = groups[g][1]
                        task.advance(group[-1][1] - group[0][0])
    return _concat_blocks([results[g] for g in range(len(groups))])


def _rows(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int | None = None) -> np.ndarray:
    """Gather variable-length slices of FLAT into a (rows, width) matrix padded with 0."""
    width = max(int(lengths.max()) if lengths.size else 0, 1) if width is None else width
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    if not flat.size:
        return np.zeros((lengths.size, width), dtype=np.int64)
    return np.where(valid, flat[np.where(valid, starts[:, None] + cols[None, :], 0)], 0)


def _blocks(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Split rows with ascending LENGTHS into runs [lo, hi) whose rows × widest row stays near BLOCK_CELLS."""
    out: list[tuple[int, int]] = []
    lo, n = 0, lengths.size
    while lo < n:
        hi = min(n, lo + max(1, BLOCK_CELLS // max(int(lengths[lo]), 1)))
        # The widest row of an ascending run is its last one.
        while hi > lo + 1 and max(int(lengths[hi - 1]), 1) * (hi - lo) > BLOCK_CELLS:
            hi = lo + max(1, (hi - lo) // 2)
        out.append((lo, hi))
        lo = hi
    return out
