"""Dataset statistics on tiny datasets whose answers are computed by hand or by a per-word Python reference."""

from __future__ import annotations

import collections
import math
import random
import zlib

import polars as pl
import pytest

from datadiet.curate.dedupe.find import dedupe_texts
from datadiet.curate.dedupe.minhash import MinhashConfig
from datadiet.curate.dedupe.normalize import block_shingles, normalize, shingle_hashes
from datadiet.errors import UsageError
from datadiet.eval.stats import compute as S


def test_hand_computed_statistics() -> None:
    texts = ["a b a", "A, b. a!", "c d", ""]
    out = S.dataset_stats(pl.DataFrame({"text": texts}), tokens=11, near_dup=False)
    assert out[S.DOCUMENTS] == 4
    assert out[S.BYTES] == 16
    assert out[S.TOKENS] == 11
    # "A, b. a!" normalises to "a b a": one exact copy of an earlier document.
    assert out[S.EXACT_DUPLICATE_SHARE] == 0.25
    assert out[S.NEAR_DUPLICATE_SHARE] is None
    assert out[S.NEAR_DUPLICATE_METHOD] is None
    assert out[S.LARGEST_CLUSTER_SHARE] == 0.5
    assert out[S.UNIQUE_DOCUMENT_SHARE] == 0.5
    # words: a a a a b b c d -> 4 types / 8 tokens; p = 1/2, 1/4, 1/8, 1/8 -> 1.75 bits
    assert out[S.DISTINCT_1GRAM_RATIO] == 0.5
    assert out[S.UNIGRAM_ENTROPY_BITS] == pytest.approx(1.75, abs=1e-12)
    # 2-grams: (a b) (b a) twice, (c d): 3 distinct of 5; no document has 4 words
    assert out[S.DISTINCT_2GRAM_RATIO] == pytest.approx(0.6)
    assert out[S.DISTINCT_4GRAM_RATIO] is None
    assert out[S.TYPE_TOKEN_RATIO] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert out[S.MEAN_WORDS] == 2.0
    assert out[S.MEDIAN_WORDS] == 2.5
    assert out[S.MEAN_CHARS] == 4.0
    assert out[S.MEDIAN_CHARS] == 4.0
    raw = b"a b a\nA, b. a!\nc d\n"
    assert out[S.COMPRESSION_RATIO] == len(zlib.compress(raw, 6)) / len(raw)
    assert out[S.TOP_REPEATED] == [{"preview": "a b a", "count": 2}]


def test_unicode_folds_like_normalize() -> None:
    texts = ["Ｆｕｌｌ ﬁne", "full fine", "Café—au lait", "café au   lait!", "naïve"]
    out = S.dataset_stats(pl.DataFrame({"text": texts}), near_dup=False)
    assert out[S.EXACT_DUPLICATE_SHARE] == 0.4
    # words: full fine full fine café au lait café au lait naïve -> 6 types / 11
    assert out[S.DISTINCT_1GRAM_RATIO] == pytest.approx(6 / 11)
    assert [r["count"] for r in out[S.TOP_REPEATED]] == [2, 2]
    assert out[S.TOP_REPEATED][0]["preview"] == "Ｆｕｌｌ ﬁne"


def _reference(texts: list[str]) -> dict[str, float]:
    words = [normalize(t).split(" ") if normalize(t) else [] for t in texts]
    uni = collections.Counter(w for ws in words for w in ws)
    total = sum(uni.values())
    out = {
        S.DISTINCT_1GRAM_RATIO: len(uni) / total,
        S.UNIGRAM_ENTROPY_BITS: -sum(c / total * math.log2(c / total) for c in uni.values()),
        S.TYPE_TOKEN_RATIO: sum(len(set(ws)) / len(ws) for ws in words if ws) / sum(1 for ws in words if ws),
    }
    for k, key in ((2, S.DISTINCT_2GRAM_RATIO), (4, S.DISTINCT_4GRAM_RATIO)):
        grams = [tuple(ws[i : i + k]) for ws in words for i in range(len(ws) - k + 1)]
        out[key] = len(set(grams)) / len(grams)
    seen: set[str] = set()
    dup = 0
    for t in texts:
        dup += normalize(t) in seen
        seen.add(normalize(t))
    out[S.EXACT_DUPLICATE_SHARE] = dup / len(texts)
    return out


def test_matches_per_word_reference_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    vocab = ["the", "The", "cat", "CAT!", "sat", "on", "mat,", "Ünï", "—", "dog's", "ﬁsh", "a\tb", "x\ny", "..."]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) for _ in range(400)]
    texts += texts[:40]
    # Small blocks, so documents, n-grams and duplicates straddle block boundaries.
    monkeypatch.setattr(S, "BLOCK_DOCS", 37)
    out = S.dataset_stats(pl.DataFrame({"text": texts}), near_dup=False)
    for key, value in _reference(texts).items():
        assert out[key] == pytest.approx(value, rel=1e-12), key


