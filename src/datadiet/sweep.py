"""The study's grid as a DAG of cached, content-addressed steps: `curate sweep` and `curate demo`.

    base ─(dedupe)─▶ decontaminated against val ─▶ subset per size ─▶ duplicate per rate ─▶ run per seed
      └──────────────▶ tokenizer (trained once on the clean base, shared by every variant) ───┘
    every variant ─▶ stats;   every run ─▶ metrics;   all ─▶ relate ─▶ report (the sweep artefact)

Every node is an artefact in the store whose id is computed from its parents' ids and its
parameters before anything runs, so `--dry-run` can say what is done, a rerun of an interrupted
sweep does only what is missing, and a sweep that changes one factor reuses everything else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from pydantic import Field, Strict
from pydantic.dataclasses import dataclass as validated

from datadiet.config import (
    STRICT,
    Flag,
    Fraction,
    OpenProbability,
    PositiveInt,
    Probability,
    Seed,
    Text,
    build,
    load_toml,
)
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store

STUDY_SIZES = (0.25, 0.5, 1.0)
STUDY_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
SWEEP_FILE = "sweep.json"
# Rough CPU throughput of a preset when the store holds no run to measure it from (tokens/s on 2 cores).
_DEFAULT_TOKENS_PER_S = {"tiny": 60_000.0, "paper": 15_000.0, "small": 1_500.0, "base": 200.0}


# Sweep-only field types (the shared ones come from datadiet.config, the one schema module).
Threshold = Annotated[float, Strict(), Field(gt=0, lt=1, allow_inf_nan=False)]
Vocab = Annotated[int, Strict(), Field(ge=1, le=1 << 20)]
Procs = Annotated[int, Strict(), Field(ge=1, le=4096)]


@validated(frozen=True, config=STRICT)
class SweepConfig:
    """One study: every field is recorded with the sweep; all but `name` shape its artefacts.

    pydantic checks every field's type and bounds when one is built (from flags, the TOML file or
    Python); the rules across fields follow in `__post_init__`, all before any step runs.
    """

    base: Text
    val: Text
    sizes: Annotated[tuple[Fraction, ...], Field(min_length=1, max_length=1000)] = STUDY_SIZES
    rates: Annotated[tuple[Probability, ...], Field(min_length=1, max_length=1000)] = STUDY_RATES
    seeds: Annotated[tuple[Seed, ...], Field(min_length=1, max_length=1000)] = (0,)
    pool: PositiveInt | None = None
    copies: PositiveInt | None = None
    near: OpenProbability = 0.0
    dedupe: Flag = False
    decontaminate: Flag = True
    threshold: Threshold = 0.8
    preset: Text = "paper"
    steps: PositiveInt | None = None
    vocab: Vocab = 8192
    tokenizer: Text | None = None
    data_seed: Seed = 0
    overrides: tuple[tuple[Text, Text], ...] = ()
    name: Text = "sweep"
    nproc: Procs | None = None

    def __post_init__(self) -> None:
        if (
            len(set(self.sizes)) != len(self.sizes)
            or len(set(self.rates)) != len(self.rates)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise UsageError("--sizes, --rates and --seeds must not repeat a value")
        if self.pool is not None and self.copies is not None:
            raise UsageError("give --pool or --copies, not both")
        from datadiet.train.config import PRESETS, resolve_config
        from datadiet.train.tokenizer import MIN_VOCAB

        # Checked here, so a bad value fails before any step runs rather than after hours of them.
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.tokenizer is None and not MIN_VOCAB <= self.vocab <= 1 << 20:
            raise UsageError(f"--vocab must be between {MIN_VOCAB} and {1 << 20}, not {self.vocab}")
        steps = {} if self.steps is None else {"steps": str(self.steps)}
        resolve_config(self.preset, self.vocab, {**dict(self.overrides), **steps})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_toml(cls, path: Path, overrides: Mapping[str, Any]) -> SweepConfig:
        """Defaults < the TOML file (a `[sweep]` table or top-level keys) < explicit options."""
        data = load_toml(path)
        data = data.get("sweep", data)
        source = f"--config {path}:"
        if not isinstance(data, dict):
            raise UsageError(f"{source} [sweep] must be a table of settings, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{source} unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        if isinstance(merged.get("overrides"), dict):  # [sweep.overrides] lr = 3e-4: typed by the train config
            merged["overrides"] = tuple((str(k), str(v)) for k, v in merged["overrides"].items())
        if "base" not in merged or "val" not in merged:
            raise UsageError("a sweep needs --base and --val (or base/val in the config file)")
        return build(cls, merged, source=source)


Runner = Callable[[list[str], Tracker], Commit]


@dataclass
class Node:
    """One step of the DAG: an artefact addressed by (kind, operation, params, its dependencies' refs).

    `run(refs, tracker)` builds it from the refs of `deps` (in order). `identity(refs)` gives the
    (params, parents) that address it when they are not simply `params` and `refs`.
    """

    key: str
    label: str
    kind: str
    name: str
    operation: str
    deps: list[str]
    run: Runner
    params: dict[str, Any] = field(default_factory=dict)
    identity: Callable[[list[str]], tuple[dict[str, Any], list[str]]] | None = None
    cell: tuple[float, float, int] | None = None
    state: str = "pending"
    ref: str | None = None
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepEvent:
    """What a live display needs after each step."""

    node: Node
    done: int
    total: int
    eta_s: float | None


def sweep_title(cfg: SweepConfig) -> str:
    """The report's heading: a named sweep by its name; the default-named one by what it varies."""
    if cfg.name == "sweep":
        return f"datadiet sweep of {cfg.base}: size × duplication"
    return f"datadiet sweep {cfg.name}"


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def build_dag(store: Store, cfg: SweepConfig, *, dedupe_workers: int | None = None) -> list[Node]:
    """The nodes of the sweep in an order where every node follows its dependencies."""
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.dedupe.op import OPERATION as DEDUPE_OP
    from datadiet.curate.dedupe.op import dedupe, version_params
    from datadiet.curate.duplicate.op import OPERATION as DUP_OP
    from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
    from datadiet.curate.subset.op import OPERATION as SUBSET_OP
    from datadiet.curate.subset.op import SubsetConfig, subset
    from datadiet.train.pipeline import RunSpec, resolve_tokenizer, run_identity, tokenizer_version, train_run

    nodes: list[Node] = []
    prefix = cfg.name
    mh = MinhashConfig(threshold=cfg.threshold, seed=cfg.data_seed + 1)
    base = store.resolve(cfg.base)
    val = store.resolve(cfg.val)

    def found(ds: Dataset) -> Runner:
        def run(refs: list[str], tracker: Tracker) -> Commit:
            return Commit(ds, up_to_date=True)

        return run

    for ds in (base, val):
        nodes.append(
            Node(
                key=f"input:{ds.ref}",
                label=f"input {ds.ref}",
                kind="datasets",
                name=ds.name,
                operation="input",
                deps=[],
                run=found(ds),
                state="done",
                ref=ds.ref,
            )
        )
    val_key = nodes[1].key
    head = nodes[0].key

    def run_dedupe(refs: list[str], t: Tracker, name: str) -> Commit:
        against = refs[1] if len(refs) > 1 else None
        return dedupe(store, refs[0], mh, name=name, against=against, workers=dedupe_workers, tracker=t)

    if cfg.dedupe:
        nodes.append(
            Node(
                key="dedupe",
                label="dedupe base",
                kind="datasets",
                name=f"{prefix}-base",
                operation=DEDUPE_OP,
                deps=[head],
                params=version_params(mh, None),
                run=partial(run_dedupe, name=f"{prefix}-base"),
            )
        )
        head = "dedupe"
    if cfg.decontaminate:
        nodes.append(
            Node(
                key="decontaminate",
                label="decontaminate against val",
                kind="datasets",
                name=f"{prefix}-clean",
                operation=DEDUPE_OP,
                deps=[head, val_key],
                params=version_params(mh, val.ref),
                run=partial(run_dedupe, name=f"{prefix}-clean"),
            )
        )
        head = "decontaminate"

    tok_key = "tokenizer"
    # An explicit tokenizer.json is not a node: its content hash is its ref, and nothing builds it.
    tok_deps = [] if cfg.tokenizer else [tok_key]
    if cfg.tokenizer:
        resolve_tokenizer(store, cfg.tokenizer)  # fail early on a bad path or ref
    else:

        def run_tokenizer(refs: list[str], t: Tracker) -> Commit:
            return tokenizer_version(store, refs[0], cfg.vocab, name=f"{prefix}-bpe", tracker=t)

        nodes.append(
            Node(
                key=tok_key,
                label=f"tokenizer (BPE {cfg.vocab})",
                kind="tokenizers",
                name=f"{prefix}-bpe",
                operation="tokenizer",
                deps=[head],
                params={"vocab": cfg.vocab},
                run=run_tokenizer,
            )
        )

    def run_subset(refs: list[str], t: Tracker, sc: SubsetConfig, name: str) -> Commit:
        return subset(store, refs[0], sc, name=name, tracker=t)

    def run_duplicate(refs: list[str], t: Tracker, dc: DuplicateConfig, name: str) -> Commit:
        return duplicate(store, refs[0], dc, name=name, tracker=t)

    def spec_of(refs: list[str], seed: int, name: str) -> RunSpec:
        # refs = [variant, val] (+ [tokenizer] when the sweep trains its own)
        return RunSpec(
            train_ref=refs[0],
            val_ref=refs[1],
            tokenizer=cfg.tokenizer or refs[2],
            preset=cfg.preset,
            steps=cfg.steps,
            seed=seed,
            overrides=cfg.overrides,
            name=name,
        )

    def run_identity_of(refs: list[str], seed: int, name: str) -> tuple[dict[str, Any], list[str]]:
        _, params, parents = run_identity(store, spec_of(refs, seed, name))
        return params, parents

    def run_train(refs: list[str], t: Tracker, seed: int, name: str) -> Commit:
        return train_run(store, spec_of(refs, seed, name), resume=True, tracker=t, nproc=cfg.nproc)

    for size in cfg.sizes:
        sc = SubsetConfig(fraction=float(size), seed=cfg.data_seed)
        sname = f"{prefix}-s{_fmt(size)}"
        skey = f"subset:{size:g}"
        nodes.append(
            Node(
                key=skey,
                label=f"subset {size:g}",
                kind="datasets",
                name=sname,
                operation=SUBSET_OP,
                deps=[head],
                params=sc.to_params(),
                run=partial(run_subset, sc=sc, name=sname),
            )
        )
        for rate in cfg.rates:
            dc = DuplicateConfig(rate=float(rate), pool=cfg.pool, copies=cfg.copies, near=cfg.near, seed=cfg.data_seed)
            vname = f"{sname}-d{_fmt(rate)}"
            vkey = f"variant:{size:g}:{rate:g}"
            nodes.append(
                Node(
                    key=vkey,
                    label=f"size {size:g} × dup {rate:g}",
                    kind="datasets",
                    name=vname,
                    operation=DUP_OP,
                    deps=[skey],
                    params=dc.to_params(),
                    run=partial(run_duplicate, dc=dc, name=vname),
                )
            )
            for seed in cfg.seeds:
                rname = f"{vname}-seed{seed}"
                nodes.append(
                    Node(
                        key=f"run:{size:g}:{rate:g}:{seed}",
                        label=f"train size {size:g} × dup {rate:g} seed {seed}",
                        kind="runs",
                        name=rname,
                        operation="train",
                        deps=[vkey, val_key, *tok_deps],
                        identity=partial(run_identity_of, seed=seed, name=rname),
                        run=partial(run_train, seed=seed, name=rname),
                        cell=(float(size), float(rate), int(seed)),
                    )
                )
    return nodes


def _resolve_done(store: Store, node: Node, resolved: dict[str, Dataset]) -> None:
    """Set the node's state: done (in the store), todo (inputs ready), or pending (inputs missing)."""
    if node.operation == "input":
        resolved[node.key] = store.find(node.ref or "")
        return
    if any(dep not in resolved for dep in node.deps):
        node.state = "pending"
        return
    refs = [resolved[dep].ref for dep in node.deps]
    params, parents = node.identity(refs) if node.identity is not None else (node.params, refs)
    version = store.version_id(operation=node.operation, params=params, parents=parents, kind=node.kind)
    try:
        ds = store.resolve(f"{node.name}@{version}", node.kind)
    except UsageError:
        node.state = "todo"
        return
    node.state, node.ref = "done", ds.ref
    resolved[node.key] = ds


def plan(store: Store, cfg: SweepConfig) -> tuple[list[Node], dict[str, Dataset]]:
    """Resolve every node's state without running anything (what `--dry-run` shows)."""
    nodes = build_dag(store, cfg)
    resolved: dict[str, Dataset] = {}
    for node in nodes:
        _resolve_done(store, node, resolved)
    return nodes, resolved


def tokens_per_second(store: Store, preset: str) -> float:
    """Median measured throughput of earlier runs of PRESET in this store, else a rough default."""
    rates = sorted(
        float(d.manifest.stats["train"]["tokens_per_s"])
        for d in store.all("runs")
        if d.manifest.params.get("preset") == preset and d.manifest.stats.get("train", {}).get("tokens_per_s")
    )
    return rates[len(rates) // 2] if rates else _DEFAULT_TOKENS_PER_S.get(preset, 10_000.0)


def estimate_seconds(store: Store, cfg: SweepConfig, nodes: list[Node]) -> float:
    """Time left: training dominates, so runs left × tokens per run / measured tokens per second."""
    from datadiet.train.config import PRESETS

    tcfg = PRESETS[cfg.preset].train if cfg.preset in PRESETS else None
    if tcfg is None:
        return math.nan
    steps = cfg.steps or tcfg.steps
    tokens = steps * tcfg.batch_size * tcfg.block_size * tcfg.grad_accum
    runs_left = sum(1 for n in nodes if n.kind == "runs" and n.state != "done")
    data_left = sum(1 for n in nodes if n.kind == "datasets" and n.state != "done")
    return runs_left * (tokens / tokens_per_second(store, cfg.preset) + 3.0) + data_left * 1.0


def run_sweep(
    store: Store,
    cfg: SweepConfig,
    *,
    tracker: Tracker = NULL_TRACKER,
    on_event: Callable[[SweepEvent], None] | None = None,
    dedupe_workers: int | None = None,
) -> Commit:
    """Run every missing step of the sweep, then relate and report; returns the sweep artefact."""
    nodes = build_dag(store, cfg, dedupe_workers=dedupe_workers)
    resolved: dict[str, Dataset] = {}
    total = len(nodes)
    started = time.perf_counter()
    run_seconds: list[float] = []
    for done, node in enumerate(nodes, start=1):
        _resolve_done(store, node, resolved)
        if node.state == "todo":
            node.state = "running"
            if on_event:
                on_event(SweepEvent(node, done - 1, total, None))
            t0 = time.perf_counter()
            commit = node.run([resolved[dep].ref for dep in node.deps], tracker)
            node.seconds = time.perf_counter() - t0
            if node.kind == "runs":
                run_seconds.append(node.seconds)
            node.ref = commit.dataset.ref
            resolved[node.key] = commit.dataset
            node.state = "done" if commit.up_to_date else "built"
        elif node.state == "pending":
            raise AssertionError(f"{node.key} has unresolved inputs after its dependencies ran")
        if node.kind == "runs":
            node.result = resolved[node.key].manifest.stats["metrics"]
        runs_left = sum(1 for n in nodes if n.kind == "runs" and n.state in ("todo", "pending"))
        per_run = sum(run_seconds) / len(run_seconds) if run_seconds else None
        if on_event:
            on_event(SweepEvent(node, done, total, per_run * runs_left if per_run is not None else None))
    return _finish(store, cfg, nodes, resolved, started, tracker)


def results_frame(
    store: Store, cfg: SweepConfig, nodes: list[Node], resolved: dict[str, Dataset], tracker: Tracker = NULL_TRACKER
) -> pl.DataFrame:
    """One row per run: the factors, the variant's dataset statistics and the run's metrics."""
    from datadiet.eval.pipeline import run_row

    rows = []
    for node in nodes:
        if node.kind == "runs" and node.cell is not None:
            size, rate, _ = node.cell
            factors = {"size_fraction": size, "dup_rate": rate, "pool": float(cfg.pool or 1)}
            rows.append(run_row(store, resolved[node.key], factors, tracker=tracker))
    return pl.DataFrame(rows)


def machine_description() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _finish(
    store: Store, cfg: SweepConfig, nodes: list[Node], resolved: dict[str, Dataset], started: float, tracker: Tracker
) -> Commit:
    from datadiet.eval.pipeline import study_report

    t_stats = time.perf_counter()
    runs = results_frame(store, cfg, nodes, resolved, tracker)
    stats_seconds = time.perf_counter() - t_stats
    run_nodes = [n for n in nodes if n.kind == "runs"]
    from datadiet.train.pipeline import NOT_IN_ID

    # Speed-only settings (threads, device, ...) do not change the results, so not the sweep's id.
    params = cfg.to_dict() | {
        "name": None,
        "nproc": None,
        "overrides": [kv for kv in cfg.overrides if kv[0] not in NOT_IN_ID],
    }
    parents = [resolved[n.key].ref for n in run_nodes]

    def build(writer: PartWriter) -> dict[str, Any]:
        from datadiet.train.config import PRESETS

        steps = cfg.steps or PRESETS[cfg.preset].train.steps
        meta = {
            "machine": machine_description(),
            "preset": cfg.preset,
            "steps": steps,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "base": resolved[nodes[0].key].ref,
            "val": resolved[nodes[1].key].ref,
            "seeds": list(cfg.seeds),
        }
        study = cfg.preset == "paper" and set(cfg.sizes) == set(STUDY_SIZES) and set(cfg.rates) == set(STUDY_RATES)
        result, paths = study_report(
            writer.dir,
            store,
            runs,
            title=sweep_title(cfg),
            meta=meta,
            study_match=study,
            seed=cfg.data_seed,
            tracker=tracker,
        )
        record = {
            "config": cfg.to_dict(),
            "nodes": [
                {"key": n.key, "ref": n.ref, "kind": n.kind, "state": n.state, "seconds": round(n.seconds, 3)}
                for n in nodes
            ],
            "meta": meta,
        }
        writer.write_file(SWEEP_FILE, json.dumps(record, indent=2, default=str).encode())
        return {
            "verdict": result.verdict,
            "runs": runs.height,
            "report": {k: Path(v).name for k, v in paths.items()},
            "seconds": {
                "total": time.perf_counter() - started,
                "data": sum(n.seconds for n in nodes if n.kind in ("datasets", "tokenizers")),
                "training": sum(n.seconds for n in nodes if n.kind == "runs"),
                "statistics": stats_seconds,
            },
            "config": cfg.to_dict(),
        }

    return store.commit(cfg.name, operation="sweep", params=params, parents=parents, build=build, kind="sweeps")


DEMO_SIZES = (0.5, 1.0)
DEMO_RATES = (0.0, 0.5, 1.0)
# Two seeds, so the report can show seed-to-seed spread next to the effects it compares them with.
DEMO_SEEDS = (0, 1)


def prepare_demo(store: Store, stories: int, tracker: Tracker = NULL_TRACKER) -> tuple[str, str]:
    """Generate (or find) the built-in corpus for the demo; returns (train ref, val ref)."""
    from datadiet.curate.corpus import CorpusConfig, write_corpus

    train, val = write_corpus(
        store, CorpusConfig(stories=stories, val_stories=max(200, stories // 10), seed=0), "demo", tracker=tracker
    )
    return train.dataset.ref, val.dataset.ref


def demo_config(
    train_ref: str, val_ref: str, steps: int | None = None, overrides: tuple[tuple[str, str], ...] = ()
) -> SweepConfig:
    """The demo's miniature grid: tiny preset, a 2,048-token BPE, two seeds."""
    return SweepConfig(
        base=train_ref,
        val=val_ref,
        sizes=DEMO_SIZES,
        rates=DEMO_RATES,
        seeds=DEMO_SEEDS,
        preset="tiny",
        steps=steps,
        vocab=2048,
        overrides=overrides,
        name="demo",
    )
