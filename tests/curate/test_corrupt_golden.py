"""Pins what `curate corrupt` writes for fixed seeds: rows, labels, stats, version ids and file hashes.

Written before the typos and shuffle kernels were rewritten for speed, and computed on the kernels
of that day (SCHEME 1): a faster kernel must give every byte of every row, every label and every
counter unchanged, or bump `op.SCHEME` and these literals in the same commit, saying why. The
corpus is made to reach the corners the kernels handle: documents across many blocks of 256 rows
and several chunks, empty and null texts, whitespace-only and one-word documents, runs of
letters that can swap, upper case, digits, tabs, CRLF, curly quotes and other non-ASCII text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datadiet.curate.corrupt import build as corrupt_build
from datadiet.curate.corrupt.build import Tally, corrupt_frame, plan_rows
from datadiet.curate.corrupt.op import CorruptConfig, corrupt, corrupt_rows
from datadiet.schema import CORRUPT_FRACTION, CORRUPT_FROM, CORRUPTION, ID, TEXT
from datadiet.store import PartWriter, Store

_PIECES = [
    "Tom", "had", "a", "red", "ball", "LILY", "ran", "to", "the", "park", "aa", "abba", "Zz", "café", "naïve",
    "über", "42", "x1y2", "'quoted'", "(brackets)", "—", "“Hi,”", "Dr.", "it’s", "e-mail", "I", "Oo",
]  # fmt: skip
_ENDS = [".", "!", "?", '."', ".’", "!”", "", ":"]
_GAPS = [" ", " ", " ", "  ", "\t", "\n", "\r\n", " \n\n"]


def varied(n: int, seed: int = 0) -> pl.DataFrame:
    """N documents of 0 to ~40 sentences in every shape the kernels meet, some empty and some null."""
    rng = np.random.default_rng(seed)
    texts: list[str | None] = []
    for i in range(n):
        if i % 97 == 5:
            texts.append(None)
            continue
        if i % 89 == 7:
            texts.append(["", " ", "\n\t ", "word", "A.", "é"][i % 6])
            continue
        parts = []
        if rng.random() < 0.1:
            parts.append(str(rng.choice(_GAPS)))  # a document that starts with whitespace
        for s in range(int(rng.integers(1, 40 if i % 13 == 0 else 8))):
            words = rng.choice(_PIECES, int(rng.integers(1, 12)))
            gaps = rng.choice(_GAPS, words.size)
            body = "".join(
                w + (g if j < words.size - 1 else "") for j, (w, g) in enumerate(zip(words, gaps, strict=True))
            )
            parts.append(body + str(rng.choice(_ENDS)))
            if s:
                parts.insert(-1, str(rng.choice(_GAPS)))
        if rng.random() < 0.1:
            parts.append(str(rng.choice(_GAPS)))  # ... or ends with it
        texts.append("".join(parts))
    return pl.DataFrame({ID: [f"v{i}" for i in range(n)], TEXT: texts}, schema={ID: pl.String, TEXT: pl.String})


def digest(frame: pl.DataFrame) -> str:
    """sha256 of the text, id and label columns, value by value (nulls distinct from empty strings)."""
    h = hashlib.sha256()
    for col in (ID, TEXT, CORRUPTION, CORRUPT_FROM):
        for value in frame.get_column(col).to_list():
            h.update(b"\x00N" if value is None else b"\x00S" + value.encode("utf-8"))
    h.update(frame.get_column(CORRUPT_FRACTION).to_numpy().astype("<f4").tobytes())
    return h.hexdigest()[:16]


CORPUS_ROWS = 1500

GOLDEN = {
    ("typos", 0.1, 1): (
        "01489350ef0b15cd",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "typos",
            "rate": 0.1,
            "rows_corrupted": 1404,
            "corrupted_share": 0.936,
            "unit": "letters",
            "letters_total": 135836,
            "letters_changed": 13460,
            "realised_rate": 0.09909007921316883,
        },
    ),
    ("typos", 0.5, 7): (
        "75e0e13d3df3217f",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "typos",
            "rate": 0.5,
            "rows_corrupted": 1459,
            "corrupted_share": 0.9726666666666667,
            "unit": "letters",
            "letters_total": 135836,
            "letters_changed": 68005,
            "realised_rate": 0.5006404782237404,
        },
    ),
    ("typos", 1.0, 2): (
        "b96d7d06b3e7e5fd",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "typos",
            "rate": 1.0,
            "rows_corrupted": 1466,
            "corrupted_share": 0.9773333333333334,
            "unit": "letters",
            "letters_total": 135836,
            "letters_changed": 135836,
            "realised_rate": 1.0,
        },
    ),
    ("shuffle", 0.5, 1): (
        "a3465f7c78c6e88e",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "shuffle",
            "rate": 0.5,
            "rows_corrupted": 1225,
            "corrupted_share": 0.8166666666666667,
            "unit": "words",
            "words_total": 46526,
            "words_changed": 11959,
            "realised_rate": 0.25703907492584793,
        },
    ),
    ("shuffle", 1.0, 4): (
        "4b749bd7a984e5c3",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "shuffle",
            "rate": 1.0,
            "rows_corrupted": 1385,
            "corrupted_share": 0.9233333333333333,
            "unit": "words",
            "words_total": 46526,
            "words_changed": 24190,
            "realised_rate": 0.5199243433778963,
        },
    ),
    ("shuffle", 0.05, 3): (
        "a9b707dd88934eed",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "shuffle",
            "rate": 0.05,
            "rows_corrupted": 340,
            "corrupted_share": 0.22666666666666666,
            "unit": "words",
            "words_total": 46526,
            "words_changed": 1244,
            "realised_rate": 0.026737738038945965,
        },
    ),
    ("truncate", 0.3, 1): (
        "b01bc69975a1335f",
        {
            "rows_in": 1500,
            "rows_out": 1500,
            "kind": "truncate",
            "rate": 0.3,
            "rows_corrupted": 431,
            "corrupted_share": 0.28733333333333333,
            "unit": "characters",
            "characters_total": 244203,
            "characters_changed": 38146,
            "realised_rate": 0.1562061072140801,
            "rows_too_short": 19,
        },
    ),
}


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    return varied(CORPUS_ROWS)


@pytest.mark.parametrize("key", list(GOLDEN), ids=[f"{k}-{r}-{s}" for k, r, s in GOLDEN])
def test_rows_and_counters_are_pinned(corpus: pl.DataFrame, key: tuple[str, float, int]) -> None:
    kind, rate, seed = key
    cfg = CorruptConfig(kind=kind, rate=rate, seed=seed)
    tally = Tally()
    out = corrupt_frame(corpus, cfg, 0, plan_rows(corpus.height, 0, kind, rate, seed), tally=tally)
    expected_digest, expected_stats = GOLDEN[key]
    assert (digest(out), tally.stats(cfg, None)) == (expected_digest, expected_stats)


@pytest.mark.parametrize("kind", ["typos", "shuffle"])
def test_small_chunks_give_the_pinned_rows(corpus: pl.DataFrame, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = CorruptConfig(kind=kind, rate=0.5, seed=7 if kind == "typos" else 1)
    monkeypatch.setattr(corrupt_build, "CHUNK_BYTES", 1)  # one block of 256 rows per chunk
    assert digest(corrupt_rows(corpus, cfg)) == GOLDEN[(kind, cfg.rate, cfg.seed)][0]


STORE_GOLDEN: dict[str, tuple[str, dict[str, str]]] = {
    "typos": (
        "g@d1763b03987198c8",
        {
            "part-00000.parquet": "f2f8bb47e61ecb598989b6e1cacdc6667dff315a72a7e89397c3ee3cd4af2c89",
            "part-00001.parquet": "21d68cde903bf063a866ddd23e5116307fc782e70d5f1176824a7dc8018023db",
            "part-00002.parquet": "565f315e16b3a00ade326623c80e9ce9c602d56d324149cd29f3b907d5c7c8b8",
        },
    ),
    "shuffle": (
        "g@82ca55e1785034da",
        {
            "part-00000.parquet": "e5008a10322439074b342ce8db7924edae4bcffd90bf37a27c28290253329cf8",
            "part-00001.parquet": "2576c697d504afa9a4585dc931cb3673f0e4b476ed7492f254242b1d6bcd0e18",
            "part-00002.parquet": "25810f453fcca0047fe2bd17c566c11daf1d3b6da9058336cba8772de2b4a5ff",
        },
    ),
}


@pytest.mark.parametrize("kind", list(STORE_GOLDEN))
def test_version_id_and_parquet_files_are_pinned(tmp_path: Path, corpus: pl.DataFrame, kind: str) -> None:
    store = Store(tmp_path / "st")

    def build(writer: PartWriter) -> None:
        for lo, size in ((0, 600), (600, 100), (700, 800)):
            writer.write(corpus.slice(lo, size))

    store.commit("g", operation="fixture", params={"golden": 1}, parents=[], build=build)
    commit = corrupt(store, "g", CorruptConfig(kind=kind, rate=0.3, seed=5))
    assert (commit.dataset.ref, commit.dataset.manifest.files) == STORE_GOLDEN[kind]
