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

import numpy as np
import polars as pl
from pydantic import Field, Strict
from pydantic.dataclasses import dataclass as validated

from datadiet.config import (
    STRICT,
    Flag,
    Fraction,
    OpenProbability,
    PositiveFloat,
    PositiveInt,
    Probability,
    Seed,
    Text,
    build,
    load_toml,
)
from datadiet.errors import UsageError
from datadiet.eval.budget import FILTER, NO_FILTER
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store
from datadiet.sweep_axes import (
    STUDY_RATES,
    Budget,
    append_axes,
    budget_points,
    check_axes,
    corrupt_axis,
    epochs_to_steps,
    filter_config,
    level_tag,
    memorisation_columns,
    repetition_config,
)

STUDY_SIZES = (0.25, 0.5, 1.0)
SWEEP_FILE = "sweep.json"


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
    data_seeds: Annotated[tuple[Seed, ...], Field(min_length=1, max_length=1000)] = (0,)
    overrides: tuple[tuple[Text, Text], ...] = ()
    name: Text = "sweep"
    nproc: Procs | None = None
    # Issue 14's axes (see `datadiet.sweep` "Axes"): several budgets, the repetition grid, a corruption.
    budgets: Annotated[tuple[PositiveInt, ...], Field(max_length=100)] = ()
    epochs: Annotated[tuple[PositiveFloat, ...], Field(max_length=100)] = ()
    repeat_fractions: Annotated[tuple[Fraction, ...], Field(max_length=100)] = ()
    repeat_counts: Annotated[tuple[PositiveInt, ...], Field(max_length=100)] = ()
    corrupt: Text | None = None
    corrupt_from: Text | None = None
    memorisation: Flag = False
    # A quality filter vs none (`--filter none,gopher`): levels `none` or `curate filter` rules.
    filters: Annotated[tuple[Text, ...], Field(max_length=100)] = ()

    def __post_init__(self) -> None:
        if (
            len(set(self.sizes)) != len(self.sizes)
            or len(set(self.rates)) != len(self.rates)
            or len(set(self.seeds)) != len(self.seeds)
            or len(set(self.data_seeds)) != len(self.data_seeds)
        ):
            raise UsageError("--sizes, --rates, --seeds and --data-seeds must not repeat a value")
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
        check_axes(self)

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
    spec: Callable[[list[str]], Any] | None = None  # a run's RunSpec from its deps' refs (grid training)
    cell: tuple[float, float, int] | None = None  # (size, rate, replicate index) of a run, for displays
    factors: dict[str, Any] = field(default_factory=dict)  # a variant's or run's place in the grid (issue 14's axes)
    data_seed: int | None = None
    train_seed: int | None = None
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


# The MinHash seed of the sweep's dedupe and decontamination: fixed, so every data seed shares one
# clean base and one tokenizer (1 is what data seed 0 used when the sweep had a single data seed).
DEDUPE_SEED = 1
# Spawn key that keeps the pool order of a data seed apart from the subset's and duplicate's streams.
POOL_ORDER_STREAM = 7


def _found(ds: Dataset) -> Runner:
    def run(refs: list[str], tracker: Tracker) -> Commit:
        return Commit(ds, up_to_date=True)

    return run


def _input_node(ds: Dataset) -> Node:
    return Node(
        key=f"input:{ds.ref}",
        label=f"input {ds.ref}",
        kind="datasets",
        name=ds.name,
        operation="input",
        deps=[],
        run=_found(ds),
        state="done",
        ref=ds.ref,
    )


