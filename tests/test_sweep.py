"""The sweep DAG end to end on CPU: results, caching, interruption and resumption, --dry-run, the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import datadiet.train.pipeline as train_pipeline
from datadiet.cli import app
from datadiet.curate.corpus.op import CorpusConfig, write_corpus
from datadiet.store import Store
from datadiet.sweep import SweepConfig, SweepEvent, plan, run_sweep
from tests.helpers import store_snapshot

FAST = (("threads", "1"),)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(tmp_path / "store")
    train, val = write_corpus(store, CorpusConfig(stories=300, val_stories=60, seed=5), "c")
    return store, train.dataset.ref, val.dataset.ref


def _config(train: str, val: str, **kw: object) -> SweepConfig:
    args = {
        "base": train,
        "val": val,
        "sizes": (0.5, 1.0),
        "rates": (0.0, 1.0),
        "preset": "tiny",
        "steps": 12,
        "vocab": 300,
        "overrides": FAST,
    }
    args.update(kw)
    return SweepConfig(**args)  # type: ignore[arg-type]


@pytest.mark.slow
def test_two_by_two_sweep_runs_caches_and_resumes(
    corpus: tuple[Store, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, train, val = corpus
    cfg = _config(train, val)
    nodes, _ = plan(store, cfg)
    assert [n.state for n in nodes][:3] == ["done", "done", "todo"]
    assert sum(n.kind == "runs" for n in nodes) == 4

    # Interrupt the sweep during its third training run, as a Ctrl-C or kill would.
    real_train = train_pipeline.train_run
    calls: list[str] = []

    def flaky(store_: Store, spec: train_pipeline.RunSpec, **kw: object) -> object:
        calls.append(spec.name or "")
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_train(store_, spec, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(train_pipeline, "train_run", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(store, cfg, parallel=2)  # two worker processes (auto would use one for so small a grid)
    monkeypatch.setattr(train_pipeline, "train_run", real_train)

    nodes, _ = plan(store, cfg)
    runs_done = [n.key for n in nodes if n.kind == "runs" and n.state == "done"]
    assert len(runs_done) == 2
    missing = sorted(n.key for n in nodes if n.state != "done")
    # Every data step runs before the runs, which were trained together (two processes on this CPU)
    # before the first was published: the two unpublished runs wait, finished, in their work folders.
    assert missing == ["run:0:1:0:0", "run:0:1:1:0"]
    work = sorted((store.root / "work" / "runs").iterdir())
    assert len(work) == 2 and all((w / "checkpoint.pt").is_file() for w in work)

    events: list[SweepEvent] = []
    commit = run_sweep(store, cfg, on_event=events.append)
    built = sorted({e.node.key for e in events if e.node.state == "built"})
    # Only what was missing ran on the rerun; every other dataset, the tokenizer and two runs were reused.
    assert built == missing
    assert not any((store.root / "work" / "runs").iterdir())

    runs = pl.read_parquet(commit.dataset.path / "runs.parquet")
    assert runs.height == 4
    assert sorted(zip(runs["size_fraction"], runs["dup_rate"], strict=True)) == [
        (0.5, 0.0),
        (0.5, 1.0),
        (1.0, 0.0),
        (1.0, 1.0),
    ]
    # Full duplication (one story copied everywhere) must hurt, even after only 12 steps.
    by_cell = {(r["size_fraction"], r["dup_rate"]): r["val_loss"] for r in runs.to_dicts()}
    assert by_cell[(1.0, 1.0)] > by_cell[(1.0, 0.0)] + 0.05
    for name in ("report.md", "report.html", "sweep.json"):
        assert (commit.dataset.path / name).is_file()
    assert commit.dataset.manifest.stats["verdict"] in (commit.dataset.path / "report.md").read_text()

    # The same study through the CLI: relate the sweep, and report on a hand-picked list of runs
    # whose factors are read back from their data's lineage.
    runner = CliRunner()
    related = json.loads(
        runner.invoke(app, ["relate", "--sweep", cfg.name, "--store", str(store.root), "--json"]).stdout
    )
    assert related["verdict"] == commit.dataset.manifest.stats["verdict"]
    picked = [r["run"] for r in runs.to_dicts()]
    out = runner.invoke(
        app, ["report", *picked, "--out", str(store.root.parent / "rep"), "--store", str(store.root), "--json"]
    )
    assert out.exit_code == 0, out.output
    table = {(r["size_fraction"], r["dup_rate"]): r["val_loss"] for r in json.loads(out.stdout)["runs"]}
    assert table == by_cell
    assert (store.root.parent / "rep" / "report.html").is_file()

    # A sweep that is complete is found, not recomputed, and its plan says so.
    again = run_sweep(store, cfg)
    assert again.up_to_date and again.dataset.ref == commit.dataset.ref
    assert all(n.state == "done" for n in plan(store, cfg)[0])

    # Changing one factor reuses everything it does not touch.
    more = _config(train, val, rates=(0.0, 0.5, 1.0))
    nodes3, _ = plan(store, more)
    todo = sorted(n.key for n in nodes3 if n.state != "done")
    assert todo == ["run:0:0.5:0.5:0", "run:0:1:0.5:0", "variant:0:0.5:0.5", "variant:0:1:0.5"]


@pytest.mark.slow
def test_ensemble_sweep_equals_one_run_at_a_time(
    tmp_path: Path, corpus: tuple[Store, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import datadiet.train.final_eval as final_eval
    import datadiet.train.grid as grid

    store, train, val = corpus
    cfg = _config(train, val, sizes=(1.0,), seeds=(0, 1))
    alone = run_sweep(store, cfg, parallel=1)
    runs_alone = {r.name: r for r in store.all("runs")}
    other = Store(tmp_path / "other")
    train2, val2 = write_corpus(other, CorpusConfig(stories=300, val_stories=60, seed=5), "c")
    assert (train2.dataset.ref, val2.dataset.ref) == (train, val)
    # The GPU packing on this CPU: all four runs stepped together as one ensemble.
    monkeypatch.setattr(grid, "choose_packing", lambda *a, **k: grid.Packing(processes=1, threads=1, ensemble=4))
    evaluated: list[int] = []
    real = final_eval.evaluate_final

    def counted(model_cfg: Any, train_cfg: Any, checkpoints: list[Path], *rest: Any) -> Any:
        evaluated.append(len(checkpoints))
        return real(model_cfg, train_cfg, checkpoints, *rest)

    monkeypatch.setattr(final_eval, "evaluate_final", counted)
    together = run_sweep(other, cfg)
    assert evaluated == [4]  # one batched final evaluation; publishing found its metrics, evaluated none again
    assert together.dataset.ref == alone.dataset.ref
    for run in other.all("runs"):
        solo = runs_alone[run.name]
        assert run.ref == solo.ref
        a, b = run.manifest.stats["metrics"], solo.manifest.stats["metrics"]
        assert a.keys() == b.keys()
        for k, v in b.items():
            assert a[k] == (v if isinstance(v, str) or v is None else pytest.approx(v, rel=1e-5)), k


def test_dry_run_changes_nothing(runner: CliRunner, corpus: tuple[Store, str, str]) -> None:
    store, train, val = corpus
    before = store_snapshot(store.root)
    result = runner.invoke(
        app,
        [
            "sweep",
            "--base",
            train,
            "--val",
            val,
            "--sizes",
            "0.5,1",
            "--rates",
            "0,1",
            "--preset",
            "tiny",
            "--dry-run",
            "--json",
            "--store",
            str(store.root),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    states = {n["key"]: n["state"] for n in payload["nodes"]}
    assert states["decontaminate"] == "todo" and states["run:0:1:1:0"] == "pending"
    assert payload["estimated_seconds"] > 0
    assert store_snapshot(store.root) == before


def test_sweep_config_file_and_validation(tmp_path: Path, corpus: tuple[Store, str, str]) -> None:
    _, train, val = corpus
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'[sweep]\nbase = "{train}"\nval = "{val}"\nsizes = [0.25, 1]\nrates = [0, 0.5]\npreset = "tiny"\n'
    )
    cfg = SweepConfig.from_toml(path, {"steps": 7, "rates": None})
    assert cfg.sizes == (0.25, 1) and cfg.rates == (0, 0.5) and cfg.steps == 7 and cfg.preset == "tiny"
    path.write_text('[sweep]\nbase = "a"\nval = "b"\ncolour = "red"\n')
    from datadiet.errors import UsageError

    with pytest.raises(UsageError, match="unknown keys colour"):
        SweepConfig.from_toml(path, {})
    from datadiet.config import build

    with pytest.raises(UsageError, match=r"sizes\[0\] must be greater than 0, not 0.0"):
        build(SweepConfig, {"base": "a", "val": "b", "sizes": (0.0, 1.0)}, source="")
    with pytest.raises(UsageError, match="--pool or --copies"):
        SweepConfig(base="a", val="b", pool=2, copies=3)
    path.write_text(f'[sweep]\nbase = "{train}"\nval = "{val}"\ndata_seeds = [0, 1, 2]\nseeds = [0, 1]\n')
    cfg = SweepConfig.from_toml(path, {})
    assert cfg.data_seeds == (0, 1, 2) and cfg.seeds == (0, 1)
    with pytest.raises(UsageError, match="must not repeat"):
        SweepConfig(base="a", val="b", data_seeds=(1, 1))


@pytest.mark.parametrize("pool", [{}, {"pool": 3}, {"copies": 20}], ids=["story", "pool", "copies"])
def test_each_data_seed_repeats_one_story_at_every_size_and_rate(
    corpus: tuple[Store, str, str], pool: dict[str, int]
) -> None:
    from datadiet.sweep import build_dag, repeated_ids
    from datadiet.sweep.run import _resolve_done

    store, train, val = corpus
    cfg = _config(train, val, sizes=(0.25, 0.5, 1.0), rates=(0.0, 0.5, 1.0), data_seeds=(0, 1), seeds=(0, 1), **pool)
    nodes = build_dag(store, cfg)
    resolved: dict[str, object] = {}
    for node in nodes:  # build every data step (no training)
        _resolve_done(store, node, resolved)  # type: ignore[arg-type]
        if node.state == "todo" and node.kind != "runs":
            resolved[node.key] = node.run([resolved[d].ref for d in node.deps], _null()).dataset  # type: ignore[attr-defined]
    runs = [n for n in nodes if n.kind == "runs"]
    # Every (data seed, training seed) pair trains every cell.
    assert len(runs) == 2 * 2 * 3 * 3
    assert {(n.data_seed, n.train_seed) for n in runs} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    stories = {}
    for ds in (0, 1):
        variants = [resolved[n.key] for n in nodes if n.key.startswith(f"variant:{ds}:")]
        smallest = resolved[f"subset:{ds}:0.25"]
        in_smallest = set(smallest.read()["id"].to_list())  # type: ignore[attr-defined]
        order = repeated_ids(store, smallest.ref, cfg, ds, count=100)  # type: ignore[attr-defined]
        pools = [list(v.manifest.stats["pool_ids"]) for v in variants]  # type: ignore[attr-defined]
        if not pool:
            docs = {v.manifest.params["doc"] for v in variants}  # type: ignore[attr-defined]
            assert len(docs) == 1 and {tuple(p) for p in pools} == {tuple(docs)}  # in the params and copied
            assert docs == set(order[:1])
        else:
            # Every variant's pool is a prefix of one seeded order of the smallest subset's documents.
            assert all(p == order[: len(p)] for p in pools)
            assert all(v.manifest.params["docs"] == p for v, p in zip(variants, pools, strict=True))  # type: ignore[attr-defined]
            docs = set(pools[-1])
        assert docs <= in_smallest
        stories[ds] = docs
    # Each data seed redraws its subsets and its story.
    assert stories[0] != stories[1]
    assert resolved["subset:0:0.5"].ref != resolved["subset:1:0.5"].ref  # type: ignore[attr-defined]
    # The plan now finds every data step done: the DAG reuses them.
    planned, _ = plan(store, cfg)
    assert all(n.state == "done" for n in planned if n.kind != "runs")


def _null() -> object:
    from datadiet.progress import NULL_TRACKER

    return NULL_TRACKER


@pytest.mark.slow
def test_demo_command_path(runner: CliRunner, tmp_path: Path) -> None:
    demo = ["demo", "--stories", "200", "--steps", "8", "--set", "threads=1"]
    result = runner.invoke(
        app, [*demo, "--store", str(tmp_path / "store"), "--out", str(tmp_path / "report"), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["runs"]) == 12 and payload["verdict"]
    # Two data seeds (the unit of replication) with one training seed each.
    assert sorted({(r["data_seed"], r["seed"]) for r in payload["runs"]}) == [(0, 0), (1, 0)]
    assert (tmp_path / "report" / "report.html").is_file()
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<img" in html and 'src="data:image/png;base64,' in html
    # Deterministic: a second demo in a fresh store gives the same numbers.
    again = runner.invoke(app, [*demo, "--store", str(tmp_path / "store2"), "--json"])
    assert [r["val_loss"] for r in json.loads(again.stdout)["runs"]] == [r["val_loss"] for r in payload["runs"]]


def test_nproc_does_not_change_the_sweep(corpus: tuple[Store, str, str]) -> None:

    store, train, val = corpus
    one = [(n.key, n.state) for n in plan(store, _config(train, val))[0]]
    two = [(n.key, n.state) for n in plan(store, _config(train, val, nproc=2))[0]]
    assert one == two
    with pytest.raises(ValueError, match="nproc"):  # pydantic: nproc must be >= 1
        _config(train, val, nproc=0)
