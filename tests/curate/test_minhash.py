"""Normalisation, shingling, the shingle hash, MinHash signatures (equal to datasketch's) and LSH parameters."""

from __future__ import annotations

import random
import string

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadiet.curate.dedupe.minhash import (
    MinhashConfig,
    band_keys,
    candidate_probability,
    estimate_jaccard,
    exact_jaccard,
    optimal_param,
    permutations,
    s_curve,
    signatures,
)
from datadiet.curate.dedupe.normalize import (
    block_shingles,
    hashfunc,
    normalize,
    shingle_hash,
    shingle_hash64,
    shingles,
    text_digest,
    words,
)
from datadiet.errors import UsageError

EDGE_TEXTS = [
    "",
    "   \t\n ",
    "!!!",
    "a",
    "Hello, World!",
    "one two three four",
    "one two three four five",
    "Ünïcödé ﬁ ligature — dash’s “quotes”",
    "ΣΑΣ ΟΔΟΣ. Straße",
    "$100 + 5 = <b>bold</b> 😀 emoji",
    "x" * 50,
    "tab\tand\nnewline\r\nand\u00a0nbsp\u2003em-space\u3000ideographic",
    "\x00nul\x1cfile-sep\x85nel",
]


def _random_docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 9))) for _ in range(300)]
    vocab += ["Émile", "naïve", "“quoted”", "it’s", "--", "...", "Σίσυφος", "日本語"]
    docs = []
    for _ in range(n):
        ws = rng.choices(vocab, k=rng.randint(0, 120))
        seps = rng.choices([" ", "  ", ", ", ". ", "\n", "\t", "! "], k=len(ws))
        docs.append("".join(w + s for w, s in zip(ws, seps, strict=True)))
    return docs


# -- normalisation and shingling ----------------------------------------------------------------


def test_normalize_examples() -> None:
    assert normalize("Hello,   World!\n") == "hello world"
    assert normalize("ﬁne ＦＵＬＬ-width") == "fine full width"
    assert normalize("don’t stop—now") == "don t stop now"
    assert normalize("a\u00a0b\u2003c") == "a b c"
    assert normalize("$5 + x = y") == "5 x y"
    assert normalize("") == ""
    assert normalize(" ... ") == ""


def test_shingles_short_and_empty_documents() -> None:
    assert shingles("", 5) == []
    assert shingles("!?", 5) == []
    assert shingles("One, two.", 5) == ["one two"]
    assert shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]
    assert shingles("abc", 5, "char") == ["abc"]
    assert shingles("ab cd", 3, "char") == ["ab ", "b c", " cd"]
    with pytest.raises(ValueError, match="unknown shingle kind"):
        shingles("x", 3, "line")


def test_shingle_hash_is_stable() -> None:
    # Fixed values: a change here changes every signature and every version id's meaning.
    assert shingle_hash64("the cat sat on the") == shingle_hash64("the cat sat on the")
    assert shingle_hash("a") == shingle_hash64("a") >> 32
    assert 0 <= shingle_hash("the cat sat on the") < 2**32
    assert shingle_hash("a b", "word") != shingle_hash("a b", "char")
    assert shingle_hash("ab") != shingle_hash("a b")


@pytest.mark.parametrize(("kind", "ngram"), [("word", 5), ("word", 1), ("word", 3), ("char", 5), ("char", 1)])
def test_block_shingles_equal_reference(kind: str, ngram: int) -> None:
    texts = EDGE_TEXTS + _random_docs(200, seed=ngram)
    block = block_shingles(texts, ngram, kind)
    for i, text in enumerate(texts):
        expected = [shingle_hash64(s, kind) for s in shingles(text, ngram, kind)]
        assert block.hashes[block.offsets[i] : block.offsets[i + 1]].tolist() == expected, text
        assert block.digests[i].tobytes() == text_digest(text)
        assert block.lengths[i] == len(text)


def test_digest_equal_for_same_normal_form() -> None:
    assert text_digest("Hello, world!") == text_digest("hello world")
    assert text_digest("hello world") != text_digest("hello  worlds")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_normalize_idempotent_and_clean(text: str) -> None:
    norm = normalize(text)
    assert normalize(norm) == norm
    assert norm == norm.strip()
    assert "  " not in norm
    assert words(text) == (norm.split(" ") if norm else [])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.integers(min_value=1, max_value=7), st.sampled_from(["word", "char"]))
def test_shingling_invariants(text: str, ngram: int, kind: str) -> None:
    toks = words(text) if kind == "word" else list(normalize(text))
    sh = shingles(text, ngram, kind)
    if not toks:
        assert sh == []
    elif len(toks) < ngram:
        assert len(sh) == 1
    else:
        assert len(sh) == len(toks) - ngram + 1
    # The vectorised path agrees on arbitrary Unicode.
    block = block_shingles([text], ngram, kind)
    assert block.hashes.tolist() == [shingle_hash64(s, kind) for s in sh]


# -- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_perm", "seed", "kind", "ngram"), [(128, 1, "word", 5), (64, 7, "char", 4), (16, 0, "word", 2)]
)
def test_signatures_equal_datasketch(num_perm: int, seed: int, kind: str, ngram: int) -> None:
    texts = EDGE_TEXTS + _random_docs(120, seed=seed)
    block = block_shingles(texts, ngram, kind)
    sig = signatures(block.hashes, block.offsets, permutations(num_perm, seed), window=256)
    fn = hashfunc(kind)
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=fn)
        m.update_batch(shingles(text, ngram, kind))
        assert m.hashvalues.dtype == np.uint32
        assert np.array_equal(m.hashvalues, sig[i]), text