def _clean_nodes(store: Store, cfg: SweepConfig, head: str, val: Dataset, workers: int | None) -> list[Node]:
    """Dedupe (optional) and decontamination against the validation set: shared by every data seed."""
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.dedupe.op import OPERATION as DEDUPE_OP
    from datadiet.curate.dedupe.op import dedupe, version_params

    mh = MinhashConfig(threshold=cfg.threshold, seed=DEDUPE_SEED)

    def run_dedupe(refs: list[str], t: Tracker, name: str) -> Commit:
        against = refs[1] if len(refs) > 1 else None
        return dedupe(store, refs[0], mh, name=name, against=against, workers=workers, tracker=t)

    nodes = []
    steps: list[tuple[str, str, str, Dataset | None]] = [("dedupe", "dedupe base", "base", None)] if cfg.dedupe else []
    steps += [("decontaminate", "decontaminate against val", "clean", val)] if cfg.decontaminate else []
    for key, label, suffix, against in steps:
        name = f"{cfg.name}-{suffix}"
        nodes.append(
            Node(
                key=key,
                label=label,
                kind="datasets",
                name=name,
                operation=DEDUPE_OP,
                deps=[head] if against is None else [head, f"input:{against.ref}"],
                params=version_params(mh, None if against is None else against.ref),
                run=partial(run_dedupe, name=name),
            )
        )
        head = key
    return nodes


def _tokenizer_node(store: Store, cfg: SweepConfig, head: str) -> Node | None:
    """The BPE trained once on the clean base, or None when the sweep names its own tokenizer."""
    from datadiet.train.pipeline import resolve_tokenizer, tokenizer_version

    if cfg.tokenizer:
        resolve_tokenizer(store, cfg.tokenizer)  # fail early on a bad path or ref
        return None

    def run_tokenizer(refs: list[str], t: Tracker) -> Commit:
        return tokenizer_version(store, refs[0], cfg.vocab, name=f"{cfg.name}-bpe", tracker=t)

    return Node(
        key="tokenizer",
        label=f"tokenizer (BPE {cfg.vocab})",
        kind="tokenizers",
        name=f"{cfg.name}-bpe",
        operation="tokenizer",
        deps=[head],
        params={"vocab": cfg.vocab},
        run=run_tokenizer,
    )


def repeated_ids(store: Store, ref: str, cfg: SweepConfig, data_seed: int, count: int = 1) -> list[str]:
    """The story (or pool) a data seed repeats, drawn once from its smallest subset, in pool order.

    For the default pool of one it is the draw `duplicate` itself makes with the data seed, so the
    story is in every size's data. For a pool (`--pool`, `--copies`) it is the first COUNT ids of one
    seeded order of the subset's original documents: every size and rate takes a prefix of it.
    """
    from datadiet.curate.duplicate.inject import plan_duplication
    from datadiet.curate.duplicate.op import DuplicateConfig
    from datadiet.schema import COPY_INDEX, ID

    frame = store.resolve(ref).scan().select(ID, COPY_INDEX).collect()
    if cfg.pool is None and cfg.copies is None:
        plan = plan_duplication(frame[ID], frame[COPY_INDEX], DuplicateConfig(rate=1.0, seed=data_seed))
        return [str(frame[ID][int(p)]) for p in plan.pool_pos]
    originals = frame.filter(pl.col(COPY_INDEX) == 0)[ID]
    order = np.random.default_rng([data_seed, POOL_ORDER_STREAM]).permutation(originals.len())
    return [str(originals[int(i)]) for i in order[:count]]


