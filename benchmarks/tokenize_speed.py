"""Tokenizing speed of `encode_to_file` against encoding one document at a time.

    PYTHONPATH=src .venv/bin/python benchmarks/tokenize_speed.py [--repeat 3]

Trains a byte-level BPE tokenizer (vocab 8192) on the TinyStories text in ../shared/data, then encodes
all of it (train and validation files, ~6,000 stories, ~1.3M tokens; `--repeat` copies make the batch
large enough to time) two ways: the baseline calls `tok.encode` per document and collects ids in a
Python list, written with numpy; datadiet's `encode_to_file` batches documents through
`encode_batch_fast` on the Rust thread pool. Prints tokens/s of each and the ratio. Both produce the
same bytes (checked).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from datadiet.schema import EOT
from datadiet.train.data import encode_to_file, token_dtype
from datadiet.train.tokenizer import eot_id, train_tokenizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FILES = ("tinystories-train-1.txt", "tinystories-train-2.txt", "tinystories-train-3.txt", "tinystories-valid-1.txt")


def read_docs(path: Path) -> list[str]:
    docs: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line == EOT:
            docs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="copies of the corpus to encode")
    args = parser.parse_args()
    docs = [d for name in FILES for d in read_docs(DATA / name)]
    t = time.perf_counter()
    tok = train_tokenizer(docs, 8192)
    print(
        f"{len(docs)} documents, {sum(map(len, docs)) / 1e6:.1f}M chars; tokenizer trained in {time.perf_counter() - t:.1f}s"
    )
    print(
        f"cores: {len(os.sched_getaffinity(0))}, TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset: parallel)')}"
    )
    corpus = docs * args.repeat
    eot, dtype = eot_id(tok), token_dtype(tok.get_vocab_size())
    with tempfile.TemporaryDirectory() as tmp:
        base_times, fast_times = [], []
        for _ in range(3):  # alternate, best of 3: other load on the machine hits both alike
            t = time.perf_counter()
            ids: list[int] = []
            for doc in corpus:
                ids.extend(tok.encode(doc, add_special_tokens=False).ids)
                ids.append(eot)
            np.array(ids, dtype=dtype).tofile(Path(tmp) / "base.bin")
            base_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            stats = encode_to_file(corpus, tok, Path(tmp) / "fast.bin")
            fast_times.append(time.perf_counter() - t)
        same = (Path(tmp) / "base.bin").read_bytes() == (Path(tmp) / "fast.bin").read_bytes()
    n = stats["tokens"]
    base, fast = n / min(base_times), n / min(fast_times)
    print(f"tokens: {n} ({stats['dtype']}), identical output: {same}")
    print(f"baseline (one document at a time): {base / 1e6:.2f}M tokens/s")
    print(f"encode_to_file (batched, Rust threads): {fast / 1e6:.2f}M tokens/s")
    print(f"ratio: {fast / base:.2f}x")


if __name__ == "__main__":
    main()
