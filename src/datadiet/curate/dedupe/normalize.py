"""Text normalisation, shingling and the stable shingle hash used by `curate dedupe`.

Normalisation (the same for exact and MinHash dedupe):

1. Unicode NFKC (compatibility forms folded: ligatures, full-width letters, no-break spaces);
2. lowercase (`str.lower`);
3. every punctuation or symbol character (Unicode categories P* and S*) and every whitespace
   character (`str.isspace`) separates words;
4. the normalised text is the remaining words joined by single spaces.

Shingles are word n-grams of the normalised text (`kind="word"`) or character n-grams of it
(`kind="char"`, spaces included). A document with fewer than n tokens is one shingle (all of its
tokens); an empty document has no shingles.

The shingle hash is a pure function of the shingle's UTF-8 bytes, fixed by this module and
independent of Python's `hash()`, library versions and processes:

- a word's token value is fmix64(polynomial hash of its bytes, base `WORD_BASE`, mod 2^64);
  a character's token value is fmix64(code point + `CHAR_SALT`);
- a shingle's 64-bit hash is fmix64(Horner over its token values, base `SHINGLE_BASE`, starting
  from `SHINGLE_SEED`); its 32-bit hash (fed to MinHash) is the top 32 bits of that.

`shingle_hash` computes it one shingle at a time (the `hashfunc` handed to datasketch);
`block_shingles` computes the same values for thousands of documents at once with numpy: the
per-word polynomial is a Horner step per byte position over all words at once, and the n-gram Horner
sum is n shifted multiply-adds, so no Python code runs per word or per shingle. Invoked from
`minhash.py` and `find.py` of this package, and by the statistics; use directly as::

    from datadiet.curate.dedupe.normalize import normalize, shingles, shingle_hash
    hashes = [shingle_hash(s, "word") for s in shingles(text, 5, "word")]
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datadiet.hashing import MASK64, fmix64, fmix64_int

SHINGLE_KINDS = ("word", "char")

# 64-bit FNV prime.
WORD_BASE = 0x100000001B3
WORD_OFFSET = 0xCBF29CE484222325  # FNV offset basis, so the empty prefix does not hash to 0
SHINGLE_BASE = 0x9E3779B97F4A7C15 | 1
SHINGLE_SEED = 0x243F6A8885A308D3
CHAR_SALT = 0x452821E638D01377
# Exact-duplicate digest: 128 bits of blake2b, so a false "exact" match among 10^9 documents has
# probability ~1e-21.
DIGEST_BYTES = 16

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


# -- normalisation ------------------------------------------------------------------------------


def _is_separator(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PS"


@functools.cache
def _separator_regex() -> re.Pattern[str]:
    # One scan of all code points (~0.3 s, once per process) builds a character class of ranges,
    # which `re` matches with a bitmap: ~10x faster than `str.translate` with a dict.
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] in "PS":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{body}]+")


# Byte lookup table: True where the byte is an ASCII separator. Bytes >= 0x80 belong to multi-byte
# characters, which are word characters here because `_prenormalize` has already replaced every
# non-ASCII separator by a space.
_SEP_LUT = np.zeros(256, dtype=bool)
for _b in range(128):
    _SEP_LUT[_b] = _is_separator(chr(_b))
_SPACE = 0x20
_DOC_SEP = b"\n"  # a separator byte between documents, so no word spans two documents


def normalize(text: str) -> str:
    """The normalised text: NFKC, lowercase, punctuation/symbols/whitespace collapsed to single spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_separator_regex().sub(" ", folded).split())


def _prenormalize(text: str) -> bytes:
    """UTF-8 bytes whose separator-free runs are exactly the words of `normalize(text)`."""
    folded = unicodedata.normalize("NFKC", text).lower()
    if not folded.isascii():
        # ASCII separators are handled by `_SEP_LUT` in numpy; only the (few) non-ASCII runs are
        # looked at here, so a story with curly quotes costs ~2 us more, not ~250 us of regex.
        folded = _NON_ASCII.sub(_blank_separators, folded)
    return folded.encode("utf-8")


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


@functools.lru_cache(maxsize=65536)
def _blank_run(run: str) -> str:
    return "".join(" " if _is_separator(ch) else ch for ch in run)


def _blank_separators(match: re.Match[str]) -> str:
    return _blank_run(match.group())


def words(text: str) -> list[str]:
    """The words of the normalised text."""
    norm = normalize(text)
    return norm.split(" ") if norm else []


def shingles(text: str, ngram: int, kind: str = "word") -> list[str]:
    """The shingles of `text`, in order and with repeats: word n-grams joined by spaces, or character n-grams.

    Args:
        text: Raw document text (normalised here).
        ngram: Tokens per shingle (>= 1).
        kind: "word" or "char".

    Returns:
        One string per shingle; a document shorter than `ngram` tokens is one shingle, an empty one none.
    """
    if kind == "word":
        toks: list[str] = words(text)
        join = " ".join
    elif kind == "char":
        toks = list(normalize(text))
        join = "".join
    else:
        raise ValueError(f"unknown shingle kind {kind!r}")
    if not toks:
        return []
    if len(toks) < ngram:
        return [join(toks)]
    return [join(toks[i : i + ngram]) for i in range(len(toks) - ngram + 1)]


