"""Peak memory and throughput of `curate ingest` on a large text file, against reading it whole.

Builds a TinyStories-format file of the requested size from the real stories in ../shared/data
(each repetition gets a numeric suffix so no two stories are identical), then measures in separate
processes: (1) `curate ingest` (streaming, bounded parts), and (2) a baseline that reads the whole
file, splits it in memory and writes one Parquet file with polars. Prints peak RSS of each, their
ratio, and MB/s.

    python benchmarks/ingest_memory.py [--gb 1.0] [--workdir /tmp/datadiet-ingest-bench]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEP = "<|endoftext|>"

BASELINE = """
import sys, polars as pl
text = open(sys.argv[1], encoding="utf-8").read()
docs = [d.strip() for d in text.split("\\n<|endoftext|>\\n") if d.strip()]
pl.DataFrame({"id": [str(i) for i in range(len(docs))], "text": docs}).write_parquet(sys.argv[2])
print(len(docs))
"""


def build_file(path: Path, target_bytes: int) -> int:
    stories: list[str] = []
    for name in ("tinystories-train-1.txt", "tinystories-train-2.txt"):
        raw = (DATA / name).read_text(encoding="utf-8")
        stories += [s.strip() for s in raw.split(f"\n{SEP}\n") if s.strip()]
    written = n = rep = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target_bytes:
            for s in stories:
                chunk = f"{s} ({rep})\n{SEP}\n"
                f.write(chunk)
                written += len(chunk.encode())
                n += 1
                if written >= target_bytes:
                    break
            rep += 1
    return n


def peak_rss_of(cmd: list[str]) -> tuple[float, float, str]:
    """Run CMD in a child and return (peak RSS in GiB, seconds, stdout tail)."""
    # ru_maxrss of RUSAGE_CHILDREN is the max over all waited-for children, so each measurement runs
    # in its own fresh Python that waits for exactly one child.
    probe = (
        "import resource, subprocess, sys, time; t=time.perf_counter(); "
        "p=subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter()-t, p.returncode); "
        "print(p.stdout[-300:], p.stderr[-300:])"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout
    first, rest = out.split("\n", 1)
    kb, seconds, rc = first.split()
    if rc != "0":
        raise SystemExit(f"{cmd[0]} failed: {rest}")
    return int(kb) / 1024**2, float(seconds), rest.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/datadiet-ingest-bench"))
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the real stories in {DATA}")
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    src = args.workdir / "big.txt"
    t0 = time.perf_counter()
    docs = build_file(src, int(args.gb * 1024**3))
    size = src.stat().st_size
    print(f"built {src} : {size / 1024**3:.2f} GiB, {docs:,} stories in {time.perf_counter() - t0:.0f} s")

    curate = str(Path(sys.executable).parent / "curate")
    rss, secs, _ = peak_rss_of(
        [curate, "ingest", str(src), "--name", "big", "--store", str(args.workdir / "store"), "--quiet"]
    )
    print(f"curate ingest : peak RSS {rss:.2f} GiB, {secs:.1f} s, {size / 1024**2 / secs:.0f} MB/s")
    if not args.skip_baseline:
        brss, bsecs, _ = peak_rss_of(
            [sys.executable, "-c", BASELINE, str(src), str(args.workdir / "baseline.parquet")]
        )
        print(f"read-whole baseline : peak RSS {brss:.2f} GiB, {bsecs:.1f} s")
        print(f"memory ratio baseline/curate = {brss / rss:.1f}x ; time ratio = {bsecs / secs:.2f}x")
    print(f"peak RSS per GiB of input: {rss / (size / 1024**3):.2f} GiB (target: <= 2 GiB for 1 GB)")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
