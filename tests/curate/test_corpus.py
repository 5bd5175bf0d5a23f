"""Tests of the built-in story generator: determinism, vocabulary, splits, planted near copies, grammar, learnability."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from datadiet.curate.corpus.generate import generate_corpus, generate_stories, near_duplicate_pairs
from datadiet.curate.corpus.op import CorpusConfig
from datadiet.curate.corpus.words import BOY_NAMES, GIRL_NAMES, NEUTRAL_NAMES
from datadiet.errors import UsageError
from datadiet.schema import EOT

WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
# Golden digest of generate_stories(50, 0): if this changes, the generator changed, so bump
# corpus.GENERATOR_VERSION (the store's version ids depend on it) and update the digest.
GOLDEN_SHA256 = "b102f7cc3d599dc922aada2aeab49b3e5dd1ebf2a6ed1d39a95f70479b5b1e37"


@pytest.fixture(scope="module")
def stories() -> list[str]:
    return generate_stories(3000, 0)


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\x1e".join(texts).encode()).hexdigest()


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_same_seed_same_stories_and_golden_digest() -> None:
    first = generate_stories(50, 0)
    assert generate_stories(50, 0) == first
    assert _digest(first) == GOLDEN_SHA256


def test_different_seed_different_stories() -> None:
    a, b = generate_stories(200, 0), generate_stories(200, 1)
    assert len(set(a) & set(b)) == 0


def test_independent_of_hash_seed() -> None:
    code = (
        "import hashlib; from datadiet.curate.corpus.generate import generate_stories; "
        "print(hashlib.sha256('\\x1e'.join(generate_stories(50, 0)).encode()).hexdigest())"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == GOLDEN_SHA256


def test_vocabulary_at_least_1500_words(stories: list[str]) -> None:
    vocab = {w for text in stories for w in WORD.findall(text.lower())}
    # Measured 1,876 on this seed; 1,500 is the requirement.
    assert len(vocab) >= 1500


def test_shape_of_every_story(stories: list[str]) -> None:
    lengths = [len(text.split()) for text in stories]
    assert min(lengths) >= 80
    assert max(lengths) <= 240
    for text in stories:
        assert text == text.strip()
        assert EOT not in text
        paragraphs = text.split("\n")
        assert len(paragraphs) == 5
        assert all(p.strip() for p in paragraphs)
        quotes = text.count('"')
        assert quotes >= 2
        assert quotes % 2 == 0


def test_grammar_agreement(stories: list[str]) -> None:
    text = "\n".join(stories)
    assert re.search(r"\b(he|she|it) were\b", text, re.IGNORECASE) is None
    assert re.search(r"\bthey was\b", text, re.IGNORECASE) is None
    # "a" before a vowel sound and "an" before a consonant sound, allowing "a unicorn"-type words.
    bad_a = re.findall(r"\b[Aa] (?!uni|use|eu)[aeiou]\w*", text)
    bad_an = re.findall(r"\b[Aa]n (?!hour|honest)[b-df-hj-np-tv-z]\w*", text)
    assert bad_a == []
    assert bad_an == []
    # Every sentence starts with a capital letter or an opening quote.
    for sentence_start in re.findall(r"[.!?] (\S)", text):
        assert sentence_start.isupper() or sentence_start == '"'


def test_main_character_recurs(stories: list[str]) -> None:
    names = set(GIRL_NAMES) | set(BOY_NAMES) | set(NEUTRAL_NAMES)
    for text in stories[:500]:
        first = text.split("\n")[0]
        main = next(w for w in re.findall(r"[A-Z][a-z]+", first) if w in names)
        rest = "\n".join(text.split("\n")[1:])
        assert len(re.findall(rf"\b{main}\b", rest)) >= 2


def test_corpus_splits_are_disjoint_and_sized() -> None:
    cfg = CorpusConfig(stories=3000, seed=3)
    train, val = generate_corpus(cfg)
    assert len(train) == 3000
    assert len(val) == 300
    assert set(train).isdisjoint(val)
    assert train == generate_stories(3000, 3)
    assert CorpusConfig(stories=100).val_count == 200
    assert CorpusConfig(stories=100, val_stories=7).val_count == 7


def test_near_duplicates_exact_count_and_really_near(stories: list[str]) -> None:
    pairs = near_duplicate_pairs(3000, 0, 0.03)
    assert len(pairs) == 90
    copies = {c for c, _ in pairs}
    assert [c for c, _ in pairs] == sorted(copies)
    for copy, source in pairs:
        assert source < copy
        assert source not in copies
        similarity = _jaccard(stories[copy], stories[source])
        # Measured 0.54-0.95 over six seeds; unrelated stories sit near 0.01 (99th percentile 0.07).
        assert 0.5 <= similarity < 1.0
    originals = [i for i in range(3000) if i not in copies]
    unrelated = [_jaccard(stories[a], stories[b]) for a, b in zip(originals[:200], originals[200:400], strict=True)]
    assert max(unrelated) < 0.3


def test_near_duplicates_in_validation_split() -> None:
    cfg = CorpusConfig(stories=2000, val_stories=1000, seed=5, near_dup_rate=0.05)
    _, val = generate_corpus(cfg)
    pairs = near_duplicate_pairs(1000, 5, 0.05, split="val")
    assert len(pairs) == 50
    assert all(0.5 <= _jaccard(val[c], val[s]) < 1.0 for c, s in pairs)


def test_near_duplicate_rate_edges() -> None:
    assert near_duplicate_pairs(1000, 0, 0.0) == []
    assert near_duplicate_pairs(1, 0, 0.5) == []
    assert len(near_duplicate_pairs(10, 0, 0.99)) == 9
    assert len(near_duplicate_pairs(1000, 0, 0.1)) == 100
    assert len(set(generate_stories(500, 2, near_dup_rate=0.0))) == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stories": 0},
        {"stories": True},
        {"stories": 2.5},
        {"val_stories": 0},
        {"seed": -1},
        {"near_dup_rate": 1.0},
        {"near_dup_rate": -0.01},
        {"near_dup_rate": math.nan},
        {"near_dup_rate": "0.1"},
    ],
)
def test_bad_config_raises_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        CorpusConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_function_arguments_raise_usage_error() -> None:
    with pytest.raises(UsageError, match="n must be"):
        generate_stories(-1, 0)
    with pytest.raises(UsageError, match="near_dup_rate"):
        generate_stories(10, 0, near_dup_rate=1.5)
    with pytest.raises(UsageError, match="split"):
        near_duplicate_pairs(10, 0, 0.1, split="test")
    assert generate_stories(0, 0) == []


def test_bigram_entropy_far_below_unigram(stories: list[str]) -> None:
    tokens = [t for text in stories for t in re.findall(r"[a-z]+(?:[-'][a-z]+)*|[.,!?\"]", text.lower())]
    unigrams = Counter(tokens)
    n = len(tokens)
    h_unigram = -sum(c / n * math.log2(c / n) for c in unigrams.values())
    bigrams = Counter(itertools.pairwise(tokens))
    h_bigram = -sum(c / (n - 1) * math.log2(c / unigrams[a]) for (a, _), c in bigrams.items())
    # Measured on these 3,000 stories (621k tokens): unigram 7.96 bits, bigram-conditional 3.65.
    assert 7.5 < h_unigram < 8.5
    assert h_unigram - h_bigram > 3.5
