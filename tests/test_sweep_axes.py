"""The sweep axes: budgets that reuse every data step, epochs per size, the repetition grid, corruption, filters."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.corpus.op import CorpusConfig, write_corpus
from datadiet.curate.duplicate.inject import duplicate_frame
from datadiet.errors import UsageError
from datadiet.schema import ID, SOURCE_ID, TEXT
from datadiet.store import Store
from datadiet.sweep import SweepConfig, epochs_to_steps, plan, repetition_config, run_sweep
from datadiet.sweep.axes import filter_axis
from tests.helpers import cli

FAST = (("threads", "1"),)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(tmp_path / "store")
    train, val = write_corpus(store, CorpusConfig(stories=200, val_stories=40, seed=5), "c")
    return store, train.dataset.ref, val.dataset.ref


def _config(train: str, val: str, **kw: object) -> SweepConfig:
    args = {"base": train, "val": val, "sizes": (0.25, 1.0), "rates": (0.0,), "preset": "tiny", "vocab": 300}
    args.update({"overrides": FAST, **kw})
    return SweepConfig(**args)  # type: ignore[arg-type]


@pytest.mark.slow
def test_budget_axis_reuses_every_data_step_and_reports_the_budget(corpus: tuple[Store, str, str]) -> None:
    store, train, val = corpus
    cfg = _config(train, val, budgets=(4, 16))
    nodes, _ = plan(store, cfg)
    runs = [n for n in nodes if n.kind == "runs"]
    assert len(runs) == 4  # 2 sizes × 2 budgets
    # Both budgets train on the same variant node: one data step per size.
    assert len({n.deps[0] for n in runs}) == 2
    commit = run_sweep(store, cfg)
    everything = pl.read_parquet(commit.dataset.path / "all_runs.parquet")
    assert sorted(everything["budget_steps"].unique().to_list()) == [4, 16]
    assert everything.filter(pl.col("budget_steps") == 16)["tokens_seen"].to_list() == [16 * 1024] * 2
    report = (commit.dataset.path / "report.md").read_text(encoding="utf-8")
    assert "When does quantity start to matter?" in report and "Data-constrained fit" in report
    # The HTML page has the same sections with real tables: the fit's observed against predicted loss.
    page = (commit.dataset.path / "report.html").read_text(encoding="utf-8")
    assert "<h3>Data-constrained fit" in page and ">residual</th>" in page
    # The size × duplication report is about the largest budget only.
    assert pl.read_parquet(commit.dataset.path / "runs.parquet")["budget_steps"].unique().to_list() == [16]


def test_epochs_become_steps_per_size(corpus: tuple[Store, str, str]) -> None:
    from datadiet.train.pipeline import resolve_tokenizer, tokenizer_version, tokens_version

    store, train, val = corpus
    cfg = _config(train, val, epochs=(2.0,))
    tok = tokenizer_version(store, train, 300).dataset.ref
    tokens = int(tokens_version(store, store.resolve(train), resolve_tokenizer(store, tok)).manifest.stats["tokens"])
    assert epochs_to_steps(store, cfg, train, tok, 2.0) == math.ceil(2 * tokens / (16 * 64))


def test_repetition_cell_has_the_asked_share_and_count() -> None:
    dc = repetition_config(1000, 0.1, 10, seed=3)
    assert dc.pool == 10  # 10 documents × 10 appearances (1 original + 9 copies) = 100 rows = 10% of 1,000
    frame = pl.DataFrame({ID: [f"d{i}" for i in range(1000)], TEXT: [f"story {i}" for i in range(1000)]})
    out, _ = duplicate_frame(frame, dc)
    counts = out.group_by(SOURCE_ID).len().filter(pl.col("len") > 1)["len"].to_list()
    assert counts == [10] * 10
    with pytest.raises(UsageError, match="more than the 50 of the subset"):
        repetition_config(50, 1.0, 100, seed=0)


def test_repetition_and_corruption_nodes(corpus: tuple[Store, str, str]) -> None:
    store, train, val = corpus
    grid = _config(
        train, val, sizes=(1.0,), rates=(0.0, 0.25, 0.5, 0.75, 1.0), repeat_fractions=(0.1,), repeat_counts=(2, 8)
    )
    keys = sorted(n.key for n in plan(store, grid)[0] if n.kind == "runs")
    assert keys == ["run:0:1:f0.1k2:0", "run:0:1:f0.1k8:0"]
    bad = _config(train, val, corrupt="typos:0,0.2", memorisation=True)
    nodes = plan(store, bad)[0]
    corrupted = [n for n in nodes if n.operation == "corrupt"]
    assert sorted(n.key for n in corrupted) == [
        "variant:0:0.25:0:c0",
        "variant:0:0.25:0:c0.2",
        "variant:0:1:0:c0",
        "variant:0:1:0:c0.2",
    ]
    runs = [n for n in nodes if n.kind == "runs"]
    assert {n.deps[0] for n in runs} == {n.key for n in corrupted}
    assert sum(n.operation == "memorisation" for n in nodes) == len(runs) == 4


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"budgets": (10, 20), "epochs": (1.0,)}, "give one budget axis"),
        ({"steps": 10, "budgets": (10, 20)}, "give one budget axis"),
        ({"budgets": (10, 10)}, "--steps must not repeat a value"),
        ({"repeat_fractions": (0.1,)}, "needs both --repeat-fraction and --repeat-count"),
        ({"repeat_fractions": (0.1,), "repeat_counts": (1,)}, "--repeat-count must be at least 2"),
        ({"repeat_fractions": (0.1,), "repeat_counts": (2,), "pool": 3}, "drop --rates, --pool and --copies"),
        ({"corrupt": "typos"}, "is not KIND:RATES"),
        ({"corrupt": "noise:0.1"}, "--corrupt 'noise:0.1': --kind must be one of"),
        ({"corrupt": "typos:0,2"}, "--corrupt 'typos:0,2': --rate must be between 0 and 1"),
        ({"corrupt": "mix:0,0.1"}, "needs --corrupt-from OTHER"),
        ({"corrupt_from": "x"}, "--corrupt-from needs --corrupt mix"),
    ],
)
def test_axis_rules(kw: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config("a", "b", **kw)


def test_axes_from_the_sweep_toml(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[sweep]\nbase = "a"\nval = "b"\npreset = "tiny"\nvocab = 300\nrates = [0.0]\n'
        'budgets = [100, 400, 1600]\ncorrupt = "shuffle:0,0.5"\nmemorisation = true\n',
        encoding="utf-8",
    )
    cfg = SweepConfig.from_toml(path, {})
    assert cfg.budgets == (100, 400, 1600) and cfg.corrupt == "shuffle:0,0.5" and cfg.memorisation
    path.write_text('[sweep]\nbase = "a"\nval = "b"\npreset = "tiny"\nepochs = [0.5, "two"]\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"epochs\[1\]"):
        SweepConfig.from_toml(path, {})


# -- the filter axis: a quality filter vs none, as cached `curate filter` nodes after every variant --

# The built-in stories have 127-203 words: this level removes about half of them, `none` none.
RULE = "word_count:min=160"


def _filter_config(train: str, val: str, **kw: object) -> SweepConfig:
    return _config(train, val, sizes=(0.5, 1.0), steps=4, **kw)


def test_filter_axis_parses_levels_with_bounds() -> None:
    assert filter_axis("none,gopher") == ("none", "gopher")
    spec = "none,word_count:min=50,max=1000+mean_word_length:max=12,all"
    assert filter_axis(spec) == ("none", "word_count:min=50,max=1000+mean_word_length:max=12", "all")
    with pytest.raises(UsageError, match="has an empty level"):
        filter_axis("none,,gopher")


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (("none", "none"), "--filter must not repeat a level"),
        (("nonsense",), "--filter level 'nonsense': unknown --rule 'nonsense'"),
        (("word_count:min=x",), "min must be a number"),
    ],
)
def test_filter_axis_rules(levels: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _filter_config("a", "b", filters=levels)


def test_filter_nodes_reuse_the_unfiltered_runs(corpus: tuple[Store, str, str]) -> None:
    store, train, val = corpus
    plain = {n.key for n in plan(store, _filter_config(train, val))[0] if n.kind == "runs"}
    nodes = plan(store, _filter_config(train, val, filters=("none", RULE)))[0]
    filters = [n for n in nodes if n.operation == "filter"]
    assert sorted(n.key for n in filters) == [
        "variant:0:0.5:0:qword_count-min-160",
        "variant:0:1:0:qword_count-min-160",
    ]
    runs = [n for n in nodes if n.kind == "runs"]
    # `none` is the variant itself: its runs are the runs of a sweep without the axis (same keys, same cache).
    assert plain < {n.key for n in runs} and len(runs) == 4
    assert {n.factors["filter"] for n in runs} == {"none", RULE}
    only = plan(store, _filter_config(train, val, filters=(RULE,)))[0]
    assert {n.deps[0] for n in only if n.kind == "runs"} == {n.key for n in filters}


@pytest.mark.slow
def test_tiny_sweep_with_a_filter_axis(corpus: tuple[Store, str, str]) -> None:
    store, train, val = corpus
    cfg = _filter_config(train, val, filters=("none", RULE))
    commit = run_sweep(store, cfg)
    everything = pl.read_parquet(commit.dataset.path / "all_runs.parquet")
    docs = dict(everything.filter(pl.col("size_fraction") == 1.0).select("filter", "stat_documents").iter_rows())
    assert docs["none"] > docs[RULE] > 0  # the filter removed some, not all
    # The size × duplication report is about the unfiltered runs; the filter has its own section.
    assert pl.read_parquet(commit.dataset.path / "runs.parquet")["filter"].unique().to_list() == ["none"]
    report = (commit.dataset.path / "report.md").read_text(encoding="utf-8")
    assert f"## Quality filter: none vs {RULE}" in report and "| documents |" in report
    assert "cleaner and of less data together" in report
    # A sweep without the axis keeps its id (the config's `filters` is left out of it when empty).
    assert "filters" in commit.dataset.manifest.params
    again = run_sweep(store, _filter_config(train, val))
    assert "filters" not in again.dataset.manifest.params


def test_cli_dry_run_and_toml(runner: CliRunner, store_path: Path, tmp_path: Path) -> None:
    cli(runner, "corpus", "--stories", "200", "--val-stories", "40", "-n", "c")
    args = ["sweep", "--base", "c-train", "--val", "c-val", "--sizes", "0.5,1", "--rates", "0", "--preset", "tiny"]
    out = cli(runner, *args, "--vocab", "300", "--filter", f"none,{RULE}", "--dry-run")
    keys = {n["key"]: n for n in out["nodes"]}
    assert keys["variant:0:1:0:qword_count-min-160"]["label"].endswith(f"× filter {RULE}")
    assert "run:0:1:0:qword_count-min-160:0" in keys and "run:0:1:0:0" in keys
    bad = runner.invoke(app, [*args, "--filter", "none,nonsense", "--dry-run"])
    assert bad.exit_code == 2 and "--filter level 'nonsense'" in bad.stderr
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'[sweep]\nbase = "a"\nval = "b"\npreset = "tiny"\nfilters = ["none", "{RULE}"]\n', encoding="utf-8"
    )
    assert SweepConfig.from_toml(path, {}).filters == ("none", RULE)
