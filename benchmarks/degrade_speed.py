"""Speed of `curate duplicate` and `curate subset` at 2.1 million documents, against a Python-loop baseline.

Run from the project root::

    PYTHONPATH=src .venv/bin/python benchmarks/degrade_speed.py            # 2.1M docs
    PYTHONPATH=src .venv/bin/python benchmarks/degrade_speed.py --docs 200000 --skip-store

The corpus is the real TinyStories files of ../shared/data (about 6,000 stories, ~850 characters
each) repeated with an id suffix until it has --docs rows. For every operation it prints:

* `frame`: the library's pure function (`duplicate_frame` / `subset_frame`) on the in-memory frame;
* `baseline`: a straightforward implementation with one Python loop step per row (and, for near
  copies, per word), producing the same kind of rows; ratio = baseline / frame;
* near copies once more with `workers=1` (one process) against the default (every core): wall and
  CPU seconds (workers included) and whether the rows are equal, as they must be;
* `store`: the library call end to end (`duplicate` / `subset`: read the version, compute, write
  Parquet parts and the manifest), the figure the <= 30 s requirement is about.

The near-copy baseline is slow (about 0.2 ms per copy), so it runs on the first --near-baseline
copies and is scaled linearly to all of them; the scaled figure is marked "(scaled)".
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from datadiet.curate.duplicate.inject import duplicate_frame, plan_duplication
from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
from datadiet.curate.subset.op import SubsetConfig, subset
from datadiet.curate.subset.select import subset_frame
from datadiet.runtime import cpu_count
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, EOT, ID, SOURCE_ID, TEXT, conform
from datadiet.store import PartWriter, Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_corpus(n_docs: int) -> pl.DataFrame:
    """The TinyStories files as documents, repeated with an id suffix up to n_docs rows."""
    docs: list[str] = []
    for path in sorted(DATA.glob("tinystories-*.txt")):
        current: list[str] = []
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line == EOT:
                docs.append("\n".join(current))
                current = []
            else:
                current.append(line)
    base = pl.DataFrame({ID: [f"s{i}" for i in range(len(docs))], TEXT: docs})
    reps = -(-n_docs // base.height)
    return pl.concat([base.with_columns(pl.col(ID) + f"-r{r}") for r in range(reps)]).head(n_docs)


# -- baselines: one Python step per row ---------------------------------------------------------------


def baseline_duplicate(frame: pl.DataFrame, cfg: DuplicateConfig) -> pl.DataFrame:
    """Overwrite (or insert) copies row by row in Python lists, then build the frame."""
    plan = plan_duplication(frame[ID], frame[COPY_INDEX], cfg)  # same slots, so the outputs are comparable
    ids, texts = frame[ID].to_list(), frame[TEXT].to_list()
    sources, ks, edits = list(ids), [0] * len(ids), [0.0] * len(ids)
    pool = [int(p) for p in plan.pool_pos]
    count = [0] * len(pool)
    new_rows = []
    for j in range(plan.copy_pool.size):
        member = int(plan.copy_pool[j])
        count[member] += 1
        src = pool[member]
        new_rows.append((int(plan.copy_pos[j]), f"{ids[src]}#dup{count[member]}", texts[src], ids[src], count[member]))
    if cfg.append:
        out_ids, out_texts, out_src, out_k = (
            [None] * plan.rows_out,
            [None] * plan.rows_out,
            [None] * plan.rows_out,
            [0] * plan.rows_out,
        )
        taken = [False] * plan.rows_out
        for pos, i, t, s, k in new_rows:
            out_ids[pos], out_texts[pos], out_src[pos], out_k[pos], taken[pos] = i, t, s, k, True
        r = 0
        for pos in range(plan.rows_out):
            if not taken[pos]:
                out_ids[pos], out_texts[pos], out_src[pos] = ids[r], texts[r], sources[r]
                r += 1
        ids, texts, sources, ks = out_ids, out_texts, out_src, out_k  # type: ignore[assignment]
        edits = [0.0] * plan.rows_out
    else:
        for pos, i, t, s, k in new_rows:
            ids[pos], texts[pos], sources[pos], ks[pos] = i, t, s, k
    return conform(pl.DataFrame({ID: ids, TEXT: texts, SOURCE_ID: sources, COPY_INDEX: ks, EDIT_FRACTION: edits}))


def baseline_near(texts: list[str], near: float, seed: int) -> list[tuple[str, float, float]]:
    """Edit each text word by word in Python and compute its 5-gram Jaccard with sets."""
    rng = random.Random(seed)
    vocab = sorted({w for t in texts[:1000] for w in t.split()})
    out = []
    for text in texts:
        words = text.split()
        m = int(near * len(words) + 0.5)
        chosen = set(rng.sample(range(len(words)), m))
        new: list[str] = []
        for i, w in enumerate(words):
            if i not in chosen:
                new.append(w)
                continue
            op = rng.randrange(3)
            if op == 0:
                new.append(rng.choice(vocab))
            elif op == 2:
                new.extend([rng.choice(vocab), w])
        a = {tuple(words[i : i + 5]) for i in range(max(len(words) - 4, 1))}
        b = {tuple(new[i : i + 5]) for i in range(max(len(new) - 4, 1))}
        out.append((" ".join(new), m / max(len(words), 1), len(a & b) / max(len(a | b), 1)))
    return out


def baseline_subset(frame: pl.DataFrame, cfg: SubsetConfig) -> pl.DataFrame:
    """Shuffle positions with Python's random, keep a prefix, filter row by row."""
    n = frame.height
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    assert cfg.fraction is not None
    keep = set(order[: max(1, int(cfg.fraction * n + 0.5))])
    ids, texts = frame[ID].to_list(), frame[TEXT].to_list()
    rows = [(ids[i], texts[i]) for i in range(n) if i in keep]
    return conform(pl.DataFrame(rows, schema={ID: pl.String, TEXT: pl.String}, orient="row"))


