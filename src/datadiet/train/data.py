"""Token files: a dataset's documents encoded once into a flat, memory-mappable array of token ids.

`encode_to_file(texts, tok, path)` writes every document's ids followed by `<|endoftext|>` as raw
little-endian uint16 (vocabularies up to 65,535 ids) or uint32, and `load_tokens(path, dtype)` maps it
back without reading it into memory. Encoding uses `Tokenizer.encode_batch_fast` on batches of
documents, which splits each batch over the `tokenizers` Rust thread pool (all cores). The CLI caches
the file in the store under `tokens/`, keyed by (tokenizer, dataset version).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from datadiet.errors import InputError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import EOT
from datadiet.train.tokenizer import eot_id

# Documents per encode_batch call: large enough that the Rust pool's per-call overhead (~1 ms) is
# amortised over ~1M tokens, small enough that a batch's Encoding objects stay well under 1 GB.
BATCH_DOCS = 2048


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """uint16 when every id fits in 16 bits (half the bytes), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def _batches(texts: Iterable[str] | Iterable[Sequence[str]], size: int) -> Iterator[Sequence[str]]:
    """Re-group a stream of documents, or of document batches, into lists of about `size` documents."""
    buf: list[str] = []
    for item in texts:
        if isinstance(item, str):
            buf.append(item)
            if len(buf) >= size:
                yield buf
                buf = []
        else:
            if buf:
                yield buf
                buf = []
            yield item
    if buf:
        yield buf


def encode_to_file(
    texts: Iterable[str] | Iterable[Sequence[str]],
    tok: Tokenizer,
    path: Path,
    tracker: Tracker = NULL_TRACKER,
    eos_token: str = EOT,
) -> dict[str, Any]:
    """Encode documents into a raw token file, `<|endoftext|>` (or EOS_TOKEN) after each document.

    The file appears at `path` only when complete (written to a temporary name, then renamed).

    Args:
        texts: Documents, or batches (lists) of documents such as a Parquet column chunk.
        tok: The tokenizer; must have `<|endoftext|>`.
        path: Output file.
        tracker: Progress, counted in documents.
        eos_token: The token that ends each document.

    Returns:
        {"tokens": ids written, "documents": documents encoded, "dtype": "uint16" or "uint32"}.

    Raises:
        InputError: A document is not a string.
    """
    path = Path(path)
    dtype = token_dtype(tok.get_vocab_size())
    eot = eot_id(tok, eos_token)
    n_tokens = n_docs = 0
    tmp = path.with_name(f".{path.name}.tmp")
    total = len(texts) if isinstance(texts, Sequence) and all(isinstance(t, str) for t in texts[:1]) else None
    try:
        with tracker.task("Tokenizing", total=total) as task, tmp.open("wb") as f:
            for batch in _batches(texts, BATCH_DOCS):
                try:
                    encodings = tok.encode_batch_fast(batch, add_special_tokens=False)
                except TypeError as exc:
                    raise InputError(f"a document is not a string ({exc}); check the dataset's text column") from exc
                # One flat pass in C: each document's ids, then the separator.
                ids = np.fromiter(
                    chain.from_iterable(chain(e.ids, (eot,)) for e in encodings),
                    dtype=dtype,
                    count=sum(len(e.ids) for e in encodings) + len(encodings),
                )
                f.write(ids.tobytes())
                n_tokens += len(ids)
                n_docs += len(encodings)
                task.advance(len(encodings))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"tokens": n_tokens, "documents": n_docs, "dtype": dtype.name}


def load_tokens(path: Path, dtype: str | np.dtype[Any]) -> np.memmap[Any, np.dtype[Any]]:
    """Map a token file written by `encode_to_file` read-only.

    Args:
        path: The file.
        dtype: Its dtype as returned in the stats ("uint16" or "uint32").

    Raises:
        InputError: The file is missing, empty or its size is not a whole number of ids.
    """
    path = Path(path)
    dt = np.dtype(dtype)
    if not path.is_file():
        raise InputError(f"token file {path} does not exist; run the tokenize step again")
    size = path.stat().st_size
    if size == 0 or size % dt.itemsize:
        raise InputError(
            f"token file {path} has {size} bytes, not a whole number of {dt.name} ids; delete it and re-encode"
        )
    return np.memmap(path, dtype=dt, mode="r")