def _data_seed_nodes(store: Store, cfg: SweepConfig, head: str, data_seed: int) -> list[Node]:
    """Nested subsets and duplicated variants of one data seed, all repeating one shared story."""
    from datadiet.curate.duplicate.inject import pool_size
    from datadiet.curate.duplicate.op import OPERATION as DUP_OP
    from datadiet.curate.duplicate.op import DuplicateConfig, duplicate
    from datadiet.curate.subset.op import OPERATION as SUBSET_OP
    from datadiet.curate.subset.op import SubsetConfig, subset

    prefix = cfg.name if data_seed == 0 else f"{cfg.name}-data{data_seed}"
    smallest = f"subset:{data_seed}:{min(cfg.sizes):g}"
    story: dict[tuple[str, int], list[str]] = {}  # (smallest subset's ref, count) -> the ids, drawn once

    def dup_config(refs: list[str], rate: float) -> DuplicateConfig:
        base = DuplicateConfig(rate=rate, pool=cfg.pool, copies=cfg.copies, near=cfg.near, seed=data_seed)
        # The pool this variant needs (1 by default; with --copies it grows with the size and rate).
        count = pool_size(store.resolve(refs[0]).rows, base)
        if (refs[1], count) not in story:
            story[(refs[1], count)] = repeated_ids(store, refs[1], cfg, data_seed, count)
        ids = story[(refs[1], count)]
        if cfg.pool is None and cfg.copies is None:
            return dataclasses.replace(base, doc=ids[0])
        return dataclasses.replace(base, docs=tuple(ids))

    def run_subset(refs: list[str], t: Tracker, sc: SubsetConfig, name: str) -> Commit:
        return subset(store, refs[0], sc, name=name, tracker=t)

    def run_duplicate(refs: list[str], t: Tracker, rate: float, name: str) -> Commit:
        return duplicate(store, refs[0], dup_config(refs, rate), name=name, tracker=t)

    def dup_identity(refs: list[str], rate: float) -> tuple[dict[str, Any], list[str]]:
        return dup_config(refs, rate).to_params(), refs[:1]

    nodes: list[Node] = []
    for size in sorted(cfg.sizes):
        sc = SubsetConfig(fraction=float(size), seed=data_seed)
        sname, skey = f"{prefix}-s{_fmt(size)}", f"subset:{data_seed}:{size:g}"
        nodes.append(
            Node(
                key=skey,
                label=f"data seed {data_seed}: subset {size:g}",
                kind="datasets",
                name=sname,
                operation=SUBSET_OP,
                deps=[head],
                params=sc.to_params(),
                run=partial(run_subset, sc=sc, name=sname),
            )
        )
        for rate in cfg.rates:
            # Built now, without the story, so a bad --near or --pool fails before any step runs.
            DuplicateConfig(rate=float(rate), pool=cfg.pool, copies=cfg.copies, near=cfg.near, seed=data_seed)
            vname = f"{sname}-d{_fmt(rate)}"
            nodes.append(
                Node(
                    key=f"variant:{data_seed}:{size:g}:{rate:g}",
                    label=f"data seed {data_seed}: size {size:g} × dup {rate:g}",
                    kind="datasets",
                    name=vname,
                    operation=DUP_OP,
                    deps=[skey, smallest],
                    identity=partial(dup_identity, rate=float(rate)),
                    run=partial(run_duplicate, rate=float(rate), name=vname),
                )
            )
    return nodes