# -- timing ------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the near-copy workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2_100_000)
    parser.add_argument("--near-baseline", type=int, default=20_000, help="copies the near baseline edits (scaled up)")
    parser.add_argument("--skip-store", action="store_true", help="time the frame functions only")
    args = parser.parse_args()

    t_load, frame = timed(lambda: conform(load_corpus(args.docs)))
    chars = frame[TEXT].str.len_chars().mean()
    print(f"corpus: {frame.height:,} docs, mean {chars:.0f} chars, built in {t_load:.1f}s")
    rows: list[tuple[str, float, float | None, str]] = []

    cases: list[tuple[str, DuplicateConfig]] = [
        ("duplicate --rate 0.5", DuplicateConfig(rate=0.5, seed=1)),
        ("duplicate --rate 0.5 --copies 10", DuplicateConfig(rate=0.5, copies=10, seed=1)),
        ("duplicate --rate 0.5 --append", DuplicateConfig(rate=0.5, append=True, seed=1)),
    ]
    for label, cfg in cases:
        t_frame, (out, _) = timed(lambda cfg=cfg: duplicate_frame(frame, cfg))
        t_base, base = timed(lambda cfg=cfg: baseline_duplicate(frame, cfg))
        assert base.height == out.height and int((base[COPY_INDEX] > 0).sum()) == int((out[COPY_INDEX] > 0).sum())
        rows.append((label, t_frame, t_base, ""))
        del out, base

    near_cases: list[tuple[str, DuplicateConfig]] = [
        ("duplicate --rate 0.1 --near 0.1", DuplicateConfig(rate=0.1, near=0.1, seed=1)),
        ("duplicate --rate 0.5 --near 0.1", DuplicateConfig(rate=0.5, near=0.1, seed=1)),
    ]
    worker_rows: list[tuple[str, float, float, float, float, bool]] = []
    for label, cfg in near_cases:
        c0 = cpu_seconds()
        t_frame, (out, stats) = timed(lambda cfg=cfg: duplicate_frame(frame, cfg))
        c_all = cpu_seconds() - c0
        n_copies = stats["copies_injected"]
        source_text = frame.filter(pl.col(ID) == stats["pool_ids"][0])[TEXT][0]
        k = min(args.near_baseline, n_copies)
        t_base_k, _ = timed(lambda k=k, cfg=cfg, text=source_text: baseline_near([text] * k, cfg.near, 1))
        rows.append((label, t_frame, t_base_k * n_copies / max(k, 1), " (scaled)"))
        # The same call in one process: the rows must not depend on the number of workers.
        c0 = cpu_seconds()
        t_one, (one, _) = timed(partial(duplicate_frame, frame, cfg, workers=1))
        worker_rows.append((label, t_one, cpu_seconds() - c0, t_frame, c_all, one.equals(out)))
        del out, one

    sub_cfg = SubsetConfig(fraction=0.25, seed=1)
    t_frame, (sub, _) = timed(lambda: subset_frame(frame, sub_cfg))
    t_base, base_sub = timed(lambda: baseline_subset(frame, sub_cfg))
    assert base_sub.height == sub.height
    rows.append(("subset --fraction 0.25", t_frame, t_base, ""))
    del sub, base_sub

    print(f"\n{'operation':38} {'frame s':>9} {'baseline s':>12} {'ratio':>7}")
    for label, t_f, t_b, note in rows:
        ratio = f"{t_b / t_f:6.1f}x" if t_b else "   -"
        print(f"{label:38} {t_f:9.2f} {t_b or 0:12.2f} {ratio}{note}")

    print(f"\nnear copies: one process vs every core ({cpu_count()} workers); CPU s include the workers'")
    print(f"{'operation':38} {'1 wall s':>9} {'1 cpu s':>8} {'N wall s':>9} {'N cpu s':>8} {'speed-up':>8}  same rows")
    for label, t1, c1, tn, cn, same in worker_rows:
        print(f"{label:38} {t1:9.2f} {c1:8.2f} {tn:9.2f} {cn:8.2f} {t1 / tn:7.2f}x  {same}")

    if args.skip_store:
        return
    root = Path(tempfile.mkdtemp(prefix="datadiet-degrade-"))
    try:
        store = Store(root)

        def build(writer: PartWriter) -> dict[str, Any]:
            writer.write(frame)
            return {}

        t_seed, commit = timed(
            lambda: store.commit("bench", operation="fixture", params={"docs": args.docs}, parents=[], build=build)
        )
        ref = commit.dataset.ref
        print(f"\nstore end to end (read + compute + write Parquet + manifest); seeding the store took {t_seed:.1f}s")
        print(f"{'operation':38} {'store s':>9}")
        for label, cfg in [*cases, *near_cases]:
            t, _ = timed(lambda cfg=cfg: duplicate(store, ref, cfg, name="dup"))
            print(f"{label:38} {t:9.2f}")
        t, _ = timed(lambda: subset(store, ref, sub_cfg, name="sub"))
        print(f"{'subset --fraction 0.25':38} {t:9.2f}")
        t, _ = timed(lambda: subset(store, ref, SubsetConfig(fraction=0.9, seed=1), name="sub"))
        print(f"{'subset --fraction 0.9':38} {t:9.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
