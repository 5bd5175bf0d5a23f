"""Speed of the built-in story generator against the 5,000 stories/s target and a naive baseline.

The baseline is the same generator (same word lists, templates and arc) driven the way a first
version often is: a fresh numpy `Generator` per story and one numpy scalar draw per choice. The
fast path uses one `random.Random` per story and pure-Python draws (~85 ns each against ~400 ns for
a numpy scalar). Both run on one core (the process is pinned where the OS allows it).

Run: PYTHONPATH=src python benchmarks/corpus_speed.py [--stories 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from datadiet.curate.corpus import generate as corpus
from datadiet.curate.corpus.generate import generate_stories

TARGET_PER_S = 5_000


class _NumpyRandom:
    """The one method `corpus._draw_slots` / `_render` use, backed by a numpy Generator."""

    def __init__(self, seed: int) -> None:
        self._gen = np.random.default_rng(seed)

    def random(self) -> float:
        return float(self._gen.random())


def naive_stories(n: int, seed: int) -> list[str]:
    """Originals only (no near copies), one numpy Generator per story."""
    out = []
    for i in range(n):
        rng = _NumpyRandom(seed * 1_000_003 + i)
        slots = corpus._draw_slots(rng)
        corpus._derive(slots)
        out.append(corpus._join(corpus._render(slots, rng)))
    return out


def _best_rate(fn: Callable[[int, int], list[str]], n: int, repeats: int) -> float:
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        fn(n, r)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    fast = _best_rate(generate_stories, args.stories, args.repeats)
    naive = _best_rate(naive_stories, max(args.stories // 5, 1), args.repeats)
    words = sum(len(t.split()) for t in generate_stories(2_000, 0)) / 2_000
    print(f"stories per run        {args.stories:>10,}   (mean {words:.0f} words each)")
    print(f"generate_stories       {fast:>10,.0f} stories/s  ({fast * words / 1e6:.2f} M words/s)")
    print(f"naive numpy baseline   {naive:>10,.0f} stories/s")
    print(f"ratio vs target 5,000/s {fast / TARGET_PER_S:>9.2f}x")
    print(f"ratio vs naive baseline {fast / naive:>9.2f}x")


if __name__ == "__main__":
    main()
