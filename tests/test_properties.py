"""Property-based tests (hypothesis) of issue 8 that the per-module tests do not already hold.

Already covered elsewhere, so not repeated here: normalisation idempotence and shingle counts
(tests/curate/test_minhash.py), the Jaccard estimate on synthetic hash sets (same file), dedupe
idempotence on a five-text alphabet (tests/curate/test_dedupe.py), overwrite/append/pool counts
(tests/curate/test_inject.py) and fraction subsets nesting (tests/curate/test_subset.py).

Added here: word boundaries and case never change the normal form; shingles depend only on the
words; the MinHash estimate on real edited documents; dedupe of planted near-duplicate clusters
(keeps exactly one per cluster, idempotent, exact mode removes exactly the repeated normal forms);
duplicate's counts with `copies` and with near copies; `docs`/`tokens` subsets nesting.
"""

from __future__ import annotations

import math
import random
import string

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadiet.curate.dedupe.find import dedupe_texts
from datadiet.curate.dedupe.minhash import MinhashConfig, estimate_jaccard, exact_jaccard, permutations, signatures
from datadiet.curate.dedupe.normalize import block_shingles, normalize, shingle_hash64, shingles, text_digest, words
from datadiet.curate.duplicate.inject import STAT_COPIES_INJECTED, STAT_POOL_IDS, duplicate_frame, pool_size
from datadiet.curate.duplicate.op import DuplicateConfig
from datadiet.curate.subset.op import SubsetConfig
from datadiet.curate.subset.select import subset_frame
from datadiet.schema import COPY_INDEX, EDIT_FRACTION, ID, SOURCE_ID, TEXT

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
# Runs of ASCII whitespace, punctuation and symbols: every one of them separates words.
SEP = st.text(alphabet=" \t\n\r" + string.punctuation, min_size=1, max_size=4)


# -- normalisation and shingling -----------------------------------------------------------------


@FAST
@given(st.lists(WORD, max_size=20), st.data())
def test_separators_and_case_never_change_the_normal_form(ws: list[str], data: st.DataObject) -> None:
    seps = data.draw(st.lists(SEP, min_size=len(ws) + 1, max_size=len(ws) + 1))
    text = seps[0] + "".join(w + s for w, s in zip(ws, seps[1:], strict=True))
    assert normalize(text) == " ".join(w.lower() for w in ws)
    assert words(text) == [w.lower() for w in ws]
    # The exact-dedupe digest is a function of the normal form alone.
    assert text_digest(text) == text_digest(" ".join(ws).upper())


@FAST
@given(st.lists(WORD, min_size=1, max_size=30), st.integers(1, 6), st.sampled_from(["word", "char"]), st.data())
def test_shingles_depend_only_on_the_words(ws: list[str], n: int, kind: str, data: st.DataObject) -> None:
    seps = data.draw(st.lists(SEP, min_size=len(ws), max_size=len(ws)))
    text = "".join(w + s for w, s in zip(ws, seps, strict=True))
    plain = " ".join(ws)
    assert shingles(text, n, kind) == shingles(plain, n, kind)
    toks = [w.lower() for w in ws] if kind == "word" else list(plain.lower())
    joiner = " " if kind == "word" else ""
    expected = [joiner.join(toks[i : i + n]) for i in range(len(toks) - n + 1)] or [joiner.join(toks)]
    assert shingles(text, n, kind) == expected
    assert block_shingles([text], n, kind).hashes.tolist() == [shingle_hash64(s, kind) for s in expected]


@FAST
@given(st.lists(WORD, min_size=5, max_size=25), st.lists(WORD, min_size=5, max_size=25), st.integers(1, 5))
def test_shingles_of_a_concatenation_contain_both_parts(a: list[str], b: list[str], n: int) -> None:
    joined = set(shingles(" ".join(a + b), n))
    assert set(shingles(" ".join(a), n)) | set(shingles(" ".join(b), n)) <= joined
    # Only the n-1 shingles that straddle the join are new.
    assert len(joined - set(shingles(" ".join(a), n)) - set(shingles(" ".join(b), n))) <= n - 1