def test_near_duplicates_found_and_mapped_to_all_documents() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(500)]
    story = [rng.choice(vocab) for _ in range(120)]
    edited = list(story)
    edited[60] = "changed"
    other = [rng.choice(vocab) for _ in range(120)]
    texts = [" ".join(story), " ".join(edited), " ".join(other), " ".join(story).upper()]
    out = S.dataset_stats(pl.DataFrame({"text": texts}), near_dup=True, seed=1)
    assert out[S.EXACT_DUPLICATE_SHARE] == 0.25
    # The dedupe would keep the first story and drop the edit and the upper-case copy.
    assert out[S.NEAR_DUPLICATE_SHARE] == 0.5
    assert out[S.LARGEST_CLUSTER_SHARE] == 0.75
    assert out[S.UNIQUE_DOCUMENT_SHARE] == 0.25
    assert out[S.NEAR_DUPLICATE_METHOD] == "minhash threshold=0.8 seed=1"


def test_empty_frame_and_null_texts() -> None:
    empty = S.dataset_stats(pl.DataFrame({"text": []}, schema={"text": pl.String}))
    assert empty[S.DOCUMENTS] == 0
    assert empty[S.EXACT_DUPLICATE_SHARE] is None
    assert empty[S.DISTINCT_1GRAM_RATIO] is None
    assert empty[S.TOP_REPEATED] == []
    nulls = S.dataset_stats(pl.DataFrame({"text": [None, "hi there"]}, schema={"text": pl.String}), near_dup=False)
    assert nulls[S.MEAN_WORDS] == 1.0
    assert nulls[S.UNIQUE_DOCUMENT_SHARE] == 1.0


def test_bad_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no 'text' column"):
        S.dataset_stats(pl.DataFrame({"body": ["x"]}))
    with pytest.raises(UsageError, match="between 0 and 1"):
        S.dataset_stats(pl.DataFrame({"text": ["x"]}), minhash_threshold=1.5)


def test_compression_sample_is_deterministic_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"story {i} " + "word " * (i % 7) for i in range(100)]
    monkeypatch.setattr(S, "COMPRESSION_SAMPLE_BYTES", 500)
    out = S.dataset_stats(pl.DataFrame({"text": texts}), near_dup=False)
    total = sum(len(t) for t in texts)
    step = math.ceil(total / 500)
    raw = "\n".join(texts[::step]).encode()
    assert out[S.COMPRESSION_RATIO] == len(zlib.compress(raw, 6)) / len(raw)


def test_ngram_hashes_equal_for_equal_ngrams() -> None:
    h = S.ngram_hashes(pl.Series(["A b c", "x a B C"]), 3)
    assert h.size == 3
    assert h[0] == h[2] != h[1]
    with pytest.raises(ValueError, match="from 1 to 8"):
        S.ngram_hashes(pl.Series(["a"]), 9)


def _planted(seed: int) -> list[str]:
    """Stories and their exact, re-cased, re-punctuated and lightly edited copies, shuffled."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(400)] + ["Ünï", "ﬁsh", "café", "don't"]
    stories = [[rng.choice(vocab) for _ in range(rng.randint(20, 90))] for _ in range(40)]
    texts = [" ".join(s) for s in stories]
    for s in stories[:30]:
        texts.append(" ".join(s).upper())
        texts.append(", ".join(s) + "!")
        for edits in (1, 2, 6, 25):
            copy = list(s)
            for _ in range(edits):
                copy[rng.randrange(len(copy))] = rng.choice(vocab)
            texts.append("  ".join(copy))
    texts += ["", "w1", "w1 w2", "w1 w2"]
    rng.shuffle(texts)
    return texts


def test_word_hashes_shingle_like_dedupe() -> None:
    texts = [*_planted(1)[:60], "Ｆｕｌｌ ﬁne—Café", "x\ty\u00a0z", "A b c d e f g"]
    block = S._block_words(pl.Series(texts))
    ref = block_shingles(texts, 5, "word")
    hashes, offsets = shingle_hashes(block.words, block.offsets, 5)
    assert hashes.tolist() == ref.hashes.tolist()
    assert offsets.tolist() == ref.offsets.tolist()


@pytest.mark.parametrize(("threshold", "seed"), [(0.8, 0), (0.5, 3)])
def test_near_duplicate_share_is_what_dedupe_removes(
    monkeypatch: pytest.MonkeyPatch, threshold: float, seed: int
) -> None:
    texts = _planted(seed)
    # Small blocks: duplicates, signing and first occurrences straddle block boundaries.
    monkeypatch.setattr(S, "BLOCK_DOCS", 23)
    out = S.dataset_stats(pl.DataFrame({"text": texts}), minhash_threshold=threshold, seed=seed)
    found = dedupe_texts(texts, MinhashConfig(threshold=threshold, seed=seed))
    n = len(texts)
    removed = int(found.removed.sum())
    assert out[S.NEAR_DUPLICATE_SHARE] == removed / n
    sizes = collections.Counter(found.label.tolist())
    assert out[S.LARGEST_CLUSTER_SHARE] == max(sizes.values()) / n
    assert out[S.UNIQUE_DOCUMENT_SHARE] == sum(1 for c in sizes.values() if c == 1) / n
    exact = n - len({normalize(t) for t in texts})
    assert out[S.EXACT_DUPLICATE_SHARE] == exact / n
    # The planted edits are found, not only the exact copies; and the clusters are the dedupe's.
    assert removed > exact
    assert S.near_duplicate_labels(texts, threshold=threshold, seed=seed).tolist() == found.label.tolist()
