"""`curate dedupe` on the local engine against the Ray engine (2 workers), on the same input.

    PYTHONPATH=src .venv/bin/python benchmarks/dedupe_ray.py [N] [--cpus 2] [--verify] [--workdir DIR]

Builds N documents (default 200,000) once in --workdir (default /tmp/datadiet-bench-ray): real
TinyStories stories from ../shared/data, each with 0-20% of its words replaced by words of other
stories, so some pairs are near duplicates (a few percent of edits) and most are not (J well
below 0.8 beyond ~5% edits). Then, in this process, the local engine (`workers=--cpus`) and the
Ray engine on a local cluster of --cpus CPUs (started before the clock runs) deduplicate it into
two stores; it checks that both give the same version, clusters and rows, and prints the
seconds of each, per stage, the ratio, and the sizes the cost model in docs/scaling.md uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from datadiet.curate.dedupe.minhash import MinhashConfig  # noqa: E402
from datadiet.curate.dedupe.op import dedupe  # noqa: E402
from datadiet.curate.dedupe.output import CLUSTERS_FILE  # noqa: E402
from datadiet.schema import ID, MAX_PART_ROWS, TEXT  # noqa: E402
from datadiet.store import PartWriter, Store  # noqa: E402
from shared_stories import read_stories  # noqa: E402

FILES = ("tinystories-train-1.txt", "tinystories-train-2.txt", "tinystories-valid-1.txt")


def build(store: Store, n: int) -> str:
    real = read_stories(FILES)
    vocab = sorted({w for s in real[:1000] for w in s.split()})
    rng = random.Random(n)

    def fill(writer: PartWriter) -> dict[str, Any]:
        for start in range(0, n, MAX_PART_ROWS):
            size = min(MAX_PART_ROWS, n - start)
            texts = []
            for _ in range(size):
                words = rng.choice(real).split(" ")
                for i in rng.sample(range(len(words)), int(len(words) * rng.uniform(0.0, 0.2))):
                    words[i] = rng.choice(vocab)
                texts.append(" ".join(words))
            writer.write(pl.DataFrame({ID: [f"b{start + i}" for i in range(size)], TEXT: texts}))
        return {}

    return store.commit(f"bench{n}", operation="bench", params={"n": n}, parents=[], build=fill).dataset.ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="?", type=int, default=200_000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--verify", action="store_true", help="dedupe --verify (exact Jaccard check of every pair)")
    ap.add_argument("--workdir", default="/tmp/datadiet-bench-ray")
    args = ap.parse_args()
    work = Path(args.workdir)
    local, remote = Store(work / "local"), Store(work / "ray")
    for s in (local, remote):  # inputs are kept between runs; outputs are rebuilt
        shutil.rmtree(s.root / "datasets" / f"bench{args.n}-out", ignore_errors=True)
    t0 = time.perf_counter()
    ref = build(local, args.n)
    assert build(remote, args.n) == ref
    print(f"input {ref}: {args.n:,} docs, built in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = MinhashConfig(verify=args.verify)
    bands, _ = cfg.bands_rows()

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    print(f"ray.init ({args.cpus} CPUs): {time.perf_counter() - t0:.1f} s (not counted)", flush=True)

    t0 = time.perf_counter()
    a = dedupe(local, ref, cfg, name=f"bench{args.n}-out", workers=args.cpus).dataset
    t_local = time.perf_counter() - t0
    print(f"local: {t_local:.1f} s {a.manifest.stats['seconds']}", flush=True)
    t0 = time.perf_counter()
    b = dedupe(remote, ref, cfg, name=f"bench{args.n}-out", engine="ray").dataset
    t_ray = time.perf_counter() - t0
    print(f"ray:   {t_ray:.1f} s {b.manifest.stats['seconds']}", flush=True)
    ray.shutdown()

    same = (
        a.ref == b.ref
        and a.read().equals(b.read())
        and a.manifest.files == b.manifest.files
        and pl.read_parquet(a.file(CLUSTERS_FILE)).equals(pl.read_parquet(b.file(CLUSTERS_FILE)))
    )
    s = a.manifest.stats
    print(
        f"identical: {same}; removed {s['removed']:,} ({s['removed_exact']:,} exact), "
        f"{s['candidate_pairs']:,} candidate pairs, {s['clusters']:,} clusters"
    )
    n = args.n
    print(
        f"sizes: signatures {n * cfg.num_perm * 4 / 1e6:.0f} MB, band rows {n * bands * 24 / 1e6:.0f} MB "
        f"(pos, band, key), band keys {n * bands * 8 / 1e6:.0f} MB"
    )
    print(f"per document: local {t_local / n * 1e6:.1f} us, ray {t_ray / n * 1e6:.1f} us")
    print(
        f"ratio ray / local: {t_ray / t_local:.2f}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    if not same:
        sys.exit("the engines disagree")


if __name__ == "__main__":
    main()
