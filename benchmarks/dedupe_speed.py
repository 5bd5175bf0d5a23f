"""Speed and memory of `curate dedupe` against datasketch used the straightforward way, on the same input.

    PYTHONPATH=src .venv/bin/python benchmarks/dedupe_speed.py [N ...] [--baseline-max N] [--workdir DIR]

For each N (default 200000) it builds, once, a dataset of N documents in a benchmark store under
--workdir (default /tmp/datadiet-bench): 90% stories of the built-in corpus (which has 3% near
copies of its own) and 10% real TinyStories stories from ../shared/data with light random word
edits (0-5% of words replaced), so there are exact and near duplicates of realistic length
(~850 characters). Then, each in a fresh process so peak memory is its own:

- ours: `dedupe(store, REF, MinhashConfig())` - read the version, write the new one and clusters.parquet;
- baseline (only for N <= --baseline-max, default 200000): read the same Parquet, datasketch
  `MinHash.bulk` over the same shingles (default sha1 hash), `MinHashLSH` with the same 16 bands x
  8 rows, insert all then query each, keep pairs with estimated Jaccard >= 0.8, union-find in
  Python, keep the first of each cluster, write the kept rows to Parquet.

Prints seconds, documents removed and peak RSS (main process; and the largest worker, of which
there are as many as cores) and the speed ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from datadiet.curate.corpus.generate import generate_stories  # noqa: E402
from datadiet.schema import ID, MAX_PART_ROWS, TEXT  # noqa: E402
from datadiet.store import PartWriter, Store  # noqa: E402
from shared_stories import read_stories  # noqa: E402

REAL_FILES = (
    "tinystories-train-1.txt",
    "tinystories-train-2.txt",
    "tinystories-train-3.txt",
    "tinystories-valid-1.txt",
)
REAL_SHARE = 0.10


def edited(rng: random.Random, text: str, vocab: list[str]) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(len(words) * rng.uniform(0.0, 0.05))):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def build_dataset(store: Store, n: int) -> str:
    name = f"bench{n}"
    existing = store.versions(name)
    if existing:
        return existing[-1].ref
    real = read_stories(REAL_FILES, required=False)
    vocab = sorted({w for s in real[:500] for w in s.split()})
    rng = random.Random(n)

    def build(writer: PartWriter) -> dict[str, Any]:
        done = 0
        chunk_no = 0
        while done < n:
            size = min(MAX_PART_ROWS, n - done)
            n_real = int(size * REAL_SHARE) if real else 0
            texts = generate_stories(size - n_real, seed=chunk_no)
            texts += [edited(rng, rng.choice(real), vocab) for _ in range(n_real)]
            rng.shuffle(texts)
            ids = [f"b{done + i}" for i in range(size)]
            writer.write(pl.DataFrame({ID: ids, TEXT: texts}))
            done += size
            chunk_no += 1
        return {}

    t0 = time.perf_counter()
    ref = store.commit(name, operation="bench", params={"n": n}, parents=[], build=build).dataset.ref
    print(f"built {ref} ({n} docs) in {time.perf_counter() - t0:.1f} s", flush=True)
    return ref


def _peak() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rss_main_gb": me.ru_maxrss / 2**20,
        "rss_worker_gb": kids.ru_maxrss / 2**20,
        # CPU seconds of the process and its workers: less sensitive than wall time to other jobs
        # sharing the machine (the 2.1M target is wall time; CPU / 2 cores is its floor).
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    }


def run_ours(store_root: str, ref: str) -> dict[str, Any]:
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.dedupe.op import dedupe

    store = Store(store_root)
    t0 = time.perf_counter()
    commit = dedupe(store, ref, MinhashConfig(), name=f"out-{uuid.uuid4().hex[:8]}")
    seconds = time.perf_counter() - t0
    stats = commit.dataset.manifest.stats
    return {"seconds": seconds, "removed": stats["removed"], "stages": stats["seconds"], **_peak()}


def run_baseline(store_root: str, ref: str, out_dir: str) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    from datadiet.curate.dedupe.normalize import shingles

    t0 = time.perf_counter()
    frame = Store(store_root).resolve(ref).read()
    texts = frame[TEXT].to_list()
    sets = ([s.encode("utf-8") for s in shingles(t, 5)] for t in texts)
    mhs = MinHash.bulk(sets, num_perm=128, seed=1)
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j != i and m.jaccard(mhs[j]) >= 0.8:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    keep = [find(i) == i for i in range(len(texts))]
    frame.filter(pl.Series(keep)).write_parquet(Path(out_dir) / "baseline.parquet", compression="zstd")
    return {"seconds": time.perf_counter() - t0, "removed": len(texts) - sum(keep), **_peak()}


def in_subprocess(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[200_000])
    parser.add_argument("--baseline-max", type=int, default=200_000)
    parser.add_argument("--workdir", default="/tmp/datadiet-bench")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = run_ours(*rest) if kind == "ours" else run_baseline(*rest)
        print(json.dumps(result))
        return
    store = Store(Path(args.workdir) / "store")
    print(
        f"{'docs':>9} {'ours s':>7} {'CPU s':>7} {'removed':>8} {'RSS main':>9} {'RSS wkr':>8}"
        f" {'base s':>7} {'CPU s':>7} {'removed':>8} {'RSS':>6} {'ratio':>6}"
    )
    for n in args.sizes:
        ref = build_dataset(store, n)
        ours = in_subprocess("--child", "ours", str(store.root), ref)
        line = (
            f"{n:>9} {ours['seconds']:>7.1f} {ours['cpu_s']:>7.1f} {ours['removed']:>8}"
            f" {ours['rss_main_gb']:>8.2f}G {ours['rss_worker_gb']:>7.2f}G"
        )
        if n <= args.baseline_max:
            base = in_subprocess("--child", "baseline", str(store.root), ref, args.workdir)
            ratio = base["seconds"] / ours["seconds"]
            line += (
                f" {base['seconds']:>7.1f} {base['cpu_s']:>7.1f} {base['removed']:>8}"
                f" {base['rss_main_gb']:>5.2f}G {ratio:>5.1f}x"
            )
        print(line, flush=True)
        print(f"          stages (s): {ours['stages']}", flush=True)


if __name__ == "__main__":
    main()
