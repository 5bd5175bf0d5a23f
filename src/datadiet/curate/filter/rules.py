"""Document quality heuristics as vectorised polars expressions (Gopher-style, Rae et al. 2021).

Each rule measures one number per document and keeps the document when it lies within [min, max].
Every measure is a polars string expression over `text` (Rust, all cores) except the two repetition
measures, which explode one part's words or lines into rows and group them back; none runs Python
per document. `reference_metrics(text)` is the same definitions written plainly in Python, document by
document, the way datatrove's `GopherQualityFilter` works: tests check the two agree exactly, and
`benchmarks/filter_speed.py` uses it as the baseline.

Definitions (a *word* is a maximal run of non-whitespace; a *line* is text between newlines):

| rule | measure | default keep |
|---|---|---|
| word_count | words in the document | 50 ≤ x ≤ 100,000 (Gopher) |
| mean_word_length | non-whitespace characters / words | 3 ≤ x ≤ 10 (Gopher) |
| symbol_ratio | ("#" + "..." + "…" occurrences) / words | x ≤ 0.1 (Gopher) |
| bullet_lines | lines starting with a bullet (•, -, *, ‣, ◦, ⁃) / lines | x ≤ 0.9 (Gopher) |
| ellipsis_lines | lines ending in "..." or "…" / lines | x ≤ 0.3 (Gopher) |
| alpha_words | words holding at least one letter / words | x ≥ 0.8 (Gopher) |
| stop_words | occurrences of the, be, to, of, and, that, have, with (any case, whole words) | x ≥ 2 (Gopher) |
| punct_lines | non-empty lines ending in terminal punctuation (. ! ? " ' ” ’ ») / non-empty lines | x ≥ 0.5 (C4) |
| non_alpha_chars | non-whitespace characters that are not letters / non-whitespace characters | x ≤ 0.3 |
| dup_lines | non-empty lines equal to an earlier line of the document / non-empty lines | x ≤ 0.3 (Gopher) |
| dup_ngrams | word 5-grams equal to an earlier 5-gram of the document / 5-grams | x ≤ 0.15 |
| top_ngram | occurrences of the document's most frequent word 2-gram / 2-grams | x ≤ 0.2 |

Gopher's repetition thresholds are fractions of *characters* in repeated n-grams; `dup_ngrams` and
`top_ngram` count n-grams instead (cheaper, and the same idea); a document with no 5-grams (or
2-grams) scores 0. A document with no words scores 0 on every ratio, so `word_count` is what removes it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from datadiet.errors import UsageError
from datadiet.schema import TEXT

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = "•‣◦⁃*-"
TERMINAL_PUNCT = ".!?\"'”’»"
DUP_NGRAM_N = 5
TOP_NGRAM_N = 2


@dataclass(frozen=True)
class Rule:
    """One heuristic and the range of its measure a document must lie in to be kept."""

    name: str
    min: float | None
    max: float | None

    @property
    def label(self) -> str:
        lo = "" if self.min is None else f"{self.min:g} <= "
        hi = "" if self.max is None else f" <= {self.max:g}"
        return f"{lo}{self.name}{hi}"


# name -> (default min, default max, one-line meaning for --help and docs)
RULES: dict[str, tuple[float | None, float | None, str]] = {
    "word_count": (50, 100_000, "words in the document"),
    "mean_word_length": (3, 10, "non-whitespace characters per word"),
    "symbol_ratio": (None, 0.1, "('#', '...', '…') per word"),
    "bullet_lines": (None, 0.9, "share of lines starting with a bullet"),
    "ellipsis_lines": (None, 0.3, "share of lines ending in an ellipsis"),
    "alpha_words": (0.8, None, "share of words holding a letter"),
    "stop_words": (2, None, "English stop words (the, be, to, of, and, that, have, with)"),
    "punct_lines": (0.5, None, "share of non-empty lines ending in terminal punctuation"),
    "non_alpha_chars": (None, 0.3, "share of non-whitespace characters that are not letters"),
    "dup_lines": (None, 0.3, "share of non-empty lines repeating an earlier line"),
    "dup_ngrams": (None, 0.15, f"share of word {DUP_NGRAM_N}-grams repeating an earlier one"),
    "top_ngram": (None, 0.2, f"share of word {TOP_NGRAM_N}-grams that are the most frequent one"),
}
# `--rule gopher`: Gopher's quality and repetition filters as this module defines them.
PRESETS = {
    "gopher": (
        "word_count",
        "mean_word_length",
        "symbol_ratio",
        "bullet_lines",
        "ellipsis_lines",
        "alpha_words",
        "stop_words",
        "dup_lines",
        "dup_ngrams",
        "top_ngram",
    ),
    "all": tuple(RULES),
}


def parse_rule(spec: str) -> list[Rule]:
    """`NAME`, `NAME:min=A,max=B` (either bound; `none` lifts it) or a preset name (`gopher`, `all`)."""
    name, _, opts = spec.strip().partition(":")
    name = name.strip()
    if name in PRESETS and not opts:
        return [default_rule(n) for n in PRESETS[name]]
    if name not in RULES:
        known = ", ".join([*RULES, *PRESETS])
        raise UsageError(f"unknown --rule {name!r}; choose one of {known}")
    lo, hi, _ = RULES[name]
    for item in filter(None, (o.strip() for o in opts.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in ("min", "max"):
            raise UsageError(f"--rule {spec!r}: give bounds as {name}:min=A,max=B, not {item!r}")
        if value.strip().lower() == "none":
            bound = None
        else:
            try:
                bound = float(value)
            except ValueError:
                raise UsageError(f"--rule {spec!r}: {key} must be a number or none, not {value!r}") from None
            if bound != bound or bound in (float("inf"), float("-inf")):
                raise UsageError(f"--rule {spec!r}: {key} must be a finite number, not {value!r}")
        lo, hi = (bound, hi) if key == "min" else (lo, bound)
    if lo is None and hi is None:
        raise UsageError(f"--rule {spec!r} has neither a min nor a max, so it would keep everything")
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--rule {spec!r}: min {lo:g} is above max {hi:g}, so it would remove everything")
    return [Rule(name, lo, hi)]


def default_rule(name: str) -> Rule:
    lo, hi, _ = RULES[name]
    return Rule(name, lo, hi)


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num.cast(pl.Float64) / den).otherwise(0.0)


_LINE_START = r"(?m)^"
_TEXT = pl.col(TEXT)
_WORDS = _TEXT.str.count_matches(r"\S+")
_LINES = _TEXT.str.count_matches("\n") + 1
_NONEMPTY_LINES = _TEXT.str.count_matches(r"(?m)^[^\S\n]*\S")
# Characters minus whitespace: whitespace is ~1/6 of the matches of \\S, so counting it is ~2x faster.
_NONSPACE = _TEXT.str.len_chars() - _TEXT.str.count_matches(r"\s")
_BULLET_CLASS = "[" + re.escape(BULLETS) + "]"
_PUNCT_CLASS = "[" + re.escape(TERMINAL_PUNCT) + "]"

# The measures that are plain string expressions of one document.
_EXPRESSIONS: dict[str, pl.Expr] = {
    "word_count": _WORDS,
    "mean_word_length": _ratio(_NONSPACE, _WORDS),
    "symbol_ratio": _ratio(_TEXT.str.count_matches(r"#|\.\.\.|…"), _WORDS),
    "bullet_lines": _ratio(_TEXT.str.count_matches(_LINE_START + r"[^\S\n]*" + _BULLET_CLASS), _LINES),
    "ellipsis_lines": _ratio(_TEXT.str.count_matches(r"(?m)(\.\.\.|…)[^\S\n]*$"), _LINES),
    "alpha_words": _ratio(_TEXT.str.count_matches(r"\S*\p{L}\S*"), _WORDS),
    "stop_words": _TEXT.str.count_matches(r"(?i)\b(?:" + "|".join(STOP_WORDS) + r")\b"),
    "punct_lines": _ratio(_TEXT.str.count_matches(r"(?m)" + _PUNCT_CLASS + r"[^\S\n]*$"), _NONEMPTY_LINES),
    "non_alpha_chars": _ratio(_TEXT.str.count_matches(r"[^\s\p{L}]"), _NONSPACE),
}


def _dup_lines(texts: pl.Series) -> pl.Series:
    """Per document: share of non-empty lines equal to an earlier line of the same document."""
    lines = (
        pl.DataFrame({"doc": pl.int_range(texts.len(), eager=True, dtype=pl.UInt32), "line": texts})
        .with_columns(pl.col("line").str.split("\n"))
        .explode("line")
        .filter(pl.col("line").str.contains(r"\S"))
    )
    per_doc = lines.group_by("doc").agg(total=pl.len(), distinct=pl.col("line").n_unique())
    return _per_doc(texts.len(), per_doc, (pl.col("total") - pl.col("distinct")) / pl.col("total"))


def _per_doc(n_docs: int, per_doc: pl.DataFrame, value: pl.Expr) -> pl.Series:
    docs = pl.DataFrame({"doc": pl.int_range(n_docs, eager=True, dtype=pl.UInt32)})
    return docs.join(per_doc.with_columns(v=value), on="doc", how="left").sort("doc")["v"].fill_null(0.0)


def _word_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(doc, hash) of every word of every document, in order: two flat arrays."""
    words = (
        pl.DataFrame({"doc": pl.int_range(texts.len(), eager=True, dtype=pl.UInt32), "w": texts})
        # Split on single spaces after collapsing whitespace runs: 4x faster than extract_all(\S+).
        .with_columns(pl.col("w").str.replace_all(r"\s+", " ").str.strip_chars(" ").str.split(" "))
        .explode("w")
        .filter(pl.col("w").str.len_bytes() > 0)
    )
    return words["doc"].to_numpy(), words["w"].hash(seed=0).to_numpy()


