"""Speed of `dataset_stats` against a straightforward pure-Python implementation, on the same documents.

    PYTHONPATH=src .venv/bin/python benchmarks/stats_speed.py [--docs 2100000] [--baseline-docs 20000] [--no-near-dup]
    PYTHONPATH=src .venv/bin/python benchmarks/stats_speed.py --docs 300000 --previous 44dc1dc

Builds N documents (default 2.1 million, the size of the study's TinyStories) from the real
stories in ../shared/data: each is a randomly chosen story with 0-3 words replaced by other words
of the same corpus, so there are exact and near duplicates at realistic length (~850 characters).
The frame is cached under /tmp by N. Then times:

- ours: `dataset_stats(frame)` on all N documents (near duplicates included unless --no-near-dup);
- baseline: the same statistics one document at a time in Python (`normalize`, `collections.Counter`,
  sets of n-gram tuples, zlib over the same sample rule, datasketch `MinHash` + `MinHashLSH` with the
  same bands and rows, union-find) on the first --baseline-docs documents.

Prints both rates (documents per second) and their ratio, and whether ours meets the target of
2.1 million documents in 120 s on this machine.

With --previous REV it instead compares against `src/datadiet/eval/stats.py` as of git revision
REV (read with `git show`, nothing in the tree changes): each implementation runs on the same
frame in a fresh child process, and the benchmark prints CPU seconds (the child and its worker
processes), wall seconds, the peak resident memory of the child's whole process tree (sampled
every 0.1 s), the CPU ratio previous / ours and whether every statistic agrees. CPU seconds and
the ratio are what to judge by on a machine other jobs load; wall time is printed too.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from datadiet.curate.dedupe.minhash import MinhashConfig  # noqa: E402
from datadiet.curate.dedupe.normalize import normalize  # noqa: E402
from datadiet.eval.stats.compute import COMPRESSION_SAMPLE_BYTES, dataset_stats  # noqa: E402
from shared_stories import read_stories  # noqa: E402

FILES = ("tinystories-train-1.txt", "tinystories-train-2.txt", "tinystories-train-3.txt", "tinystories-valid-1.txt")
TARGET_DOCS = 2_100_000
TARGET_SECONDS = 120.0


def build(n: int, seed: int = 0) -> pl.DataFrame:
    cache = Path(f"/tmp/datadiet-stats-bench-{n}-{seed}.parquet")
    if cache.is_file():
        return pl.read_parquet(cache)
    rng = random.Random(seed)
    stories = [s.split(" ") for s in read_stories(FILES)]
    vocab = sorted({w for s in stories[:500] for w in s})
    texts = []
    for _ in range(n):
        words = list(rng.choice(stories))
        for _ in range(rng.randint(0, 3)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        texts.append(" ".join(words))
    frame = pl.DataFrame({"text": texts})
    frame.write_parquet(cache)
    return frame


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def baseline(texts: list[str], threshold: float = 0.8) -> dict[str, object]:
    from datasketch import MinHash, MinHashLSH

    n = len(texts)
    norms = [normalize(t) for t in texts]
    words = [s.split(" ") if s else [] for s in norms]
    first: dict[str, int] = {}
    roots = [first.setdefault(s, i) for i, s in enumerate(norms)]
    exact_share = sum(r != i for i, r in enumerate(roots)) / n
    uni: collections.Counter[str] = collections.Counter()
    grams: dict[int, set[tuple[str, ...]]] = {2: set(), 4: set()}
    totals = {2: 0, 4: 0}
    ttrs = []
    for ws in words:
        uni.update(ws)
        for k in (2, 4):
            g = [tuple(ws[i : i + k]) for i in range(len(ws) - k + 1)]
            grams[k].update(g)
            totals[k] += len(g)
        if ws:
            ttrs.append(len(set(ws)) / len(ws))
    total = sum(uni.values())
    entropy = -sum(c / total * math.log2(c / total) for c in uni.values())
    raw_texts = texts
    size = sum(len(t.encode()) for t in texts)
    if size > COMPRESSION_SAMPLE_BYTES:
        raw_texts = texts[:: math.ceil(size / COMPRESSION_SAMPLE_BYTES)]
    raw = "\n".join(raw_texts).encode()
    ratio = len(zlib.compress(raw, 6)) / len(raw)
    cfg = MinhashConfig(threshold=threshold)
    bands, rows = cfg.bands_rows()
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(bands, rows))
    sigs = {}
    for i, ws in enumerate(words):
        if roots[i] != i:
            continue
        m = MinHash(num_perm=cfg.num_perm, seed=0)
        sh = [" ".join(ws[j : j + 5]) for j in range(max(len(ws) - 4, 1))] if ws else []
        m.update_batch([s.encode() for s in sh])
        sigs[i] = m
        lsh.insert(i, m)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, r in enumerate(roots):
        parent[find(i)] = find(r)
    for i, m in sigs.items():
        for j in lsh.query(m):
            if j != i and m.jaccard(sigs[j]) >= threshold:
                parent[find(i)] = find(j)
    comp = collections.Counter(find(i) for i in range(n))
    return {
        "exact_duplicate_share": exact_share,
        "near_duplicate_share": (n - len(comp)) / n,
        "largest_cluster_share": max(comp.values()) / n,
        "distinct_1gram_ratio": len(uni) / total,
        "distinct_2gram_ratio": len(grams[2]) / totals[2],
        "distinct_4gram_ratio": len(grams[4]) / totals[4],
        "unigram_entropy_bits": entropy,
        "compression_ratio": ratio,
        "median_chars": statistics.median(len(t) for t in texts),
        "type_token_ratio": sum(ttrs) / len(ttrs),
    }


PREVIOUS_MODULE = "datadiet_stats_previous"


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it has gone)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total


def _child(impl: str, docs: int, near_dup: bool) -> None:
    """Run one implementation on the cached frame and print its statistics and CPU seconds as JSON."""
    frame = build(docs)
    if impl == "ours":
        func = dataset_stats
    else:
        spec = importlib.util.spec_from_file_location(PREVIOUS_MODULE, impl)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PREVIOUS_MODULE] = module
        spec.loader.exec_module(module)
        func = module.dataset_stats
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    out = func(frame, near_dup=near_dup)
    print(json.dumps({"cpu": _cpu_seconds() - cpu0, "wall": time.perf_counter() - t0, "stats": out}))


def _measure(impl: str, docs: int, near_dup: bool, pythonpath: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--docs", str(docs), "--child", impl]
    if not near_dup:
        args.append("--no-near-dup")
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{impl} failed with exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss"] = peak
    return result


def compare_previous(rev: str, docs: int, near_dup: bool) -> None:
    """Time the implementation at git revision `rev` and ours, each in a fresh process, on the same frame."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/datadiet/eval/stats.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    frame = build(docs)
    print(f"{frame.height:,} documents, {int(frame['text'].str.len_bytes().sum()) / 1e6:.0f} MB of text")
    del frame
    with tempfile.TemporaryDirectory(prefix="datadiet-stats-prev-") as tmp:
        path = Path(tmp) / f"{PREVIOUS_MODULE}.py"
        path.write_text(source)
        # The previous version's spawned signing workers import it by name, so its folder is on the path.
        pythonpath = os.pathsep.join([tmp, str(ROOT / "src")])
        results = {}
        for name, impl in ((f"previous ({rev})", str(path)), ("ours", "ours")):
            load0 = os.getloadavg()[0]
            r = _measure(impl, docs, near_dup, pythonpath)
            results[name] = r
            print(
                f"{name:<20} CPU {r['cpu']:7.1f} s   wall {r['wall']:7.1f} s   peak RSS {r['peak_rss'] / 2**30:5.2f} GiB"
                f"   (load average {load0:.1f} -> {os.getloadavg()[0]:.1f})"
            )
    prev, ours = results.values()
    print(
        f"CPU ratio previous / ours: {prev['cpu'] / ours['cpu']:.2f}x; memory ratio {prev['peak_rss'] / ours['peak_rss']:.1f}x"
    )
    differ = [
        k
        for k in ours["stats"]
        if ours["stats"][k] != prev["stats"][k]
        and not (
            isinstance(ours["stats"][k], float) and math.isclose(ours["stats"][k], prev["stats"][k], rel_tol=1e-12)
        )
    ]
    print("statistics identical" if not differ else f"statistics DIFFER: {differ}")
    for key in differ:
        print(f"  {key}: previous {prev['stats'][key]!r} ours {ours['stats'][key]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=TARGET_DOCS)
    parser.add_argument("--baseline-docs", type=int, default=20_000)
    parser.add_argument("--no-near-dup", action="store_true")
    parser.add_argument("--previous", metavar="REV", help="compare with stats.py at this git revision instead")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.docs, not args.no_near_dup)
        return
    if args.previous:
        compare_previous(args.previous, args.docs, not args.no_near_dup)
        return

    t0 = time.perf_counter()
    frame = build(args.docs)
    print(
        f"built/loaded {frame.height:,} documents, {int(frame['text'].str.len_bytes().sum()) / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s"
    )

    cpu0 = _cpu_seconds()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    ours = dataset_stats(frame, near_dup=not args.no_near_dup)
    ours_s = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    print(f"ours:     {args.docs:>10,} docs in {ours_s:7.1f} s = {args.docs / ours_s:>10,.0f} docs/s")
    # Wall time depends on what else runs; CPU seconds (this process and its workers) do not, and
    # CPU / cores is the wall time an otherwise idle machine would need at perfect parallelism.
    print(
        f"          CPU {cpu:.1f} s (this process + workers) = {cpu / ours_s:.2f} cores busy on average; "
        f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    sub = frame["text"].head(args.baseline_docs).to_list()
    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    base = baseline(sub)
    base_s = time.perf_counter() - t0
    print(f"          baseline CPU {_cpu_seconds() - cpu0:.1f} s")
    print(f"baseline: {len(sub):>10,} docs in {base_s:7.1f} s = {len(sub) / base_s:>10,.0f} docs/s")
    print(f"speed ratio (docs/s, ours / baseline): {(args.docs / ours_s) / (len(sub) / base_s):.1f}x")
    if args.docs == TARGET_DOCS:
        verdict = "meets" if ours_s <= TARGET_SECONDS else "MISSES"
        print(f"target 2.1M docs in <= {TARGET_SECONDS:.0f} s: {verdict} ({ours_s:.1f} s)")

    # Same definitions: on the baseline's subset both must agree (MinHash differs only in hashing).
    check = dataset_stats(frame.head(args.baseline_docs), near_dup=not args.no_near_dup)
    print("agreement on the baseline subset (ours vs baseline):")
    for key, value in base.items():
        print(f"  {key:<24} {check[key]!s:<24.22} {value!s:.22}")
    print("full-size statistics:", {k: v for k, v in ours.items() if k != "top_repeated"})


if __name__ == "__main__":
    main()