def word_token(word: str) -> int:
    """The 64-bit token value of one normalised word."""
    h = WORD_OFFSET
    for byte in word.encode("utf-8"):
        h = (h * WORD_BASE + byte) & MASK64
    return fmix64_int(h)


def char_token(ch: str) -> int:
    """The 64-bit token value of one character."""
    return fmix64_int((ord(ch) + CHAR_SALT) & MASK64)


def shingle_hash64(shingle: str, kind: str = "word") -> int:
    """The 64-bit hash of one shingle as produced by `shingles` (used for exact Jaccard)."""
    if kind == "word":
        tokens = [word_token(w) for w in shingle.split(" ")]
    elif kind == "char":
        tokens = [char_token(c) for c in shingle]
    else:
        raise ValueError(f"unknown shingle kind {kind!r}")
    h = SHINGLE_SEED
    for t in tokens:
        h = (h * SHINGLE_BASE + t) & MASK64
    return fmix64_int(h)


def shingle_hash(shingle: str, kind: str = "word") -> int:
    """The 32-bit hash of one shingle: the value MinHash permutes (datasketch's `hashfunc`)."""
    return shingle_hash64(shingle, kind) >> 32


def hashfunc(kind: str = "word") -> Callable[[str], int]:
    """A one-argument hash function for `datasketch.MinHash(hashfunc=...)` matching `block_shingles`."""
    if kind not in SHINGLE_KINDS:
        raise ValueError(f"unknown shingle kind {kind!r}")
    return functools.partial(shingle_hash, kind=kind)


def text_digest(text: str) -> bytes:
    """A stable 128-bit digest of the normalised text (the key of exact dedupe)."""
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=DIGEST_BYTES).digest()


# -- vectorised block processing ----------------------------------------------------------------


@dataclass
class Block:
    """Normalised documents of one block, as flat arrays.

    Attributes:
        digests: (docs, 2) uint64, the blake2b digest of each normalised text.
        lengths: (docs,) int64, characters of each *original* text (for keep="longest").
        hashes: uint64 64-bit shingle hashes of all documents, concatenated in document order.
        offsets: (docs + 1,) int64, document d's shingles are hashes[offsets[d]:offsets[d + 1]].
    """

    digests: U64
    lengths: I64
    hashes: U64
    offsets: I64


def _combine(tokens: U64, tok_offsets: I64, ngram: int) -> tuple[U64, I64]:
    """Shingle hashes from token values: Horner over each window of `ngram` tokens, per document."""
    counts = np.diff(tok_offsets)
    docs = counts.size
    sh_counts = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    out_offsets = np.zeros(docs + 1, dtype=np.int64)
    np.cumsum(sh_counts, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.uint64)
    base = np.uint64(SHINGLE_BASE)
    total = tokens.size
    if total >= ngram:
        windows = total - ngram + 1
        pre = np.full(windows, (SHINGLE_SEED * pow(SHINGLE_BASE, ngram, 1 << 64)) & MASK64, dtype=np.uint64)
        for j in range(ngram):
            pre += tokens[j : windows + j] * np.uint64(pow(SHINGLE_BASE, ngram - 1 - j, 1 << 64))
        doc_of = np.repeat(np.arange(docs, dtype=np.int64), counts)
        valid = doc_of[:windows] == doc_of[ngram - 1 :]
        starts = np.flatnonzero(valid)
        d = doc_of[starts]
        out[out_offsets[d] + starts - tok_offsets[d]] = pre[valid]
    for m in range(1, ngram):
        short = np.flatnonzero(counts == m)
        if short.size:
            pre = np.full(short.size, SHINGLE_SEED, dtype=np.uint64)
            for j in range(m):
                pre = pre * base + tokens[tok_offsets[short] + j]
            out[out_offsets[short]] = pre
    return fmix64(out), out_offsets


def word_tokens(buf: npt.NDArray[np.uint8], starts: I64, ends: I64) -> U64:
    """`word_token` of every word `buf[starts[i]:ends[i]]` (non-empty, already normalised bytes) at once.

    Horner over all words together, one step per byte position: with the words ordered longest
    first, the words still going at position j are a prefix of that order, so step j is one
    multiply-add over that prefix. Only word bytes are read and the state is 8 bytes per word:
    ~1.3x faster than prefix sums of byte * P^-j over the whole buffer (measured 72 vs 96 ms per
    8,192 stories), which also held 16 bytes of powers and 8 of sums per buffer byte.
    """
    lengths = ends - starts
    longest = int(lengths.max()) if lengths.size else 0
    # numpy's stable sort is a radix sort on 16-bit keys: ~8x faster than on int64 (7 vs 60 ms per 1.4M words).
    order = np.argsort(-lengths.astype(np.int16) if longest < 2**15 else -lengths, kind="stable")
    first = starts[order]
    desc = lengths[order]
    # going[j] = how many words are longer than j bytes.
    going = np.searchsorted(-desc, -np.arange(longest), side="left")
    poly = np.full(starts.size, WORD_OFFSET, dtype=np.uint64)
    base = np.uint64(WORD_BASE)
    for j in range(longest):
        head = poly[: int(going[j])]
        head *= base
        head += buf[first[: head.size] + j]
    out = np.empty_like(poly)
    out[order] = fmix64(poly)
    return out