def _gram_runs(doc: np.ndarray, h: np.ndarray, n: int, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: word n-grams, distinct n-grams and the count of the most frequent one.

    An n-gram's hash mixes its words' hashes in order; grams that would run into the next document
    are dropped. One sort of (document, gram) keys packed in a uint64 (24 bits of document, 40 of the
    gram's hash: a collision inside one document of ~1,000 grams has odds ~1e-6) replaces a two-key
    group-by, which is 3-4x slower.
    """
    m = len(h) - n + 1
    if m <= 0:
        zero = np.zeros(n_docs, dtype=np.int64)
        return zero, zero, zero
    gram = h[:m].copy()
    for k in range(1, n):
        gram = gram * np.uint64(1_000_003) + h[k : k + m]
    same = doc[:m] == doc[n - 1 :]
    key = (doc[:m][same].astype(np.uint64) << np.uint64(40)) | (gram[same] >> np.uint64(24))
    key = pl.Series(key).sort().to_numpy()  # polars' parallel sort: ~10x numpy's on 17M keys
    if not len(key):
        zero = np.zeros(n_docs, dtype=np.int64)
        return zero, zero, zero
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    run_doc = (key[starts] >> np.uint64(40)).astype(np.int64)
    total = np.bincount(run_doc, weights=counts, minlength=n_docs).astype(np.int64)
    distinct = np.bincount(run_doc, minlength=n_docs)
    top = np.zeros(n_docs, dtype=np.int64)
    firsts = np.flatnonzero(np.r_[True, run_doc[1:] != run_doc[:-1]])
    top[run_doc[firsts]] = np.maximum.reduceat(counts, firsts)
    return total, distinct, top


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> pl.Series:
    return pl.Series(np.where(den > 0, num / np.maximum(den, 1), 0.0), dtype=pl.Float64)


def _dup_ngrams(words: tuple[np.ndarray, np.ndarray], n_docs: int) -> pl.Series:
    total, distinct, _ = _gram_runs(*words, DUP_NGRAM_N, n_docs)
    return _safe_ratio(total - distinct, total)


def _top_ngram(words: tuple[np.ndarray, np.ndarray], n_docs: int) -> pl.Series:
    total, _, top = _gram_runs(*words, TOP_NGRAM_N, n_docs)
    return _safe_ratio(top, total)


_NGRAM_RULES = {"dup_ngrams": _dup_ngrams, "top_ngram": _top_ngram}


def measure(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """One Float64 column per rule name: each document's measure."""
    exprs = [_EXPRESSIONS[n].cast(pl.Float64).alias(n) for n in names if n in _EXPRESSIONS]
    # Lazy, so the counts several rules share (words, lines) are computed once (common subexpressions).
    plain = frame.lazy().select(exprs).collect() if exprs else pl.DataFrame()
    texts = frame[TEXT]
    words = _word_hashes(texts) if any(n in _NGRAM_RULES for n in names) else None
    cols: dict[str, pl.Series] = {}
    for n in names:
        if n in _EXPRESSIONS:
            cols[n] = plain[n]
        elif n == "dup_lines":
            cols[n] = _dup_lines(texts).cast(pl.Float64)
        else:
            assert words is not None
            cols[n] = _NGRAM_RULES[n](words, texts.len())
    return pl.DataFrame(cols)


# -- the same definitions, one document at a time (the reference and the benchmark's baseline) -----

_WORD_RE = re.compile(r"\S+")
_STOP_RE = re.compile(r"\b(?:" + "|".join(STOP_WORDS) + r")\b", re.IGNORECASE)


def _r(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _ngram_stats(words: list[str], n: int) -> tuple[int, int, int]:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    return len(grams), len(counts), max(counts.values(), default=0)


def reference_metrics(text: str) -> dict[str, float]:
    """Every rule's measure of one document, in plain Python (the definitions above, spelled out)."""
    words = _WORD_RE.findall(text)
    lines = text.split("\n")
    nonempty = [ln for ln in lines if ln.strip()]
    nonspace = sum(len(w) for w in words)
    letters = sum(1 for w in words for ch in w if ch.isalpha())  # str.isalpha is exactly \p{L}
    total5, distinct5, _ = _ngram_stats(words, DUP_NGRAM_N)
    total2, _, top2 = _ngram_stats(words, TOP_NGRAM_N)
    return {
        "word_count": len(words),
        "mean_word_length": _r(nonspace, len(words)),
        "symbol_ratio": _r(text.count("#") + len(re.findall(r"\.\.\.|…", text)), len(words)),
        "bullet_lines": _r(sum(1 for ln in lines if ln.lstrip(" \t\r\f\v")[:1] in BULLETS and ln.strip()), len(lines)),
        "ellipsis_lines": _r(sum(1 for ln in lines if re.search(r"(\.\.\.|…)[^\S\n]*$", ln)), len(lines)),
        "alpha_words": _r(sum(1 for w in words if any(ch.isalpha() for ch in w)), len(words)),
        "stop_words": len(_STOP_RE.findall(text)),
        "punct_lines": _r(sum(1 for ln in nonempty if ln.rstrip()[-1:] in TERMINAL_PUNCT), len(nonempty)),
        "non_alpha_chars": _r(nonspace - letters, nonspace),
        "dup_lines": _r(len(nonempty) - len(set(nonempty)), len(nonempty)),
        "dup_ngrams": _r(total5 - distinct5, total5),
        "top_ngram": _r(top2, total2),
    }
