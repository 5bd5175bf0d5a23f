"""`curate corrupt`: exact rows per seed, the rates realised, labels, determinism across parts and chunks."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.corrupt import build as corrupt_build
from datadiet.curate.corrupt.op import CorruptConfig, corrupt, corrupt_rows
from datadiet.errors import UsageError
from datadiet.schema import CORRUPT_FRACTION, CORRUPT_FROM, CORRUPTION, ID, SOURCE_ID, TEXT
from datadiet.store import PartWriter, Store

SMALL = pl.DataFrame(
    {
        ID: ["a", "b"],
        TEXT: [
            "Tom had a red ball. He liked it a lot!\nThe end.",
            "Café au lait, s'il vous plaît. “Yes,” said Ana.",
        ],
    }
)


def stories(n: int, seed: int = 0) -> pl.DataFrame:
    """N small stories of several sentences, with some non-ASCII text and line breaks."""
    rng = np.random.default_rng(seed)
    words = ["Tom", "had", "a", "red", "ball", "Lily", "ran", "to", "the", "park", "café", "naïve", "big", "dog"]
    texts = []
    for _ in range(n):
        sentences = []
        for _ in range(int(rng.integers(1, 6))):
            body = " ".join(rng.choice(words, int(rng.integers(1, 9))))
            sentences.append(body + str(rng.choice([".", "!", "?", '."'])))
        texts.append((" " if rng.random() < 0.5 else "\n").join(sentences))
    return pl.DataFrame({ID: [f"d{i}" for i in range(n)], TEXT: texts})


# -- exact rows per seed ----------------------------------------------------------------------------


def test_typos_exact_rows_for_seed_3() -> None:
    out = corrupt_rows(SMALL, CorruptConfig(kind="typos", rate=0.2, seed=3))
    assert out[TEXT].to_list() == [
        "Tm had a rde bap. Hy liked it a ol!\nTh ond.",
        "Cgfé ua laft, s'il vous plaît. “CYes,” sqd Ana.",
    ]
    assert out[CORRUPTION].to_list() == ["typos", "typos"]
    # 9 typos in 33 letters, 6 in 30 (é, î and the quotes are not ASCII letters).
    assert out[CORRUPT_FRACTION].to_list() == pytest.approx([9 / 33, 6 / 30])
    assert out[ID].to_list() == ["a", "b"]


def test_shuffle_exact_rows_for_seed_3() -> None:
    out = corrupt_rows(SMALL, CorruptConfig(kind="shuffle", rate=1.0, seed=3))
    assert out[TEXT].to_list() == [
        "red Tom ball. a had He it a lot! liked\nThe end.",
        "lait, s'il Café plaît. vous au said “Yes,” Ana.",
    ]


def test_truncate_exact_rows_for_seed_3() -> None:
    out = corrupt_rows(SMALL, CorruptConfig(kind="truncate", rate=1.0, seed=3))
    assert out[TEXT].to_list() == ["Tom had a red ball. He liked it a lot!", "Café au lait, s'il vous"]
    assert out[CORRUPT_FRACTION].to_list() == pytest.approx([9 / 47, 24 / 47])  # characters, not bytes


def test_mix_exact_rows_and_labels() -> None:
    other = pl.DataFrame({ID: ["x1", "x2"], TEXT: ["sms one", "sms two"]})
    frame = pl.DataFrame({ID: ["a", "b", "c"], TEXT: ["A.", "B.", "C."], "extra": [1, 2, 3]})
    out = corrupt_rows(frame, CorruptConfig(kind="mix", rate=1.0, seed=1), other)
    assert out.select(ID, TEXT, SOURCE_ID, CORRUPTION, CORRUPT_FROM, "extra").rows() == [
        ("x1#mix1", "sms one", "x1", "mix", "OTHER", None),
        ("x2#mix2", "sms two", "x2", "mix", "OTHER", None),
        ("x2#mix1", "sms two", "x2", "mix", "OTHER", None),
    ]


# -- what each rate means ---------------------------------------------------------------------------


def test_rate_zero_changes_no_text_and_labels_nothing() -> None:
    frame = stories(50)
    for kind in ("typos", "shuffle", "truncate"):
        out = corrupt_rows(frame, CorruptConfig(kind=kind, rate=0.0, seed=1))
        assert out[TEXT].to_list() == frame[TEXT].to_list()
        assert out[CORRUPTION].null_count() == 50
        assert out[CORRUPT_FRACTION].to_list() == [0.0] * 50


def test_typos_realised_rate_and_only_letters_change() -> None:
    frame = stories(2000)
    out = corrupt_rows(frame, CorruptConfig(kind="typos", rate=0.1, seed=7))
    letters = sum(len(re.findall(r"[A-Za-z]", t)) for t in frame[TEXT])
    typos = float((out[CORRUPT_FRACTION] * frame[TEXT].str.count_matches(r"[A-Za-z]")).sum())
    # Binomial(letters, 0.1): 5 standard deviations is ~0.004 at ~190k letters.
    assert abs(typos / letters - 0.1) < 5 * np.sqrt(0.1 * 0.9 / letters)
    for before, after in zip(frame[TEXT], out[TEXT], strict=True):
        assert re.sub(r"[A-Za-z]", "", before) == re.sub(r"[A-Za-z]", "", after)  # non-letters untouched
        after.encode("utf-8")


def test_shuffle_keeps_each_sentences_words_and_every_length() -> None:
    frame = stories(500)
    out = corrupt_rows(frame, CorruptConfig(kind="shuffle", rate=0.5, seed=2))
    assert (out[TEXT].str.len_bytes() == frame[TEXT].str.len_bytes()).all()
    moved = 0
    for before, after in zip(frame[TEXT], out[TEXT], strict=True):
        assert re.sub(r"\S+", "w", before) == re.sub(r"\S+", "w", after)  # whitespace in place
        assert Counter(before.split()) == Counter(after.split())
        moved += before != after
    assert 0 < moved < 500
    changed = out[CORRUPTION] == "shuffle"
    assert int(changed.sum()) == moved


def test_truncate_cuts_exactly_int_rate_n_documents_to_a_word_prefix() -> None:
    frame = stories(400)
    out = corrupt_rows(frame, CorruptConfig(kind="truncate", rate=0.25, seed=4))
    too_short = frame[TEXT].str.count_matches(r"\S+") < 2
    cut = out[CORRUPTION] == "truncate"
    plan = corrupt_build.plan_rows(400, 0, "truncate", 0.25, 4)
    assert plan.rows.size == 100
    assert int(cut.sum()) == 100 - int(too_short[plan.rows].sum())
    for before, after, was_cut in zip(frame[TEXT], out[TEXT], cut, strict=True):
        if was_cut:
            assert before.startswith(after) and len(after.split()) < len(before.split())
            assert not after[-1].isspace()
        else:
            assert before == after


def test_mix_uses_every_other_document_once_before_any_twice() -> None:
    frame = stories(100)
    other = pl.DataFrame({ID: [f"s{i}" for i in range(30)], TEXT: [f"sms {i}" for i in range(30)]})
    out = corrupt_rows(frame, CorruptConfig(kind="mix", rate=0.7, seed=5), other)
    mixed = out.filter(pl.col(CORRUPTION) == "mix")
    assert mixed.height == 70
    uses = Counter(mixed[SOURCE_ID].to_list())
    assert len(uses) == 30 and set(uses.values()) == {2, 3}
    assert out[ID].n_unique() == 100
    untouched = out.filter(pl.col(CORRUPTION).is_null())
    assert untouched[TEXT].to_list() == frame.filter(pl.col(ID).is_in(untouched[ID].implode()))[TEXT].to_list()


# -- determinism ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["typos", "shuffle", "truncate"])
def test_same_rows_whatever_the_chunk_size(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = stories(300)
    cfg = CorruptConfig(kind=kind, rate=0.3, seed=9)
    whole = corrupt_rows(frame, cfg)
    monkeypatch.setattr(corrupt_build, "CHUNK_BYTES", 500)  # one block of 256 rows per chunk
    assert len(corrupt_build._chunks(frame[TEXT].str.len_bytes().to_numpy(), 0)) == 2
    assert corrupt_rows(frame, cfg).equals(whole)
    assert not corrupt_rows(frame, CorruptConfig(kind=kind, rate=0.3, seed=10)).equals(whole)


def _store_with_parts(root: Path, frame: pl.DataFrame, sizes: list[int]) -> Store:
    store = Store(root)

    def build(writer: PartWriter) -> None:
        start = 0
        for size in sizes:
            writer.write(frame.slice(start, size))
            start += size

    store.commit("s", operation="fixture", params={"sizes": sizes}, parents=[], build=build)
    return store


def test_store_version_matches_the_pure_function_for_a_multi_part_input(tmp_path: Path) -> None:
    frame = stories(700)
    other = pl.DataFrame({ID: ["o1", "o2", "o3"], TEXT: ["x y.", "z.", "w w w."]})
    # Parts that do not end at blocks of 256 rows: rows wait for the next part (256, 256, 188 written).
    store = _store_with_parts(tmp_path / "st", frame, [300, 100, 300])
    store.commit("o", operation="fixture", params={}, parents=[], build=lambda w: w.write(other))
    for cfg, frm in [
        (CorruptConfig(kind="typos", rate=0.2, seed=1), None),
        (CorruptConfig(kind="truncate", rate=0.4, seed=1), None),
        (CorruptConfig(kind="mix", rate=0.2, seed=1), "o"),
    ]:
        commit = corrupt(store, "s", cfg, other=frm, name="bad")
        assert not commit.up_to_date
        written = commit.dataset.read()
        expected = corrupt_rows(frame, cfg, other if frm else None)
        if frm:
            expected = expected.with_columns(
                pl.when(pl.col(CORRUPT_FROM).is_not_null()).then(pl.lit(store.resolve("o").ref)).alias(CORRUPT_FROM)
            )
        assert written.equals(expected)
        assert len(commit.dataset.parts) == 3
        assert corrupt(store, "s", cfg, other=frm, name="bad").up_to_date
    stats = store.resolve("bad").manifest.stats
    assert stats["rows_corrupted"] == 140 and stats["from_documents_used"] == 3


def test_corrupting_twice_lists_both_kinds() -> None:
    once = corrupt_rows(stories(50), CorruptConfig(kind="typos", rate=0.5, seed=1))
    twice = corrupt_rows(once, CorruptConfig(kind="truncate", rate=1.0, seed=1))
    assert set(twice[CORRUPTION].to_list()) <= {"typos,truncate", "typos"}
    assert "typos,truncate" in twice[CORRUPTION].to_list()


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "noise", "rate": 0.1}, "--kind must be one of"),
        ({"kind": "typos", "rate": 1.5}, "--rate must be between 0 and 1"),
        ({"kind": "typos", "rate": float("nan")}, "--rate must be between 0 and 1"),
        ({"kind": "typos", "rate": 0.1, "seed": -1}, "--seed must be >= 0"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        CorruptConfig(**kwargs)  # type: ignore[arg-type]


def test_cli_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "st")
    assert (
        runner.invoke(
            app, ["corpus", "--stories", "60", "--val-stories", "20", "--name", "c", "--store", store, "-q"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app,
        [
            "corrupt",
            "c-train",
            "--kind",
            "mix",
            "--rate",
            "0.5",
            "--from",
            "c-val",
            "--name",
            "m",
            "--store",
            store,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    import json

    payload = json.loads(result.stdout)
    assert payload["stats"]["rows_corrupted"] == 30 and payload["rows"] == 60
