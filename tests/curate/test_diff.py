"""`curate diff`: exact counts of added, removed and changed rows on planted versions, stats and lineage."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.diff.compare import diff_versions
from datadiet.schema import ID, TEXT
from datadiet.store import PartWriter, Store
from tests.helpers import cli


def _version(store: Store, name: str, rows: dict[str, str], parent: str | None = None) -> str:
    def build(w: PartWriter) -> None:
        w.write(pl.DataFrame({ID: list(rows), TEXT: list(rows.values())}))

    parents = [parent] if parent else []
    return store.commit(name, operation="t", params={"n": len(rows)}, parents=parents, build=build).dataset.ref


def test_diff_counts_planted_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    a = _version(store, "a", {"1": "one", "2": "two", "3": "three", "4": "four"})
    b = _version(store, "b", {"1": "one", "2": "TWO", "4": "four", "5": "three", "6": "one"}, parent=a)
    d = diff_versions(store, a, b, examples=10)
    assert d.counts == {"added": 2, "removed": 1, "changed": 1, "unchanged": 2}
    assert d.examples == {"added": ["5", "6"], "removed": ["3"], "changed": ["2"]}
    # "three" moved to id 5 and "one" appears twice in B: texts see what ids cannot.
    assert d.texts == {"only_in_a": 1, "only_in_b": 1, "in_both": 3, "duplicate_rows_a": 0, "duplicate_rows_b": 1}
    assert (d.stats["a"]["rows"], d.stats["b"]["rows"]) == (4, 5)
    assert d.stats["b"]["characters"] == len("one" + "TWO" + "four" + "three" + "one")
    assert d.common_ancestor == a
    assert [e["ref"] for e in d.lineage["b"]] == [b, a]
    same = diff_versions(store, a, a)
    assert same.counts == {"added": 0, "removed": 0, "changed": 0, "unchanged": 4}


def test_curate_diff(runner: CliRunner, store_path: Path) -> None:
    cli(runner, "corpus", "--stories", "100", "--val-stories", "10", "--name", "c")
    cli(runner, "subset", "c-train", "--fraction", "0.5", "-n", "half")
    out = cli(runner, "diff", "c-train", "half")
    assert out["rows"] == {"added": 0, "removed": 50, "changed": 0, "unchanged": 50}
    assert out["common_ancestor"].startswith("c-train@")
    shown = runner.invoke(app, ["diff", "c-train", "half"])
    assert shown.exit_code == 0 and "removed (A only)" in shown.stdout and "lineage B" in shown.stdout