def _run_nodes(store: Store, cfg: SweepConfig, val_key: str, tok_deps: list[str], variants: list[Node]) -> list[Node]:
    """One training run per (variant, budget, training seed)."""
    from datadiet.train.pipeline import RunSpec, run_identity, train_run

    def spec_of(refs: list[str], seed: int, name: str, budget: Budget) -> RunSpec:
        # refs = [variant, val] (+ [tokenizer] when the sweep trains its own)
        tokenizer = cfg.tokenizer or refs[2]
        steps = budget.steps
        if budget.epochs is not None:
            steps = epochs_to_steps(store, cfg, refs[0], tokenizer, budget.epochs)
        return RunSpec(
            train_ref=refs[0],
            val_ref=refs[1],
            tokenizer=tokenizer,
            preset=cfg.preset,
            steps=steps,
            seed=seed,
            overrides=cfg.overrides,
            name=name,
        )

    def identity(refs: list[str], seed: int, name: str, budget: Budget) -> tuple[dict[str, Any], list[str]]:
        _, params, parents = run_identity(store, spec_of(refs, seed, name, budget))
        return params, parents

    def run_train(refs: list[str], t: Tracker, seed: int, name: str, budget: Budget) -> Commit:
        return train_run(store, spec_of(refs, seed, name, budget), resume=True, tracker=t, nproc=cfg.nproc)

    nodes = []
    for variant in variants:
        data_seed = int(variant.factors["data_seed"])
        size, rate = float(variant.factors["size_fraction"]), float(variant.factors.get("dup_rate", 0.0))
        where = variant.key.partition(":")[2]
        for budget in budget_points(cfg):
            for k, seed in enumerate(cfg.seeds):
                rname = f"{variant.name}{budget.suffix}-seed{seed}"
                replicate = cfg.data_seeds.index(data_seed) * len(cfg.seeds) + k
                nodes.append(
                    Node(
                        key=f"run:{where}{budget.key}:{seed}",
                        label=f"train {variant.label.removeprefix('data seed ')}{budget.suffix}, seed {seed}",
                        kind="runs",
                        name=rname,
                        operation="train",
                        deps=[variant.key, val_key, *tok_deps],
                        identity=partial(identity, seed=seed, name=rname, budget=budget),
                        spec=partial(spec_of, seed=seed, name=rname, budget=budget),
                        run=partial(run_train, seed=seed, name=rname, budget=budget),
                        cell=(size, rate, replicate),
                        data_seed=data_seed,
                        train_seed=seed,
                        factors={**variant.factors, "budget": budget.value},
                    )
                )
    return nodes


def _repeat_variants(store: Store, cfg: SweepConfig, subsets: list[Node]) -> list[Node]:
    """The repetition grid: for every subset, one labelled `duplicate` per (repeat fraction, repeat count)."""
    from datadiet.curate.duplicate.op import OPERATION as DUP_OP
    from datadiet.curate.duplicate.op import duplicate

    def dup_config(refs: list[str], fraction: float, count: int, seed: int) -> Any:
        return repetition_config(store.resolve(refs[0]).rows, fraction, count, seed)

    def run(refs: list[str], t: Tracker, fraction: float, count: int, seed: int, name: str) -> Commit:
        return duplicate(store, refs[0], dup_config(refs, fraction, count, seed), name=name, tracker=t)

    def ident(refs: list[str], fraction: float, count: int, seed: int) -> tuple[dict[str, Any], list[str]]:
        return dup_config(refs, fraction, count, seed).to_params(), refs[:1]

    nodes = []
    for sub in subsets:
        data_seed, size = sub.factors["data_seed"], sub.factors["size_fraction"]
        for fraction in cfg.repeat_fractions:
            for count in cfg.repeat_counts:
                name = f"{sub.name}-f{_fmt(fraction)}-k{count}"
                f, k, ds = float(fraction), int(count), int(data_seed)
                nodes.append(
                    Node(
                        key=f"variant:{data_seed}:{size:g}:f{fraction:g}k{count}",
                        label=f"data seed {data_seed}: size {size:g} × repeats {fraction:g} of tokens, {count}×",
                        kind="datasets",
                        name=name,
                        operation=DUP_OP,
                        deps=[sub.key],
                        identity=partial(ident, fraction=f, count=k, seed=ds),
                        run=partial(run, fraction=f, count=k, seed=ds, name=name),
                        factors={**sub.factors, "repeat_fraction": float(fraction), "repeat_count": int(count)},
                    )
                )
    return nodes


@dataclass(frozen=True)
class _Level:
    """One level of an axis applied after every variant (a corruption rate, a filter): one node per variant."""

    tag: str  # the node key's suffix
    label: str
    suffix: str  # the dataset name's suffix
    config: Any  # the operation's config (its `to_params()` is the node's params)
    factors: dict[str, Any]