# -- MinHash on real edited documents ------------------------------------------------------------

VOCAB = [f"w{i}" for i in range(3000)]


def _edited(rng: random.Random, doc: list[str], changes: int) -> list[str]:
    out = list(doc)
    for _ in range(changes):
        i = rng.randrange(len(out))
        out[i] = rng.choice(VOCAB)
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(40, 200), st.floats(0.0, 0.6), st.integers(0, 2**31))
def test_minhash_estimate_within_tolerance_of_exact_jaccard(length: int, edit: float, seed: int) -> None:
    rng = random.Random(seed)
    a = [rng.choice(VOCAB) for _ in range(length)]
    b = _edited(rng, a, round(edit * length))
    texts = [" ".join(a), " ".join(b)]
    block = block_shingles(texts, 5)
    ha, hb = block.hashes[: block.offsets[1]], block.hashes[block.offsets[1] :]
    sa, sb = set(shingles(texts[0], 5)), set(shingles(texts[1], 5))
    true = len(sa & sb) / len(sa | sb)
    assert exact_jaccard(ha, hb) == true  # no 64-bit hash collisions among a few hundred shingles
    num_perm = 256
    sig = signatures(block.hashes, block.offsets, permutations(num_perm, seed % 1000))
    est = float(estimate_jaccard(sig[0], sig[1]))
    # Standard error sqrt(J(1-J)/256); 5 of them (with a floor of one hash's worth): ~1 in 3.5 million false failures.
    assert abs(est - true) <= 5 * max(math.sqrt(true * (1 - true) / num_perm), 1 / num_perm) + 1e-9


# -- dedupe on planted clusters -------------------------------------------------------------------


def _planted(seed: int, originals: int, max_copies: int) -> tuple[list[str], list[set[int]]]:
    """Distinct random documents, some with exact (case/punctuation) and near (1-word edit) copies, shuffled."""
    rng = random.Random(seed)
    docs: list[tuple[int, str]] = []
    for c in range(originals):
        base = [rng.choice(VOCAB) for _ in range(80)]
        docs.append((c, " ".join(base)))
        for _ in range(rng.randrange(max_copies + 1)):
            copy = _edited(rng, base, 1) if rng.random() < 0.5 else base
            docs.append((c, " ".join(copy).upper() + "!" if rng.random() < 0.5 else " ".join(copy)))
    rng.shuffle(docs)
    groups: dict[int, set[int]] = {}
    for pos, (c, _) in enumerate(docs):
        groups.setdefault(c, set()).add(pos)
    return [t for _, t in docs], list(groups.values())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.integers(1, 25), st.integers(0, 4), st.sampled_from(["first", "longest", "random"]))
def test_dedupe_keeps_exactly_one_per_planted_cluster_and_is_idempotent(
    seed: int, originals: int, max_copies: int, keep: str
) -> None:
    texts, groups = _planted(seed, originals, max_copies)
    # With 80 words and one edit, a near copy's 5-gram Jaccard is >= 0.88; unrelated documents share none.
    cfg = MinhashConfig(threshold=0.7, keep=keep, seed=seed % 1000)
    found = dedupe_texts(texts, cfg)
    removed = found.removed.tolist()
    for members in groups:
        assert sum(not removed[i] for i in members) == 1  # never every member, never more than one
    assert sum(removed) == len(texts) - len(groups)
    survivors = [t for t, r in zip(texts, removed, strict=True) if not r]
    assert not dedupe_texts(survivors, cfg).removed.any()


@FAST
@given(st.lists(st.sampled_from(["a b c", "A, b; c!", "a b d", "x", "", "  "]), max_size=25))
def test_exact_dedupe_removes_exactly_the_repeated_normal_forms(texts: list[str]) -> None:
    found = dedupe_texts(texts, MinhashConfig(method="exact"))
    seen: set[str] = set()
    expected = []
    for t in texts:
        expected.append(normalize(t) in seen)
        seen.add(normalize(t))
    assert found.removed.tolist() == expected


