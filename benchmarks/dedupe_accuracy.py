"""Recall and precision of `curate dedupe` on real stories with planted near duplicates of known similarity.

    PYTHONPATH=src .venv/bin/python benchmarks/dedupe_accuracy.py [--copies 4000] [--seed 0]

Corpus: the distinct real TinyStories stories of ../shared/data (train-1, train-2, valid-1), plus
`--copies` planted copies of randomly chosen stories with a random share of their words replaced
(half with 0-4%, half with 4-12%, which spans true Jaccard ~0.3-1.0 for word 5-grams), plus the
1,000 stories of train-3, which are other renderings of the first 1,000 stories of train-1 (natural
near duplicates: paragraph breaks, mojibake). The true Jaccard of every planted and natural pair is
computed from the exact sets of shingle strings (no hashing).

Reported, at threshold 0.8, word 5-grams, 128 permutations (issue 3's requirements in brackets):

- recall per true-Jaccard bucket: the share of pairs whose two documents end up in one cluster
  [>= 0.95 for pairs with true Jaccard >= 0.85];
- precision of removals: the share of removed documents with true Jaccard >= 0.75 (and >= 0.8)
  with some other document of their cluster [>= 98% at 0.75; 100% at 0.8 with --verify];
- the same for the SMS Spam Collection (3-word shingles, its own natural duplicates), for which
  there is no planted truth, so only the precision of removals.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from datadiet.curate.dedupe.find import Found, dedupe_texts  # noqa: E402
from datadiet.curate.dedupe.minhash import MinhashConfig  # noqa: E402
from datadiet.curate.dedupe.normalize import shingles  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001)


def load(name: str) -> list[str]:
    return (SHARED / name).read_text(encoding="utf-8").split("\n<|endoftext|>\n")[:-1]


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def plant(rng: random.Random, text: str, vocab: list[str], share: float) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), round(len(words) * share)):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def precision(found: Found, sets: list[set[str]]) -> tuple[int, float, float, float]:
    members: dict[int, list[int]] = defaultdict(list)
    for pos, label in enumerate(found.label.tolist()):
        members[label].append(pos)
    best = []
    for pos in np.flatnonzero(found.removed).tolist():
        others = [q for q in members[int(found.label[pos])] if q != pos]
        best.append(max(jaccard(sets[pos], sets[q]) for q in others))
    arr = np.array(best) if best else np.ones(1)
    return len(best), float((arr >= 0.75).mean()), float((arr >= 0.8).mean()), float(arr.min())


def recall_table(found: Found, pairs: list[tuple[int, int, float]]) -> list[tuple[str, int, float]]:
    rows = []
    for lo, hi in itertools.pairwise(BUCKETS):
        inside = [(a, b) for a, b, j in pairs if lo <= j < hi]
        hit = sum(found.label[a] == found.label[b] for a, b in inside)
        rows.append(
            (
                f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}",
                len(inside),
                hit / len(inside) if inside else float("nan"),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (SHARED / "tinystories-train-1.txt").is_file():
        raise SystemExit(f"real data not found in {SHARED}")
    rng = random.Random(args.seed)
    train1 = load("tinystories-train-1.txt")
    base = train1 + load("tinystories-train-2.txt") + load("tinystories-valid-1.txt")
    vocab = sorted({w for s in base[:1000] for w in s.split()})
    texts = list(base)
    pairs: list[tuple[int, int]] = []
    for _ in range(args.copies):
        src = rng.randrange(len(base))
        share = rng.uniform(0.0, 0.04) if rng.random() < 0.5 else rng.uniform(0.04, 0.12)
        pairs.append((src, len(texts)))
        texts.append(plant(rng, base[src], vocab, share))
    natural_start = len(texts)
    train3 = load("tinystories-train-3.txt")
    texts += train3
    sets = [set(shingles(t, 5)) for t in texts]
    planted_j = [(a, b, jaccard(sets[a], sets[b])) for a, b in pairs]
    # train-3 is not in train-1's order: pair each rendering with the train-1 story it overlaps most.
    holders: dict[str, set[int]] = defaultdict(set)
    for i in range(len(train1)):
        for sh in sets[i]:
            holders[sh].add(i)
    natural_j = []
    for k in range(len(train3)):
        b = natural_start + k
        near = set().union(*(holders.get(sh, set()) for sh in sets[b]))
        if near:
            a = max(sorted(near), key=lambda i: jaccard(sets[i], sets[b]))
            natural_j.append((a, b, jaccard(sets[a], sets[b])))

    print(
        f"corpus: {len(base)} real stories + {args.copies} planted copies + {len(train3)} train-3 renderings = {len(texts)} docs"
    )
    for verify in (False, True):
        cfg = MinhashConfig(threshold=0.8, num_perm=128, ngram=5, verify=verify)
        t0 = time.perf_counter()
        found = dedupe_texts(texts, cfg)
        dt = time.perf_counter() - t0
        print(
            f"\n== threshold 0.8, word 5-grams, 128 perms, bands x rows {cfg.bands_rows()}, verify={verify} ({dt:.1f} s)"
        )
        print(f"stats: {found.stats}")
        print(f"{'true Jaccard':>16} {'planted':>8} {'recall':>7} {'natural':>8} {'recall':>7}")
        for (label, n, r), (_, n2, r2) in zip(
            recall_table(found, planted_j), recall_table(found, natural_j), strict=True
        ):
            print(f"{label:>16} {n:>8} {r:>7.3f} {n2:>8} {r2:>7.3f}")
        hi = [(a, b, j) for a, b, j in planted_j + natural_j if j >= 0.85]
        rec = sum(found.label[a] == found.label[b] for a, b, _ in hi) / len(hi)
        removed, p75, p80, worst = precision(found, sets)
        print(f"recall at true J >= 0.85: {rec:.4f} over {len(hi)} pairs  [required >= 0.95]")
        print(
            f"removed {removed}: share with true J >= 0.75 to a cluster member {p75:.4f} [>= 0.98], "
            f">= 0.8 {p80:.4f}{' [= 1.0 with --verify]' if verify else ''}, lowest {worst:.3f}"
        )

    sms = load("sms-spam-collection-1.txt")
    sms_sets = [set(shingles(t, 3)) for t in sms]
    for verify in (False, True):
        found = dedupe_texts(sms, MinhashConfig(threshold=0.8, ngram=3, verify=verify))
        removed, p75, p80, worst = precision(found, sms_sets)
        print(
            f"\nSMS ({len(sms)} messages, word 3-grams, verify={verify}): removed {removed} "
            f"(exact {int(found.exact.sum())}); true J >= 0.75 {p75:.4f}, >= 0.8 {p80:.4f}, lowest {worst:.3f}"
        )


if __name__ == "__main__":
    main()