def _level_nodes(
    variants: list[Node],
    levels: Callable[[Node], list[_Level]],
    operation: str,
    ident: Callable[..., tuple[dict[str, Any], list[str]]],
    run: Callable[..., Commit],
) -> list[Node]:
    """A node per (variant, level): the variant's dataset through OPERATION with the level's config, labelled."""
    nodes = []
    for variant in variants:
        for level in levels(variant):
            name = f"{variant.name}-{level.suffix}"
            nodes.append(
                Node(
                    key=f"{variant.key}:{level.tag}",
                    label=f"{variant.label} × {level.label}",
                    kind="datasets",
                    name=name,
                    operation=operation,
                    deps=[variant.key],
                    params=level.config.to_params(),
                    identity=partial(ident, cc=level.config),
                    run=partial(run, cc=level.config, name=name),
                    factors={**variant.factors, **level.factors},
                )
            )
    return nodes


def _corrupt_variants(store: Store, cfg: SweepConfig, variants: list[Node]) -> list[Node]:
    """--corrupt KIND:RATES: every variant corrupted at every rate (seeded by its data seed), labelled."""
    from datadiet.curate.corrupt.op import OPERATION as CORRUPT_OP
    from datadiet.curate.corrupt.op import CorruptConfig, corrupt

    assert cfg.corrupt is not None
    kind, rates = corrupt_axis(cfg.corrupt)
    other = store.resolve(cfg.corrupt_from).ref if cfg.corrupt_from else None

    def run(refs: list[str], t: Tracker, cc: CorruptConfig, name: str) -> Commit:
        return corrupt(store, refs[0], cc, other=other, name=name, tracker=t)

    def ident(refs: list[str], cc: CorruptConfig) -> tuple[dict[str, Any], list[str]]:
        return cc.to_params(), [refs[0], *([other] if other else [])]

    def levels(variant: Node) -> list[_Level]:
        seed = int(variant.factors["data_seed"])
        return [
            _Level(
                f"c{rate:g}",
                f"{kind} {rate:g}",
                f"{kind}{_fmt(rate)}",
                CorruptConfig(kind=kind, rate=rate, seed=seed),
                {"corrupt_kind": kind, "corrupt_rate": float(rate)},
            )
            for rate in rates
        ]

    return _level_nodes(variants, levels, CORRUPT_OP, ident, run)


def _filter_variants(store: Store, cfg: SweepConfig, variants: list[Node]) -> list[Node]:
    """--filter none,RULES: every variant through each quality filter (`curate filter`); `none` is the variant itself.

    The variant is labelled `filter = none` in place, so its runs keep the keys and names (and the
    cache) of a sweep without the axis.
    """
    from datadiet.curate.filter.op import OPERATION as FILTER_OP
    from datadiet.curate.filter.op import FilterConfig, filter_dataset

    def run(refs: list[str], t: Tracker, cc: FilterConfig, name: str) -> Commit:
        return filter_dataset(store, refs[0], cc, name=name, tracker=t)

    def ident(refs: list[str], cc: FilterConfig) -> tuple[dict[str, Any], list[str]]:
        return cc.to_params(), refs[:1]

    filtered = [level for level in cfg.filters if level != NO_FILTER]
    levels = [
        _Level(f"q{level_tag(lv)}", f"filter {lv}", level_tag(lv), filter_config(lv), {FILTER: lv}) for lv in filtered
    ]
    kept = [v for v in variants if NO_FILTER in cfg.filters]
    for variant in kept:
        variant.factors[FILTER] = NO_FILTER
    return kept + _level_nodes(variants, lambda _: levels, FILTER_OP, ident, run)


def _memorisation_nodes(store: Store, runs: list[Node]) -> list[Node]:
    """--memorisation: the probe (`datadiet.eval.memorisation`, default P, S, N) of every run."""
    from dataclasses import asdict

    from datadiet.eval.memorisation import OPERATION as MEM_OP
    from datadiet.eval.memorisation import ProbeConfig, memorisation_version

    probe = ProbeConfig()

    def ident(refs: list[str]) -> tuple[dict[str, Any], list[str]]:
        run = store.resolve(refs[0], "runs")
        return asdict(probe), [run.ref, *run.manifest.parents[:2]]

    def run(refs: list[str], t: Tracker) -> Commit:
        return memorisation_version(store, refs[0], probe, tracker=t)

    return [
        Node(
            key=f"memorisation:{r.key}",
            label=f"memorisation probe of {r.label.removeprefix('train ')}",
            kind="evals",
            name=r.name,
            operation=MEM_OP,
            deps=[r.key],
            identity=ident,
            run=run,
            factors=dict(r.factors),
        )
        for r in runs
    ]