def shingle_hashes(tokens: U64, tok_offsets: I64, ngram: int) -> tuple[U64, I64]:
    """64-bit shingle hashes (`shingle_hash64`) of documents given as token values, and their offsets.

    Args:
        tokens: Token values of all documents, concatenated (`word_tokens` for word shingles).
        tok_offsets: (docs + 1,) document d's tokens are tokens[tok_offsets[d]:tok_offsets[d + 1]].
        ngram: Tokens per shingle (>= 1).

    Returns:
        The concatenated shingle hashes and (docs + 1,) offsets, as in `Block`.
    """
    return _combine(tokens, tok_offsets, ngram)


def block_shingles(texts: Sequence[str], ngram: int, kind: str = "word", *, with_shingles: bool = True) -> Block:
    """Normalise, digest and shingle-hash a block of documents at once.

    The values equal `text_digest` and `shingle_hash64` applied one document and one shingle at a
    time (the tests check this); this path is ~50x faster.

    Args:
        texts: Raw document texts.
        ngram: Tokens per shingle (>= 1).
        kind: "word" or "char".
        with_shingles: False skips the shingle hashes (exact dedupe needs only the digests).

    Returns:
        The block's digests, original lengths and concatenated 64-bit shingle hashes.
    """
    if kind not in SHINGLE_KINDS:
        raise ValueError(f"unknown shingle kind {kind!r}")
    docs = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=docs)
    pre = [_prenormalize(t) for t in texts]
    raw_len = np.fromiter(map(len, pre), dtype=np.int64, count=docs)
    buf = np.frombuffer(_DOC_SEP.join(pre) + _DOC_SEP, dtype=np.uint8)
    doc_start = np.zeros(docs, dtype=np.int64)
    np.cumsum(raw_len[:-1] + 1, out=doc_start[1:])
    is_word = ~_SEP_LUT[buf]
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    w_start = np.flatnonzero(edges == 1)
    w_end = np.flatnonzero(edges == -1)
    w_doc = np.searchsorted(doc_start, w_start, side="right") - 1
    w_counts = np.bincount(w_doc, minlength=docs).astype(np.int64)
    w_offsets = np.zeros(docs + 1, dtype=np.int64)
    np.cumsum(w_counts, out=w_offsets[1:])

    # Normalised bytes: word bytes, plus one space at the end of every word followed by another
    # word of the same document.
    keep = is_word.copy()
    nxt_same = np.flatnonzero(w_doc[:-1] == w_doc[1:])
    gap = w_end[nxt_same]
    keep[gap] = True
    norm = buf.copy()
    norm[gap] = _SPACE
    norm_bytes = norm[keep].tobytes()
    norm_len = np.bincount(w_doc, weights=w_end - w_start, minlength=docs).astype(np.int64)
    norm_len += np.maximum(w_counts - 1, 0)
    digests = _digests(norm_bytes, norm_len)
    if not with_shingles:
        return Block(digests, lengths, np.empty(0, dtype=np.uint64), np.zeros(docs + 1, dtype=np.int64))

    if kind == "word":
        tokens = word_tokens(buf, w_start, w_end)
        tok_offsets = w_offsets
    else:
        cps, tok_offsets = _code_points(norm_bytes, norm_len)
        tokens = fmix64(cps.astype(np.uint64) + np.uint64(CHAR_SALT))
    hashes, offsets = _combine(tokens, tok_offsets, ngram)
    return Block(digests=digests, lengths=lengths, hashes=hashes, offsets=offsets)


def _digests(norm_bytes: bytes, norm_len: I64) -> U64:
    view = memoryview(norm_bytes)
    ends = np.cumsum(norm_len).tolist()
    starts = [0, *ends[:-1]]
    raw = b"".join(
        hashlib.blake2b(view[s:e], digest_size=DIGEST_BYTES).digest() for s, e in zip(starts, ends, strict=True)
    )
    out: U64 = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2).copy()
    return out


def _code_points(norm_bytes: bytes, norm_len: I64) -> tuple[npt.NDArray[np.uint32], I64]:
    """Unicode code points of each normalised text, concatenated, with per-document offsets."""
    # Documents are rejoined with "\n", which normalised text never contains, then located again.
    view = memoryview(norm_bytes)
    ends = np.cumsum(norm_len).tolist()
    starts = [0, *ends[:-1]]
    joined = b"\n".join(view[s:e] for s, e in zip(starts, ends, strict=True)) + b"\n"
    cps = np.frombuffer(joined.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    nl = np.flatnonzero(cps == 10)
    offsets = np.zeros(nl.size + 1, dtype=np.int64)
    offsets[1:] = nl + 1
    # Drop the separators: document d's characters are cps[offsets[d]:nl[d]].
    keep = cps != 10
    counts = nl - offsets[:-1]
    out_offsets = np.zeros(nl.size + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return cps[keep], out_offsets
