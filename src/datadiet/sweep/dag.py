"""The sweep's DAG: one builder per kind of node (data steps, runs, issue 14's axes), then `build_dag`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from datadiet.eval.budget import FILTER, NO_FILTER
from datadiet.progress import Tracker
from datadiet.store import Commit, Dataset, Store
from datadiet.sweep.axes import (
    Budget,
    budget_points,
    corrupt_axis,
    epochs_to_steps,
    filter_config,
    level_tag,
    repetition_config,
)
from datadiet.sweep.config import Node, Runner, SweepConfig


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