def test_signature_windows_do_not_change_values() -> None:
    texts = [*_random_docs(300, seed=3), "word " * 5000]
    block = block_shingles(texts, 5)
    perms = permutations(128, 1)
    ref = signatures(block.hashes, block.offsets, perms, window=100_000)
    for window in (1, 7, 64, 4096):
        assert np.array_equal(signatures(block.hashes, block.offsets, perms, window=window), ref)


def test_empty_document_signature_is_max() -> None:
    block = block_shingles(["", "a"], 5)
    sig = signatures(block.hashes, block.offsets, permutations(32, 1))
    assert (sig[0] == 2**32 - 1).all()
    assert not (sig[1] == 2**32 - 1).all()


def test_band_keys_agree_iff_band_agrees() -> None:
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 4], [5, 2, 3, 4]], dtype=np.uint32)
    keys = band_keys(sig, 2, 2)
    assert keys[0, 0] == keys[1, 0]
    assert keys[0, 1] != keys[1, 1]
    assert keys[0, 1] == keys[2, 1]
    assert keys[0, 0] != keys[2, 0]


def _set_pair(rng: random.Random, size: int, jaccard: float) -> tuple[list[str], list[str]]:
    # |A n B| / |A u B| = j with |A| = |B| = size: shared = 2 j size / (1 + j).
    shared = round(2 * jaccard * size / (1 + jaccard))
    common = [f"c{rng.random()}" for _ in range(shared)]
    return common + [f"a{rng.random()}" for _ in range(size - shared)], common + [
        f"b{rng.random()}" for _ in range(size - shared)
    ]


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=2**31))
def test_jaccard_estimate_within_tolerance(jaccard: float, seed: int) -> None:
    rng = random.Random(seed)
    a, b = _set_pair(rng, 200, jaccard)
    true = len(set(a) & set(b)) / len(set(a) | set(b))
    ha = np.array([shingle_hash64(x) for x in a], dtype=np.uint64)
    hb = np.array([shingle_hash64(x) for x in b], dtype=np.uint64)
    perms = permutations(256, seed % 1000)
    sig = signatures(np.concatenate([ha, hb]), np.array([0, ha.size, ha.size + hb.size]), perms)
    est = float(estimate_jaccard(sig[:1], sig[1:])[0])
    # Standard error sqrt(J(1-J)/256) <= 0.031; 5 standard errors: a false failure ~1 in 3.5 million.
    assert abs(est - true) <= 5 * max(np.sqrt(true * (1 - true) / 256), 1 / 256) + 1e-9
    assert exact_jaccard(ha, hb) == pytest.approx(true)


def test_exact_jaccard_edge_cases() -> None:
    empty = np.empty(0, dtype=np.uint64)
    assert exact_jaccard(empty, empty) == 1.0
    assert exact_jaccard(np.array([1, 1, 2], dtype=np.uint64), np.array([2, 3], dtype=np.uint64)) == pytest.approx(
        1 / 3
    )


# -- LSH parameters and config ------------------------------------------------------------------


def test_optimal_param_defaults_favour_recall() -> None:
    assert optimal_param(0.8, 128) == (16, 8)
    b, r = optimal_param(0.8, 128)
    assert candidate_probability(0.85, b, r) > 0.99
    # Equal weights (datasketch's default) would pick 9 x 13, which misses a third of J = 0.85 pairs.
    assert optimal_param(0.8, 128, 0.5, 0.5) == (9, 13)
    assert candidate_probability(0.85, 9, 13) < 0.7


def test_s_curve_is_monotone() -> None:
    curve = s_curve(16, 8)
    probs = [p for _, p in curve]
    assert probs == sorted(probs)
    assert dict(curve)[0.8] == pytest.approx(1 - (1 - 0.8**8) ** 16)


def test_config_resolves_bands_rows() -> None:
    assert MinhashConfig().bands_rows() == (16, 8)
    assert MinhashConfig(bands=32).bands_rows() == (32, 4)
    assert MinhashConfig(rows=4).bands_rows() == (32, 4)
    assert MinhashConfig(bands=10, rows=12).bands_rows() == (10, 12)
    params = MinhashConfig().params()
    assert (params["bands"], params["rows"]) == (16, 8)
    assert MinhashConfig.from_params(params) == MinhashConfig(bands=16, rows=8)
    assert "num_perm" not in MinhashConfig(method="exact").params()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, "--threshold must be a number strictly between 0 and 1"),
        ({"threshold": 1.0}, "--threshold must be a number strictly between 0 and 1"),
        ({"threshold": float("nan")}, "--threshold"),
        ({"threshold": "0.8"}, "--threshold"),
        ({"num_perm": 0}, "--num-perm must be an integer from 1"),
        ({"ngram": 0}, "--ngram must be an integer from 1"),
        ({"bands": 3}, "--num-perm 128 is not divisible by --bands 3"),
        ({"rows": 5}, "--num-perm 128 is not divisible by --rows 5"),
        ({"bands": 20, "rows": 8}, "--bands 20 x --rows 8 = 160 exceeds --num-perm 128"),
        ({"bands": 0}, "--bands must be a positive integer"),
        ({"shingle": "line"}, "--shingle must be one of word, char"),
        ({"keep": "last"}, "--keep must be one of first, longest, random"),
        ({"method": "fuzzy"}, "--method must be one of exact, minhash"),
        ({"seed": -1}, "--seed must be an integer"),
    ],
)
def test_config_errors_are_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        MinhashConfig(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)