def build_dag(store: Store, cfg: SweepConfig, *, dedupe_workers: int | None = None) -> list[Node]:
    """The nodes of the sweep in an order where every node follows its dependencies.

    The clean base and the tokenizer are shared by every data seed; each data seed draws its own
    nested subsets and its own repeated story (from its smallest subset, the same at every size and
    rate); every (variant, training seed) pair trains.
    """
    base, val = store.resolve(cfg.base), store.resolve(cfg.val)
    nodes = [_input_node(base), _input_node(val)]
    nodes += _clean_nodes(store, cfg, nodes[0].key, val, dedupe_workers)
    head = nodes[-1].key
    tok = _tokenizer_node(store, cfg, head)
    nodes += [tok] if tok is not None else []
    variants = [n for ds in cfg.data_seeds for n in _data_seed_nodes(store, cfg, head, ds)]
    for n in variants:  # "subset:DS:SIZE" and "variant:DS:SIZE:RATE" carry their place in the grid
        parts = n.key.split(":")
        n.factors = {"data_seed": int(parts[1]), "size_fraction": float(parts[2])}
        if n.key.startswith("variant:"):
            n.factors["dup_rate"] = float(parts[3])
    if cfg.repeat_fractions:
        subsets = [n for n in variants if n.key.startswith("subset:")]
        variants = [*subsets, *_repeat_variants(store, cfg, subsets)]
    trained = [n for n in variants if n.key.startswith("variant:")]
    if cfg.corrupt is not None:
        corrupted = _corrupt_variants(store, cfg, trained)
        variants, trained = variants + corrupted, corrupted
    if cfg.filters:  # after the corruption: does the filter take the damage back out?
        filtered = _filter_variants(store, cfg, trained)
        variants, trained = variants + [n for n in filtered if n not in variants], filtered
    runs = _run_nodes(store, cfg, nodes[1].key, [tok.key] if tok is not None else [], trained)
    probes = _memorisation_nodes(store, runs) if cfg.memorisation else []
    return nodes + variants + runs + probes


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


def estimate_seconds(
    store: Store, cfg: SweepConfig, nodes: list[Node], parallel: int | None = None
) -> tuple[float, dict[str, Any]]:
    """Time left, from a short training probe on this machine, and how it was estimated.

    Training dominates: runs left x tokens per run / the aggregate tokens/s that the packing the
    sweep would use (`train.grid.choose_packing`) reaches in a few measured steps of the preset
    (`train.grid.probe_tokens_per_s`), plus ~3 s per run for its final evaluation and 1 s per data step.
    """
    from datadiet.train.config import resolve_config
    from datadiet.train.device import select_device
    from datadiet.train.grid import Packing, choose_packing, probe_tokens_per_s

    runs_left = sum(1 for n in nodes if n.kind == "runs" and n.state != "done")
    data_left = sum(1 for n in nodes if n.kind == "datasets" and n.state != "done")
    steps = {} if cfg.steps is None else {"steps": str(cfg.steps)}
    model_cfg, tcfg = resolve_config(cfg.preset, cfg.vocab, {**dict(cfg.overrides), **steps})
    if not runs_left:
        return data_left * 1.0, {"runs_left": 0}
    device = select_device(tcfg.device).type
    packing = (
        Packing(1, 0, 1)
        if parallel == 1 or cfg.nproc is not None
        else choose_packing(parallel, device, runs_left, model_cfg, tcfg)
    )
    rate = probe_tokens_per_s(model_cfg, tcfg, packing)
    per_run = sum(cfg.budgets) / len(cfg.budgets) if cfg.budgets else tcfg.steps  # (--epochs: the preset's)
    seconds = runs_left * (per_run * tcfg.tokens_per_step / rate + 3.0) + data_left * 1.0 if rate else math.nan
    return seconds, {"runs_left": runs_left, "tokens_per_s": rate, "packing": packing.describe(), "device": device}


