"""Help text of the curation commands whose options need more than a line (`curate dedupe`,
`duplicate`, `subset`): kept in the CLI, beside the options it explains, not in the library.
"""

from __future__ import annotations

DEDUPE_HELP = """\
Remove duplicate documents, keeping one per cluster.

Text is normalised first (Unicode NFKC, lowercase, punctuation and symbols removed, whitespace
collapsed). --method exact removes documents whose normalised text is identical. --method minhash
(default) also removes near duplicates: documents whose sets of word 5-grams (--ngram, --shingle)
have Jaccard similarity >= --threshold with another document of their cluster.

Recall vs precision: MinHash LSH makes two documents candidates if they agree on all --rows
values of at least one of --bands bands, with probability 1-(1-J^rows)^bands (an S-curve in J).
By default bands and rows are chosen for recall: at --threshold 0.8 and --num-perm 128 this is
16 bands x 8 rows, so pairs with J=0.85 become candidates 99.4% of the time and J=0.8 94.7%.
Every candidate is then kept only if its estimated Jaccard (share of equal signature values,
+-0.035 at 128 permutations) is >= threshold; --verify also requires the exact Jaccard, which
removes the estimate's false positives at some cost in time. More bands (fewer rows) raise
recall and the number of candidates to check; more permutations tighten the estimate.
--against OTHER removes documents that are near duplicates of OTHER (decontamination).
See docs/dedupe.md for the S-curve table and measured recall and precision."""

DUPLICATE_HELP: dict[str, str] = {
    "rate": (
        "Share of the documents outside the pool that are overwritten by copies: int(R·(N−P)) slots, so with the "
        "default pool of 1, --rate 1 makes N copies of one story and --rate 0 keeps the rows unchanged."
    ),
    "pool": "Copy P distinct original documents round robin, each equally often (default 1, as the original study).",
    "copies": "Choose the pool size so that each pool document gets about K copies (a small subset repeated K times).",
    "append": "Insert int(R·N) copies at random positions instead of overwriting, so the dataset grows by that much.",
    "near": "Make each copy a near duplicate: E in [0, 1) of its words substituted, deleted, inserted or swapped.",
    "doc": "Id of the document to copy (the first pool member); otherwise the pool is drawn with the seed.",
    "seed": "Seed for the pool, the overwritten slots and the edits; the same seed and input give the same version.",
}

SUBSET_HELP: dict[str, str] = {
    "fraction": (
        "Keep round(F·N) documents, 0 < F <= 1; subsets of one dataset with one seed are nested "
        "(the 25% subset lies inside the 50% one)."
    ),
    "docs": "Keep exactly N documents, the first N of the same seeded order, so smaller subsets nest in larger ones.",
    "tokens": "Keep the shortest prefix of the seeded order with at least T tokens, estimated as characters / 4.",
    "seed": "Seed of the random order; the same seed gives nested subsets and the same version for the same input.",
}
