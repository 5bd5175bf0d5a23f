"""Speed of `curate corrupt` at 2.1 million documents, against its previous kernels, a per-row Python baseline and `duplicate`.

Run from the project root::

    PYTHONPATH=src .venv/bin/python benchmarks/corrupt_speed.py                 # 2.1M docs
    PYTHONPATH=src .venv/bin/python benchmarks/corrupt_speed.py --docs 200000 --skip-store --kinds typos,shuffle

The corpus is the real TinyStories files of ../shared/data ($DATADIET_SHARED_DATA elsewhere),
about 5,000 stories of ~850 characters, repeated with an id suffix until it has --docs rows; `mix`
draws from the SMS corpus there. For every kind it prints, in the same run:

* `library`: `corrupt_rows`, the library's pure function on the in-memory frame (what the store
  path runs part by part), on every core, and `1 thread` the same with `workers=1` (typos and
  shuffle are the kinds that use threads);
* `before`: the same function as of git revision --before (the kernels before they were rewritten
  for speed; its `kernels.py` and `build.py` read with `git show`), on the same frame, with the
  check that it writes the same rows; ratio = before / library; skipped without git;
* `python`: the same corruption written the plain way, one Python loop step per document (and
  per letter or word inside it), with `random.Random`; it runs on the first --baseline documents
  and is scaled linearly to all of them; ratio = python / library;
* `duplicate --rate 0.5` (`duplicate_frame`) on the same frame, as the reference operation;
* `store`: `corrupt` end to end (read the version part by part, corrupt, write Parquet, manifest).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import polars as pl  # noqa: E402

from datadiet.curate.corrupt import build as corrupt_build  # noqa: E402
from datadiet.curate.corrupt.op import CorruptConfig, corrupt, corrupt_rows  # noqa: E402
from datadiet.curate.duplicate.inject import duplicate_frame  # noqa: E402
from datadiet.curate.duplicate.op import DuplicateConfig, duplicate  # noqa: E402
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


# The last commit before the typos and shuffle kernels were rewritten for speed (issue 14, session 2).
BEFORE = "85dd92d"


def load_before(rev: str) -> types.ModuleType | None:
    """corrupt's `build` module as of REV (with that revision's kernels), or None where git cannot show it."""
    tmp = Path(tempfile.mkdtemp(prefix="datadiet-corrupt-before-"))
    modules = {}
    try:
        for name in ("kernels", "build"):
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{rev}:src/datadiet/curate/corrupt/{name}.py"],
                capture_output=True,
                check=True,
                text=True,
            ).stdout
            path = tmp / f"before_{name}.py"
            path.write_text(text, encoding="utf-8")
            spec = importlib.util.spec_from_file_location(f"corrupt_before_{name}", path)
            assert spec is not None and spec.loader is not None
            modules[name] = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[name])
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"before: skipped ({exc})")
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Its build imported today's kernels by name: point it at its own.
    modules["build"].kernels = modules["kernels"]
    return modules["build"]


def corrupt_before(
    before: types.ModuleType, frame: pl.DataFrame, cfg: CorruptConfig, other: pl.DataFrame | None
) -> Any:
    """`corrupt_rows` as REV wrote it (its own plan and chunked build)."""
    plan = before.plan_rows(frame.height, other.height if other is not None else 0, cfg.kind, cfg.rate, cfg.seed)
    return before.corrupt_frame(frame, cfg, 0, plan, other, "OTHER" if other is not None else None)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2_100_000)
    parser.add_argument(
        "--baseline", type=int, default=20_000, help="documents the Python baseline corrupts (scaled up)"
    )
    parser.add_argument("--before", default=BEFORE, help="git revision whose corrupt build is the 'before' column")
    parser.add_argument("--kinds", default="typos,shuffle,truncate,mix", help="comma-separated kinds to time")
    parser.add_argument("--skip-store", action="store_true", help="time the pure functions only")
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {os.getloadavg()}, {os.cpu_count()} CPUs"
    )

    t_load, frame = timed(lambda: load_corpus(args.docs))
    sms = read_stories(SMS_FILE)
    other = pl.DataFrame({ID: [f"sms{i}" for i in range(len(sms))], TEXT: sms})
    print(
        f"corpus: {frame.height:,} docs, {frame[TEXT].str.len_bytes().sum() / 1e9:.2f} GB, "
        f"mean {frame[TEXT].str.len_chars().mean():.0f} chars, built in {t_load:.1f}s"
    )
    sample = frame[TEXT].head(args.baseline).to_list()
    scale = frame.height / len(sample)
    before = load_before(args.before)

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
    kinds = set(args.kinds.split(","))
    cases = [c for c in cases if c[1].kind in kinds]
    rows: list[tuple[str, float, float | None, float | None, float | None]] = []
    for label, cfg, base in cases:
        o = other if cfg.kind == "mix" else None
        # Warm up (imports, thread pool, first allocations) on a few blocks, for both versions.
        corrupt_rows(frame.head(4096), cfg, o)
        if before is not None:
            corrupt_before(before, frame.head(4096), cfg, o)
        t_lib, out = timed(lambda cfg=cfg, o=o: corrupt_rows(frame, cfg, o))
        assert out.height == frame.height
        t_one = None
        if cfg.kind in ("typos", "shuffle"):
            plan = corrupt_build.plan_rows(frame.height, 0, cfg.kind, cfg.rate, cfg.seed)
            t_one, _ = timed(lambda cfg=cfg, plan=plan: corrupt_build.corrupt_frame(frame, cfg, 0, plan, workers=1))
        t_before = None
        if before is not None:
            t_before, old = timed(lambda cfg=cfg, o=o: corrupt_before(before, frame, cfg, o))
            assert old.equals(out), f"{label}: the library's rows differ from those of {args.before}"
            del old
        del out
        t_base, _ = timed(base)
        rows.append((label, t_lib, t_one, t_before, t_base * scale))
    t_dup, _ = timed(lambda: duplicate_frame(frame, DuplicateConfig(rate=0.5, seed=1)))

    def cell(t: float | None, ref: float | None = None) -> str:
        if t is None:
            return f"{'-':>9} {'':>7}"
        return f"{t:9.2f} {t / ref:6.1f}x" if ref else f"{t:9.2f} {'':>7}"

    print(
        f"\n{'operation (library = every core)':38} {'library s':>9} {'1 thread s':>10} {'before s':>9} {'ratio':>7} "
        f"{'python s':>9} {'ratio':>7} {'/ duplicate':>11}"
    )
    for label, t_lib, t_one, t_before, t_base in rows:
        one = f"{t_one:10.2f}" if t_one is not None else f"{'-':>10}"
        print(f"{label:38} {t_lib:9.2f} {one} {cell(t_before, t_lib)} {cell(t_base, t_lib)} {t_lib / t_dup:10.1f}x")
    print(f"{'duplicate --rate 0.5 (reference)':38} {t_dup:9.2f}")
    print(
        "ratio = that column's time / library; python is scaled from --baseline documents; "
        "/ duplicate = library / duplicate's time on the same frame"
    )

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
        t, _ = timed(lambda: duplicate(store, "bench", DuplicateConfig(rate=0.5, seed=1)))
        print(f"{'duplicate --rate 0.5 (reference)':38} {t:10.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