def run_sweep(
    store: Store,
    cfg: SweepConfig,
    *,
    tracker: Tracker = NULL_TRACKER,
    on_event: Callable[[SweepEvent], None] | None = None,
    dedupe_workers: int | None = None,
    parallel: int | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Run every missing step of the sweep, then relate and report; returns the sweep artefact.

    The data steps run first; then the runs still to train are trained together as `--parallel`
    says (`train.grid`: None is auto, 1 trains each run alone inside its node), and each run node
    then publishes its run (final evaluation included) in order.
    """
    built = build_dag(store, cfg, dedupe_workers=dedupe_workers)
    # Runs depend on data steps only, and nothing but the report depends on runs: data first.
    # Memorisation probes (issue 14) depend on runs, so they come last.
    nodes = [n for n in built if n.kind not in ("runs", "evals")]
    nodes += [n for n in built if n.kind == "runs"] + [n for n in built if n.kind == "evals"]
    resolved: dict[str, Dataset] = {}
    total = len(nodes)
    started = time.perf_counter()
    run_seconds: list[float] = []
    pretrained, pretrain_s = False, 0.0
    for done, node in enumerate(nodes, start=1):
        if node.kind == "runs" and not pretrained:
            pretrained, t0 = True, time.perf_counter()
            _pretrain_runs(store, cfg, nodes, resolved, (parallel, engine, address), tracker)
            pretrain_s = time.perf_counter() - t0
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
    return _finish(store, cfg, nodes, resolved, started, tracker, pretrain_s)


def _pretrain_runs(
    store: Store,
    cfg: SweepConfig,
    nodes: list[Node],
    resolved: dict[str, Dataset],
    how: tuple[int | None, str, str | None],
    tracker: Tracker,
) -> None:
    """Train the sweep's unfinished runs together (`train.grid`, or Ray tasks), leaving publication to their nodes."""
    parallel, engine, address = how
    if engine != "ray" and (parallel == 1 or cfg.nproc is not None):
        return  # one run at a time, or DDP per run: each node trains its own run
    from datadiet.train.device import select_device
    from datadiet.train.grid import choose_packing, plan_runs, pretrain

    specs = [
        n.spec([resolved[d].ref for d in n.deps])
        for n in nodes
        if n.kind == "runs" and n.spec is not None and all(d in resolved for d in n.deps)
    ]
    runs = plan_runs(store, specs, tracker)
    if engine == "ray":
        from datadiet.train.grid_ray import pretrain_ray
        from datadiet.train.pipeline import train_run

        by_name = {spec.name: spec for spec in specs}

        def publish(name: str) -> None:  # each run committed as its task lands
            if by_name.get(name) is not None:
                train_run(store, by_name[name], resume=True, tracker=tracker)

        pretrain_ray(runs, address, store.remote is not None, tracker, on_finished=publish)
        return
    if len(runs) < 2 and parallel is None:
        return
    if not runs:
        return
    first = runs[0]
    device = select_device(first.train_cfg.device).type
    packing = choose_packing(parallel, device, len(runs), first.model_cfg, first.train_cfg)
    if packing.processes > 1 or packing.ensemble > 1:
        pretrain(runs, packing, tracker)


def results_frame(
    store: Store, cfg: SweepConfig, nodes: list[Node], resolved: dict[str, Dataset], tracker: Tracker = NULL_TRACKER
) -> pl.DataFrame:
    """One row per run: the factors, the variant's dataset statistics and the run's metrics."""
    from datadiet.eval.pipeline import run_row

    rows = []
    probes = {n.deps[0]: n for n in nodes if n.operation == "memorisation"}
    for node in nodes:
        if node.kind == "runs" and node.cell is not None:
            size, rate, _ = node.cell
            factors = {
                "size_fraction": size,
                "dup_rate": rate,
                "pool": float(cfg.pool or 1),
                "data_seed": node.data_seed,
            }
            factors.update({k: v for k, v in node.factors.items() if k not in factors})
            row = run_row(store, resolved[node.key], factors, tracker=tracker)
            if node.key in probes and probes[node.key].key in resolved:
                row.update(memorisation_columns(resolved[probes[node.key].key].manifest.stats))
            rows.append(row)
    return pl.DataFrame(rows)


def _vocab_size(store: Store, resolved: dict[str, Dataset]) -> int | None:
    run = next((d for k, d in resolved.items() if k.startswith("run:")), None)
    return int(run.manifest.params["model"]["vocab_size"]) if run is not None else None


def machine_description() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _run_seconds(nodes: list[Node], resolved: dict[str, Dataset], pretrain_s: float) -> dict[str, float]:
    """This sweep's training and final-evaluation seconds, apart (runs built now; cached runs cost 0)."""
    built = [n for n in nodes if n.kind == "runs" and n.state == "built"]
    evaluation = sum(float(resolved[n.key].manifest.stats.get("eval_seconds", 0.0)) for n in built)
    return {"training": pretrain_s + sum(n.seconds for n in built) - evaluation, "evaluation": evaluation}


def _finish(
    store: Store,
    cfg: SweepConfig,
    nodes: list[Node],
    resolved: dict[str, Dataset],
    started: float,
    tracker: Tracker,
    pretrain_s: float = 0.0,
) -> Commit:
    from datadiet.eval.budget import axes_markdown, primary_runs
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
    if not cfg.filters:  # added with the filter axis: sweeps without it keep their ids
        params.pop("filters")
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
            "data seeds": list(cfg.data_seeds),
            "training seeds": list(cfg.seeds),
            "tokenizer": cfg.tokenizer or f"BPE, {cfg.vocab:,} tokens, trained on the clean base",
            "vocab_size": _vocab_size(store, resolved),
        }
        study = cfg.preset == "paper" and set(cfg.sizes) == set(STUDY_SIZES) and set(cfg.rates) == set(STUDY_RATES)
        result, paths = study_report(
            writer.dir,
            store,
            primary_runs(runs),
            title=sweep_title(cfg),
            meta=meta,
            study_match=study,
            tracker=tracker,
        )
        append_axes(paths, axes_markdown(runs, out_dir=writer.dir))
        runs.write_parquet(writer.dir / "all_runs.parquet")  # every run; runs.parquet holds the report's
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
                **_run_seconds(nodes, resolved, pretrain_s),
                "statistics": stats_seconds,
            },
            "config": cfg.to_dict(),
        }

    return store.commit(cfg.name, operation="sweep", params=params, parents=parents, build=build, kind="sweeps")


DEMO_SIZES = (0.5, 1.0)
DEMO_RATES = (0.0, 0.5, 1.0)
# Two data seeds (each redraws the subsets and the story), so the report's intervals are estimable,
# and one training seed each: the data draw is the unit of replication.
DEMO_DATA_SEEDS = (0, 1)
DEMO_SEEDS = (0,)


def prepare_demo(store: Store, stories: int, tracker: Tracker = NULL_TRACKER) -> tuple[str, str]:
    """Generate (or find) the built-in corpus for the demo; returns (train ref, val ref)."""
    from datadiet.curate.corpus.op import CorpusConfig, write_corpus

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
        data_seeds=DEMO_DATA_SEEDS,
        preset="tiny",
        steps=steps,
        vocab=2048,
        overrides=overrides,
        name="demo",
    )
