"""Token files: exact contents, dtype and size, batch input and memory mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datadiet.errors import InputError
from datadiet.train.data import encode_to_file, load_tokens, token_dtype
from datadiet.train.tokenizer import train_tokenizer

DOCS = ["One day, a girl found a needle.", "The dog ran home.", "", "Café ☕ time!"] * 10


def test_encode_to_file_contents(tmp_path: Path) -> None:
    tok = train_tokenizer(DOCS, 300)
    path = tmp_path / "tokens.bin"
    stats = encode_to_file(DOCS, tok, path)
    expected = [i for d in DOCS for i in [*tok.encode(d, add_special_tokens=False).ids, 0]]
    assert stats == {"tokens": len(expected), "documents": 40, "dtype": "uint16"}
    assert path.stat().st_size == 2 * len(expected)
    tokens = load_tokens(path, stats["dtype"])
    assert isinstance(tokens, np.memmap)
    assert tokens.dtype == np.uint16
    assert tokens.tolist() == expected
    assert tok.decode(tokens[: expected.index(0)].tolist()) == DOCS[0]
    assert list(tmp_path.iterdir()) == [path]


def test_batches_give_the_same_file(tmp_path: Path) -> None:
    tok = train_tokenizer(DOCS, 300)
    flat = encode_to_file(iter(DOCS), tok, tmp_path / "flat.bin")
    batched = encode_to_file([DOCS[:7], DOCS[7:]], tok, tmp_path / "batched.bin")
    assert flat == batched
    assert (tmp_path / "flat.bin").read_bytes() == (tmp_path / "batched.bin").read_bytes()


def test_token_dtype() -> None:
    assert token_dtype(8192) == np.uint16
    assert token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.uint32
    assert token_dtype(100_277) == np.uint32


def test_non_string_document(tmp_path: Path) -> None:
    tok = train_tokenizer(DOCS, 300)
    with pytest.raises(InputError, match="a document is not a string"):
        not_text: list[Any] = ["ok", None]
        encode_to_file([not_text], tok, tmp_path / "t.bin")
    assert list(tmp_path.iterdir()) == []


def test_load_tokens_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_tokens(tmp_path / "missing.bin", "uint16")
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(InputError, match="3 bytes, not a whole number of uint16 ids"):
        load_tokens(tmp_path / "odd.bin", "uint16")
