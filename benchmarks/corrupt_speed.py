"""Speed of `curate corrupt` at 2.1 million documents, against a per-row Python baseline and `duplicate`.

Run from the project root::

    PYTHONPATH=src .venv/bin/python benchmarks/corrupt_speed.py                 # 2.1M docs
    PYTHONPATH=src .venv/bin/python benchmarks/corrupt_speed.py --docs 200000 --skip-store

The corpus is the real TinyStories files of ../shared/data ($DATADIET_SHARED_DATA elsewhere),
about 5,000 stories of ~850 characters, repeated with an id suffix until it has --docs rows; `mix`
draws from the SMS corpus there. For every kind it prints, in the same run:

* `library`: `corrupt_rows`, the library's pure function on the in-memory frame (what the store
  path runs part by part);
* `baseline`: the same corruption written the plain way, one Python loop step per document (and
  per letter or word inside it), with `random.Random`; it runs on the first --baseline documents
  and is scaled linearly to all of them (marked "(scaled)"); ratio = baseline / library;
* `duplicate --rate 0.5` (`duplicate_frame`) on the same frame, as the reference operation;
* `store`: `corrupt` end to end (read the version part by part, corrupt, write Parquet, manifest).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import polars as pl  # noqa: E402

from datadiet.curate.corrupt.op import CorruptConfig, corrupt, corrupt_rows  # noqa: E402
from datadiet.curate.duplicate.inject import duplicate_frame  # noqa: E402
from datadiet.curate.duplicate.op import DuplicateConfig  # noqa: E402
from datadiet.schema import ID, TEXT, conform  # noqa: E402
from datadiet.store import PartWriter, Store  # noqa: E402
from shared_stories import read_stories  # noqa: E402

STORY_FILES = ("tinystories-train-1.txt", "tinystories-train-2.txt", "tinystories-train-3.txt")
SMS_FILE = ("sms-spam-collection-1.txt",)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def load_corpus(n_docs: int) -> pl.DataFrame:
    docs = read_stories(STORY_FILES)
    base = pl.DataFrame({ID: [f"s{i}" for i in range(len(docs))], TEXT: docs})
    reps = -(-n_docs // base.height)
    return conform(pl.concat([base.with_columns(pl.col(ID) + f"-r{r}") for r in range(reps)]).head(n_docs))


# -- baselines: one Python step per document, letter or word -----------------------------------------


def baseline_typos(texts: list[str], rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for text in texts:
        chars: list[str] = []
        for ch in text:
            if ch.isascii() and ch.isalpha() and rng.random() < rate:
                op = rng.randrange(3)
                if op == 0:
                    chars.append(rng.choice(letters))
                elif op == 2:
                    chars.extend([rng.choice(letters), ch])
            else:
                chars.append(ch)
        out.append("".join(chars))
    return out


def baseline_shuffle(texts: list[str], rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in texts:
        sentences = []
        for sentence in _SENTENCE.split(text):
            words = sentence.split()
            if rng.random() < rate:
                rng.shuffle(words)
            sentences.append(" ".join(words))
        out.append(" ".join(sentences))
    return out


def baseline_truncate(texts: list[str], rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in texts:
        words = text.split()
        if rng.random() < rate and len(words) >= 2:
            text = " ".join(words[: rng.randint(1, len(words) - 1)])
        out.append(text)
    return out


def baseline_mix(texts: list[str], rate: float, seed: int, other: list[str]) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(other) if rng.random() < rate else t for t in texts]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2_100_000)
    parser.add_argument("--baseline", type=int, default=20_000, help="documents the baseline corrupts (scaled up)")
    parser.add_argument("--skip-store", action="store_true", help="time the pure functions only")
    args = parser.parse_args()

    t_load, frame = timed(lambda: load_corpus(args.docs))
    sms = read_stories(SMS_FILE)
    other = pl.DataFrame({ID: [f"sms{i}" for i in range(len(sms))], TEXT: sms})
    print(
        f"corpus: {frame.height:,} docs, mean {frame[TEXT].str.len_chars().mean():.0f} chars, built in {t_load:.1f}s"
    )
    sample = frame[TEXT].head(args.baseline).to_list()
    scale = frame.height / len(sample)

    cases: list[tuple[str, CorruptConfig, Callable[[], Any]]] = [
        ("corrupt --kind typos --rate 0.1", CorruptConfig("typos", 0.1, 1), lambda: baseline_typos(sample, 0.1, 1)),
        (
            "corrupt --kind shuffle --rate 0.5",
            CorruptConfig("shuffle", 0.5, 1),
            lambda: baseline_shuffle(sample, 0.5, 1),
        ),
        (
            "corrupt --kind truncate --rate 0.3",
            CorruptConfig("truncate", 0.3, 1),
            lambda: baseline_truncate(sample, 0.3, 1),
        ),
        ("corrupt --kind mix --rate 0.3", CorruptConfig("mix", 0.3, 1), lambda: baseline_mix(sample, 0.3, 1, sms)),
    ]
    rows: list[tuple[str, float, float | None]] = []
    for label, cfg, base in cases:
        t_lib, out = timed(lambda cfg=cfg: corrupt_rows(frame, cfg, other if cfg.kind == "mix" else None))
        assert out.height == frame.height
        del out
        t_base, _ = timed(base)
        rows.append((label, t_lib, t_base * scale))
    t_dup, _ = timed(lambda: duplicate_frame(frame, DuplicateConfig(rate=0.5, seed=1)))
    rows.append(("duplicate --rate 0.5 (reference)", t_dup, None))

    print(f"\n{'operation':38} {'library s':>10} {'baseline s':>11} {'ratio':>7}")
    for label, t_lib, t_base in rows:
        ratio = f"{t_base / t_lib:6.1f}x" if t_base else "     -"
        base = f"{t_base:11.1f}" if t_base else f"{'-':>11}"
        print(f"{label:38} {t_lib:10.2f} {base} {ratio}{' (scaled)' if t_base else ''}")
    print(f"typos / duplicate: {rows[0][1] / t_dup:.2f}x the time of duplicate on the same frame")

    if args.skip_store:
        return
    root = Path(tempfile.mkdtemp(prefix="datadiet-corrupt-"))
    try:
        store = Store(root)

        def build(writer: PartWriter) -> dict[str, Any]:
            writer.write(frame)
            return {}

        store.commit("bench", operation="fixture", params={"docs": args.docs}, parents=[], build=build)
        store.commit("sms", operation="fixture", params={}, parents=[], build=lambda w: w.write(conform(other)))
        print(f"\n{'store end to end':38} {'s':>10}")
        for label, cfg, _ in cases:
            t, _ = timed(lambda cfg=cfg: corrupt(store, "bench", cfg, other="sms" if cfg.kind == "mix" else None))
            print(f"{label:38} {t:10.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
