"""Running the sweep: `plan` (--dry-run), `estimate_seconds`, `run_sweep` (data steps, grid training, publication)
and `_finish` (the results table, the report and the sweep artefact)."""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store
from datadiet.sweep.axes import STUDY_RATES, append_axes, memorisation_columns
from datadiet.sweep.config import STUDY_SIZES, SWEEP_FILE, Node, SweepConfig, SweepEvent, sweep_title
from datadiet.sweep.dag import build_dag


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
    if engine == "ray":  # before any step: the cluster is only reached once the data steps are done
        from datadiet.engine import require_ray

        require_ray()
        from datadiet.engine.ray import check_address

        check_address(address)
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
    placement: dict[str, Any] | None = None
    for done, node in enumerate(nodes, start=1):
        if node.kind == "runs" and not pretrained:
            pretrained, t0 = True, time.perf_counter()
            placement = _pretrain_runs(store, cfg, nodes, resolved, (parallel, engine, address), tracker)
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
    return _finish(store, cfg, nodes, resolved, started, tracker, pretrain_s, placement)


def _pretrain_runs(
    store: Store,
    cfg: SweepConfig,
    nodes: list[Node],
    resolved: dict[str, Dataset],
    how: tuple[int | None, str, str | None],
    tracker: Tracker,
) -> dict[str, Any] | None:
    """Train the sweep's unfinished runs together (`train.grid`, or Ray tasks), leaving publication to their nodes.

    Returns:
        Under `--engine ray`, where each run trained: {"nodes": how many, "runs": {run ref: {"node",
        "start_step"}}} (`train.grid_ray.RayOutcome`); None otherwise.
    """
    parallel, engine, address = how
    if engine != "ray" and (parallel == 1 or cfg.nproc is not None):
        return None  # one run at a time, or DDP per run: each node trains its own run
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
        refs: dict[str, str] = {}

        def publish(name: str) -> None:  # each run committed as its task lands
            if by_name.get(name) is not None:
                refs[name] = train_run(store, by_name[name], resume=True, tracker=tracker).dataset.ref

        outcome = pretrain_ray(store, runs, address, tracker, on_finished=publish)
        where = {refs.get(name, name): p for name, p in outcome.placement.items()}
        placement: dict[str, Any] = {"nodes": len({p["node"] for p in where.values()}), "runs": where}
        if outcome.failures:  # by run name: their nodes then train them here (`train_run` resumes them)
            placement["failed"] = dict(outcome.failures)
        return placement
    if len(runs) < 2 and parallel is None:
        return None
    if not runs:
        return None
    first = runs[0]
    device = select_device(first.train_cfg.device).type
    packing = choose_packing(parallel, device, len(runs), first.model_cfg, first.train_cfg)
    if packing.processes > 1 or packing.ensemble > 1:
        pretrain(runs, packing, tracker)
    return None


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
    placement: dict[str, Any] | None = None,
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
        } | ({"ray": placement} if placement is not None else {})

    return store.commit(cfg.name, operation="sweep", params=params, parents=parents, build=build, kind="sweeps")