# -- duplicate: counts with --copies and with near copies ---------------------------------------------


def _corpus(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(n)
    texts = [f"doc{i} " + " ".join(rng.choice(VOCAB, size=12)) for i in range(n)]
    return pl.DataFrame({ID: [f"d{i:04d}" for i in range(n)], TEXT: texts})


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 150), st.floats(0, 1), st.integers(1, 20), st.booleans(), st.integers(0, 2**32))
def test_copies_option_counts(n: int, rate: float, copies: int, append: bool, seed: int) -> None:
    cfg = DuplicateConfig(rate=rate, copies=copies, append=append, seed=seed)
    p = pool_size(n, cfg)
    assert 1 <= p <= n
    out, stats = duplicate_frame(_corpus(n), cfg)
    expected = int(rate * n) if append else int(rate * (n - p))
    assert stats[STAT_COPIES_INJECTED] == expected
    assert out.height == n + (expected if append else 0)
    per_doc = out.filter(pl.col(COPY_INDEX) > 0).group_by(SOURCE_ID).len()["len"].to_list()
    assert sum(per_doc) == expected and max(per_doc, default=0) - min(per_doc, default=0) <= 1
    assert len(stats[STAT_POOL_IDS]) == p


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 120), st.floats(0, 1), st.floats(0.01, 0.9), st.integers(1, 3), st.integers(0, 2**32))
def test_near_copies_use_the_same_slots_and_counts(n: int, rate: float, near: float, pool: int, seed: int) -> None:
    frame = _corpus(n)
    pool = min(pool, n)
    exact, s_exact = duplicate_frame(frame, DuplicateConfig(rate=rate, pool=pool, seed=seed))
    fuzzy, s_near = duplicate_frame(frame, DuplicateConfig(rate=rate, pool=pool, near=near, seed=seed))
    assert s_near[STAT_COPIES_INJECTED] == s_exact[STAT_COPIES_INJECTED] == int(rate * (n - pool))
    for col in (ID, SOURCE_ID, COPY_INDEX):
        assert fuzzy[col].to_list() == exact[col].to_list()
    copies = fuzzy.filter(pl.col(COPY_INDEX) > 0)
    assert copies[EDIT_FRACTION].is_between(0, 1).all()
    originals = fuzzy.filter(pl.col(COPY_INDEX) == 0)
    assert originals[TEXT].to_list() == exact.filter(pl.col(COPY_INDEX) == 0)[TEXT].to_list()


# -- subsets nest whatever the size option --------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.data(), st.integers(0, 2**32))
def test_docs_and_tokens_subsets_nest(n: int, data: st.DataObject, seed: int) -> None:
    frame = _corpus(n)
    total_tokens = int(frame[TEXT].str.len_chars().sum()) // 4
    k1, k2 = sorted(data.draw(st.lists(st.integers(1, n), min_size=2, max_size=2)))
    t1, t2 = sorted(data.draw(st.lists(st.integers(1, total_tokens), min_size=2, max_size=2)))

    def ids(cfg: SubsetConfig) -> set[str]:
        return set(subset_frame(frame, cfg)[0][ID].to_list())

    d1, d2 = ids(SubsetConfig(docs=k1, seed=seed)), ids(SubsetConfig(docs=k2, seed=seed))
    assert d1 <= d2 and (len(d1), len(d2)) == (k1, k2)
    a, b = ids(SubsetConfig(tokens=t1, seed=seed)), ids(SubsetConfig(tokens=t2, seed=seed))
    assert a <= b
    # All three size options are prefixes of one seeded order, so any two subsets nest.
    f = ids(SubsetConfig(fraction=k1 / n, seed=seed))
    assert f <= d2 or d2 <= f
    assert a <= d2 or d2 <= a
