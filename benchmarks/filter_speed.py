"""Speed of `curate filter --rule all` at TinyStories scale (2.1M documents) against a per-document baseline.

The corpus is the real stories of ../shared/data repeated to --docs documents (unique ids), written
as a store version in parts of --part-docs rows, as ingest would. The timed step is the whole
`filter_dataset` call with every rule (read each part, measure, write kept rows and removed.parquet).
The baseline, timed in the same run, is the same definitions computed one document at a time in
Python (`rules.reference_metrics`, how datatrove's GopherQualityFilter works) on --baseline-docs
documents, scaled per document.

    python benchmarks/filter_speed.py                      # 2.1M documents
    python benchmarks/filter_speed.py --docs 200000        # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from datadiet.curate.filter.op import FilterConfig, filter_dataset
from datadiet.curate.filter.rules import reference_metrics
from datadiet.schema import ID, TEXT
from datadiet.store import PartWriter, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_stories import read_stories

FILES = ("tinystories-train-1.txt", "tinystories-train-2.txt", "tinystories-train-3.txt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2_100_000)
    ap.add_argument("--part-docs", type=int, default=100_000)
    ap.add_argument("--baseline-docs", type=int, default=20_000)
    args = ap.parse_args()
    stories = read_stories(FILES)
    print(f"{len(stories):,} real stories repeated to {args.docs:,} documents; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")

        def build(w: PartWriter) -> None:
            for lo in range(0, args.docs, args.part_docs):
                n = min(args.part_docs, args.docs - lo)
                texts = [stories[(lo + i) % len(stories)] for i in range(n)]
                w.write(pl.DataFrame({ID: [f"d{lo + i}" for i in range(n)], TEXT: texts}))

        t0 = time.perf_counter()
        ds = store.commit("big", operation="bench", params={"docs": args.docs}, parents=[], build=build).dataset
        chars = int(
            pl.scan_parquet([str(p) for p in ds.parts]).select(pl.col(TEXT).str.len_chars().sum()).collect().item()
        )
        print(
            f"wrote {ds.rows:,} documents ({chars / 1e9:.2f} G characters, {len(ds.parts)} parts) in {time.perf_counter() - t0:.0f} s"
        )

        cfg = FilterConfig.from_specs(rules=["all"])
        t0 = time.perf_counter()
        commit = filter_dataset(store, "big", cfg, name="big-f")
        ours = time.perf_counter() - t0
        stats = commit.dataset.manifest.stats
        print(f"filter --rule all: {ours:.1f} s, {args.docs / ours:,.0f} docs/s, removed {stats['removed']:,}")

        sample = stories * (args.baseline_docs // len(stories) + 1)
        t0 = time.perf_counter()
        for text in sample[: args.baseline_docs]:
            reference_metrics(text)
        base_per_doc = (time.perf_counter() - t0) / args.baseline_docs
        base = base_per_doc * args.docs
        print(
            f"baseline (per-document Python, {args.baseline_docs:,} docs timed): {1 / base_per_doc:,.0f} docs/s, ~{base:.0f} s for {args.docs:,}"
        )
        print(
            f"ratio: {base / ours:.1f}x faster than the baseline (measures only; ours also reads and writes); load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
