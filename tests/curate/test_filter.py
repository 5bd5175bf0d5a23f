"""`curate filter` (datadiet.curate.filter): measures equal their plain-Python definitions, removals labelled."""

from __future__ import annotations

import math
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.filter.op import REMOVED_FILE, FilterConfig, filter_dataset, read_removed
from datadiet.curate.filter.rules import RULES, measure, parse_rule, reference_metrics
from datadiet.errors import UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import PartWriter, Store
from tests.helpers import cli

PIECES = [
    "the",
    "cat",
    "and",
    "of",
    "ÉTÉ",
    "naïve",
    "42",
    "#tag",
    "...",
    "…",
    "-",
    "•",
    "*",
    "!",
    "x",
    "a.",
    "b?",
    "\n",
    "\n",
    "\n\n",
    "  ",
    "\t",
    "Tom",
    "With",
    "THAT",
    "ran",
    "to",
    "the",
    "park",
    "’",
    "»",
    "3.14",
]


def random_doc(rng: random.Random) -> str:
    n = rng.choice([0, 1, 3, 8, 30, 120])
    words = [rng.choice(PIECES) for _ in range(n)]
    if rng.random() < 0.3 and words:  # repeated lines and phrases
        words = [*words[: max(1, n // 3)], "\n"] * 3
    text = ""
    for w in words:
        text += w if w.isspace() else (" " + w if text and not text[-1].isspace() else w)
    return text


def test_vectorised_measures_equal_the_reference() -> None:
    rng = random.Random(7)
    docs = [random_doc(rng) for _ in range(600)] + ["", " ", "\n", "one", "- a\n- b\n", "a...\nb…\n\nc."]
    got = measure(pl.DataFrame({TEXT: docs}), list(RULES))
    for i, doc in enumerate(docs):
        ref = reference_metrics(doc)
        for name in RULES:
            assert math.isclose(got[name][i], ref[name], rel_tol=1e-12, abs_tol=1e-12), (name, doc, got[name][i])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab .#…-\n\tÉ4’")), max_size=60), min_size=1, max_size=5))
def test_measures_match_on_arbitrary_text(docs: list[str]) -> None:
    got = measure(pl.DataFrame({TEXT: docs}), list(RULES))
    for i, doc in enumerate(docs):
        ref = reference_metrics(doc)
        for name in RULES:
            assert math.isclose(got[name][i], ref[name], rel_tol=1e-12, abs_tol=1e-12), (name, doc)


def test_known_values() -> None:
    doc = "The cat sat.\n- a list item\n- another one...\nThe cat sat."
    m = reference_metrics(doc)
    assert m["word_count"] == 13
    assert m["bullet_lines"] == 0.5 and m["ellipsis_lines"] == 0.25
    assert m["dup_lines"] == 0.25  # one of four non-empty lines repeats an earlier one
    assert m["stop_words"] == 2  # "The" twice
    assert m["punct_lines"] == 0.75  # "- a list item" ends without punctuation


def test_parse_rule() -> None:
    assert [r.name for r in parse_rule("gopher")][:3] == ["word_count", "mean_word_length", "symbol_ratio"]
    assert parse_rule("word_count:min=10,max=none")[0].max is None
    assert parse_rule("word_count:min=10")[0].label == "10 <= word_count <= 100000"
    for bad, message in [
        ("nope", "unknown --rule"),
        ("word_count:low=1", "give bounds as"),
        ("word_count:min=x", "must be a number"),
        ("word_count:min=inf", "finite"),
        ("word_count:min=none,max=none", "neither a min nor a max"),
        ("word_count:min=5,max=1", "above max"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_rule(bad)


@pytest.fixture
def planted(tmp_path: Path) -> Store:
    """Two parts: good stories and documents each planted to fail one rule."""
    store = Store(tmp_path / "store")
    good = "Tom and the cat ran to the park. They had fun with a red ball all day long."
    docs = {
        "good1": good,
        "short": "The end.",
        "hashes": "the " + " ".join(["#x"] * 20) + " and",
        "repeat": "\n".join(["the same line of text and so on."] * 5),
        "good2": good.replace("Tom", "Sue"),
        "nostop": "Cats run fast. Dogs bark loud. Birds sing songs. Fish swim deep.",
    }
    ids = list(docs)

    def build(w: PartWriter) -> None:
        w.write(pl.DataFrame({ID: ids[:3], TEXT: [docs[i] for i in ids[:3]], "lang": ["en"] * 3}))
        w.write(pl.DataFrame({ID: ids[3:], TEXT: [docs[i] for i in ids[3:]], "lang": ["en", "fr", "en"]}))

    store.commit("p", operation="t", params={}, parents=[], build=build)
    return store


def test_filter_labels_each_removal(planted: Store) -> None:
    cfg = FilterConfig.from_specs(
        where=["lang = 'en'"], rules=["word_count:min=5", "symbol_ratio", "dup_lines", "stop_words"]
    )
    commit = filter_dataset(planted, "p", cfg, name="pf")
    ds = commit.dataset
    assert ds.read()[ID].to_list() == ["good1"]
    assert len(ds.parts) == 1  # input part 2 kept nothing, and an empty part after the first is dropped
    removed = read_removed(ds)
    assert dict(zip(removed[ID], removed["rule"], strict=True)) == {
        "short": "5 <= word_count <= 100000",
        "hashes": "symbol_ratio <= 0.1",
        "repeat": "dup_lines <= 0.3",
        "good2": "where lang = 'en'",
        "nostop": "2 <= stop_words",
    }
    stats = ds.manifest.stats
    assert (stats["rows_in"], stats["rows_out"], stats["removed"]) == (6, 1, 5)
    table = {r["condition"]: r for r in stats["conditions"]}
    assert table["where lang = 'en'"] == {
        "condition": "where lang = 'en'",
        "failed": 1,
        "removed_first": 1,
        "failed_only_this": 1,
    }
    assert table["2 <= stop_words"]["failed"] >= 1
    assert sum(r["removed_first"] for r in stats["conditions"]) == 5
    assert REMOVED_FILE in ds.manifest.files
    again = filter_dataset(planted, "p", cfg, name="pf")
    assert again.up_to_date and again.dataset.version == ds.version
    other = filter_dataset(planted, "p", FilterConfig.from_specs(rules=["word_count:min=4"]), name="pf")
    assert other.dataset.version != ds.version


def test_filter_errors(planted: Store) -> None:
    with pytest.raises(UsageError, match="at least one --where or --rule"):
        FilterConfig()
    with pytest.raises(UsageError, match="not a valid SQL condition"):
        FilterConfig.from_specs(where=["length(text) >>> 1"])
    with pytest.raises(UsageError, match="cannot be evaluated on this dataset"):
        filter_dataset(planted, "p", FilterConfig.from_specs(where=["nope > 1"]))
    with pytest.raises(UsageError, match="given twice"):
        FilterConfig.from_specs(rules=["gopher", "word_count"])


def test_curate_filter(runner: CliRunner, store_path: Path) -> None:
    cli(runner, "corpus", "--stories", "200", "--val-stories", "20", "--name", "c")
    out = cli(runner, "filter", "c-train", "--rule", "gopher", "-w", "length(text) > 700", "-n", "cf")
    assert out["stats"]["rows_out"] + out["stats"]["removed"] == 200
    assert out["stats"]["rows_out"] == cli(runner, "show", "cf")["rows"]
    shown = runner.invoke(app, ["filter", "c-train", "--rule", "gopher", "-w", "length(text) > 700", "-n", "cf"])
    assert shown.exit_code == 0 and "up to date" in shown.stdout and "what each condition removed" in shown.stdout
    help_text = runner.invoke(app, ["filter", "--help"]).stdout
    assert "mean_word_length" in help_text and "gopher" in help_text
