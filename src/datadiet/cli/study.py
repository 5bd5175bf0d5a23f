"""Measuring and the whole study: `curate stats`, `eval`, `report`, `sweep`, `demo`."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from datadiet.cli.common import PRESET_CHOICES, AddressOpt, EngineOpt, Out, command, parse_overrides
from datadiet.errors import UsageError
from datadiet.ui import styled


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise UsageError(f"{what} must be comma-separated numbers such as 0.25,0.5,1, not {text!r}") from exc


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise UsageError(f"{what} must be comma-separated integers such as 0,1,2, not {text!r}") from exc


def _flag(key: str) -> str:
    """How the sweep's config field KEY is written on the command line."""
    named = {"overrides": "--set", "decontaminate": "decontaminate", "data_seed": "data_seed", "budgets": "--steps"}
    named |= {"repeat_fractions": "--repeat-fraction", "repeat_counts": "--repeat-count", "filters": "--filter"}
    return named.get(key, "--" + key.replace("_", "-"))


@command()
def stats(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Also count tokens with this tokenizer (store ref or tokenizer.json).",
            show_default=False,
        ),
    ] = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Compute (once) and show a version's statistics: size, duplication, diversity, entropy, compression."""
    o = Out.current()
    from datadiet.engine import check_engine
    from datadiet.eval.stats.op import stats_version
    from datadiet.train.pipeline import resolve_tokenizer, tokens_version

    check_engine(engine)  # before --tokenizer may encode the whole version
    st = o.store()
    ds = st.resolve(ref)
    tokens = None
    if tokenizer:
        tokens = int(tokens_version(st, ds, resolve_tokenizer(st, tokenizer), o.tracker).manifest.stats["tokens"])
    result = stats_version(st, ds, tokens=tokens, tracker=o.tracker, engine=engine, address=address)
    values = result.manifest.stats

    def render(c: Console) -> None:
        t = Table(title=f"statistics of {ds.ref}")
        t.add_column("statistic")
        t.add_column("value", justify="right")
        for k, v in values.items():
            if isinstance(v, float):
                t.add_row(k, f"{v:.4g}")
            elif isinstance(v, int):
                t.add_row(k, f"{v:,}")
        c.print(t)
        # The stored key is `top_repeated` (stats.TOP_REPEATED), each item a count and a preview.
        for item in values.get("top_repeated") or []:
            c.print(f"  ×{item.get('count')}  {str(item.get('preview', ''))[:100]!r}")

    o.emit({"ref": ds.ref, "stats": values}, render)


@command("eval")
def eval_(
    run: Annotated[str, typer.Argument(help="Run NAME[@VERSION] (see `curate runs`).", show_default=False)],
    val: Annotated[
        str | None, typer.Option("--val", help="Validation dataset (default: the run's own).", show_default=False)
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            min=1,
            help="Evaluate at most this many tokens (deterministic, evenly spaced windows).",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            min=0,
            help="Also sample N generations and report their distinct-n and the share of 8-grams copied from the training data (memorisation).",
        ),
    ] = 0,
    memorisation: Annotated[
        bool,
        typer.Option(
            "--memorisation",
            help="Also probe memorisation: greedy-continue the first P tokens of repeated and unique training "
            "documents and of validation documents; exact-continuation rate and loss per class.",
        ),
    ] = False,
    prefix_tokens: Annotated[int, typer.Option("--prefix-tokens", help="P: prompt tokens of each document.")] = 32,
    suffix_tokens: Annotated[int, typer.Option("--suffix-tokens", help="S: tokens that must follow exactly.")] = 32,
    docs_per_class: Annotated[
        int, typer.Option("--docs-per-class", help="N: most documents probed per class (a seeded sample).")
    ] = 100,
) -> None:
    """Score a run on a validation set: loss, perplexity, accuracy, bits per byte, and the study's figures."""
    o = Out.current()
    from datadiet.eval.memorisation import ProbeConfig, memorisation_version
    from datadiet.eval.pipeline import eval_version

    probe_cfg = ProbeConfig(prefix_tokens, suffix_tokens, docs_per_class) if memorisation else None
    commit = eval_version(o.store(), run, val, max_tokens=max_tokens, samples=samples, tracker=o.tracker)
    m = commit.dataset.manifest.stats["metrics"]
    mem = None
    if probe_cfg is not None:
        mem = memorisation_version(o.store(), run, probe_cfg, val_ref=val, tracker=o.tracker).dataset.manifest.stats

    def render(c: Console) -> None:
        t = Table(title=f"{commit.dataset.ref} on {commit.dataset.manifest.stats['val']}")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in m.items():
            t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        gen = commit.dataset.manifest.stats.get("generations")
        if gen:
            for k in ("distinct_1", "distinct_2", "memorised_8gram_share"):
                if gen.get(k) is not None:
                    t.add_row(f"generations: {k}", f"{gen[k]:.4g}")
        c.print(t)
        for text in (gen or {}).get("samples", [])[:2]:
            c.print(styled("[dim]sample:[/] {}", repr(str(text)[:300])))
        if mem is not None:
            c.print(memorisation_table(mem))

    payload = {"ref": commit.dataset.ref, "up_to_date": commit.up_to_date, **commit.dataset.manifest.stats}
    o.emit({**payload, "memorisation": mem} if mem is not None else payload, render)


def memorisation_table(mem: dict[str, Any]) -> Table:
    """The probe's classes as one table: documents, exact continuations (95% interval), token match, loss."""
    cfg = mem["config"]
    t = Table(title=f"memorisation: first {cfg['prefix_tokens']} tokens → next {cfg['suffix_tokens']} (greedy)")
    for col in ("class", "docs / class", "exact", "exact rate (95% CI)", "token match", "mean loss"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for name, r in mem["classes"].items():
        ci = r["exact_rate_ci95"]
        rate = "-" if ci is None else f"{r['exact_rate']:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"
        match = "-" if r["token_match"] is None else f"{r['token_match']:.3f}"
        loss = "-" if r["mean_loss"] is None else f"{r['mean_loss']:.3f}"
        t.add_row(name, f"{r['docs']:,} / {r['class_size']:,}", str(r["exact"]), rate, match, loss)
    return t


def _render_summary(
    c: Console, runs: Any, verdict: str, report_path: Path | None, seconds: dict[str, float] | None = None
) -> None:
    from datadiet.eval.report import summary_table

    rows = summary_table(runs)
    if rows:
        t = Table(title="validation metrics by size × duplication (mean [95% CI over data seeds])")
        for col in rows[0]:
            t.add_column(str(col), justify="right")
        for r in rows:
            t.add_row(*[Text(str(v)) for v in r.values()])
        c.print(t)
    c.print(styled("\n[bold]Verdict.[/] {}\n", verdict))
    if report_path is not None:
        c.print(f"report: {report_path}")
    if seconds:
        parts = ", ".join(f"{k} {v:,.1f} s" for k, v in seconds.items() if k != "total")
        c.print(f"time: {seconds.get('total', 0.0):,.1f} s in all ({parts})")


def _export_report(sweep_ds: Any, dest: Path | None) -> Path:
    """The report folder: inside the sweep artefact, or copied to DEST when given."""
    if dest is None:
        return sweep_ds.path / "report.html"
    dest.mkdir(parents=True, exist_ok=True)
    for f in sweep_ds.path.iterdir():
        if f.name != "manifest.json" and f.is_file():
            shutil.copy2(f, dest / f.name)
    return dest / "report.html"


def _parallel(text: str) -> int | None:
    """`--parallel auto|N` as None (auto) or N."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or value > 4096:
        raise UsageError(f"--parallel must be 'auto' or a whole number from 1 to 4096, not {text!r}")
    return value


ParallelOpt = Annotated[
    str,
    typer.Option(
        "--parallel",
        help="Runs trained at once: auto (CPU: one process per core for grids worth it; GPU: as many as "
        "fit in memory, as one ensemble), or N (1: one run at a time). Results do not change.",
    ),
]


def _dry_run(o: Out, st: Any, cfg: Any, parallel: int | None) -> None:
    from datadiet.sweep import estimate_seconds, plan

    nodes, _ = plan(st, cfg)
    eta, how = estimate_seconds(st, cfg, nodes, parallel)
    payload = {
        "nodes": [{"key": n.key, "label": n.label, "state": n.state, "ref": n.ref} for n in nodes],
        "estimated_seconds": eta,
        "estimate": how,
    }

    def render(c: Console) -> None:
        t = Table(title=f"sweep {cfg.name}: {sum(n.state == 'done' for n in nodes)} of {len(nodes)} steps done")
        for col in ("step", "state", "artefact"):
            t.add_column(col)
        for n in nodes:
            color = {"done": "green", "todo": "yellow"}.get(n.state, "dim")
            t.add_row(n.label, Text(n.state, style=color), n.ref or "")
        c.print(t)
        basis = (
            f" ({how['runs_left']} runs at {how['tokens_per_s']:,.0f} tokens/s in all, measured by a short probe "
            f"on this machine's {how['device']}: {how['packing']})"
            if how.get("tokens_per_s")
            else ""
        )
        c.print(f"estimated time left: {eta / 60:.1f} min{basis}")

    o.emit(payload, render)


def _with_tensorboard(st: Any, on_event: Any) -> Any:
    """An on_event that also writes each run's curves for TensorBoard as the sweep publishes it."""
    from datadiet.train.tensorboard import TensorBoardLog, write_run_curves

    TensorBoardLog.check_installed()

    def event(ev: Any) -> None:
        node = ev.node
        if node.kind == "runs" and node.ref and node.state in ("built", "done"):
            write_run_curves(st.root, st.resolve(node.ref, "runs"))
        if on_event is not None:
            on_event(ev)

    return event


def _run_sweep(
    o: Out,
    cfg: Any,
    dest: Path | None,
    dry_run: bool,
    parallel: int | None = None,
    tensorboard: bool = False,
    engine: tuple[str, str | None] = ("local", None),
) -> None:
    import polars as pl

    from datadiet.sweep import run_sweep
    from datadiet.ui import SweepDisplay

    st = o.store()
    if dest is not None:
        st.check_outside(dest, "--out")
    if dry_run:
        _dry_run(o, st, cfg, parallel)
        return
    live = not (o.quiet or o.json) and o.err.is_terminal and sys.stderr.isatty()
    replicates = tuple(range(len(cfg.data_seeds) * len(cfg.seeds)))
    display = SweepDisplay(o.err, cfg.sizes, cfg.rates, replicates) if live else None
    # Off a terminal a line per finished step as well as the periodic progress lines.
    on_event = display.event if display else getattr(o.tracker, "event", None)
    if tensorboard:
        on_event = _with_tensorboard(st, on_event)
    with display if display is not None else contextlib.nullcontext():
        commit = run_sweep(
            st,
            cfg,
            tracker=display or o.tracker,
            on_event=on_event,
            parallel=parallel,
            engine=engine[0],
            address=engine[1],
        )
    ds = commit.dataset
    report = _export_report(ds, dest)
    runs = pl.read_parquet(ds.file("runs.parquet"), glob=False)
    payload = {
        "ref": ds.ref,
        "up_to_date": commit.up_to_date,
        "report": str(report),
        "verdict": ds.manifest.stats["verdict"],
        "runs": runs.to_dicts(),
        "seconds": ds.manifest.stats.get("seconds"),
    }
    if "ray" in ds.manifest.stats:  # --engine ray: the node each run trained on, the step it started from
        payload["ray"] = ds.manifest.stats["ray"]
    seconds = ds.manifest.stats.get("seconds")
    o.emit(payload, lambda c: _render_summary(c, runs, ds.manifest.stats["verdict"], report, seconds))


def _opt(flag: str, help_: str, *decls: str, **kw: Any) -> Any:
    """A sweep option that defaults to None, so the TOML file or the config's default applies."""
    return typer.Option(flag, *decls, help=help_, show_default=False, **kw)


# The sweep's options, one line each: None means "not given" (the --config file or the default applies).
BaseOpt = Annotated[str | None, _opt("--base", "Training corpus to vary (dataset ref).")]
ValOpt = Annotated[
    str | None, _opt("--val", "Fixed validation set (dataset ref); the base is decontaminated against it.")
]
SizesOpt = Annotated[str | None, _opt("--sizes", "Size fractions, nested subsets of the base. [default: 0.25,0.5,1]")]
RatesOpt = Annotated[
    str | None,
    _opt("--rates", "Duplication rates (share of slots overwritten by copies). [default: 0,0.25,0.5,0.75,1]"),
]
SeedsOpt = Annotated[str | None, _opt("--seeds", "Training seeds per data seed and cell. [default: 0]")]
DataSeedsOpt = Annotated[
    str | None,
    _opt(
        "--data-seeds",
        "Data seeds: each redraws the subsets and the repeated story; the unit of replication. [default: 0]",
    ),
]
PoolOpt = Annotated[
    int | None, _opt("--pool", "Copies are drawn from P distinct documents (default 1: the study's one story).", min=1)
]
CopiesOpt = Annotated[
    int | None, _opt("--copies", "Choose the pool so each pool document appears about K times.", min=1)
]
NearOpt = Annotated[float | None, _opt("--near", "Each copy has this share of its words changed, in [0, 1).")]
DedupeOpt = Annotated[bool | None, _opt("--dedupe/--no-dedupe", "MinHash-deduplicate the base first.")]
PresetOpt = Annotated[str | None, _opt("--preset", "Model and schedule. [default: paper]", **PRESET_CHOICES)]
StepsOpt = Annotated[
    str | None,
    _opt(
        "--steps", "Training steps per run (default: the preset's); several, e.g. 100,400,1600, make budget an axis."
    ),
]
EpochsOpt = Annotated[
    str | None, _opt("--epochs", "Budget axis in epochs of each size's own data, e.g. 0.5,2,8 (steps per size).")
]
RepeatFractionOpt = Annotated[
    str | None, _opt("--repeat-fraction", "Repetition grid: share F of the rows that are repeats, e.g. 0.01,0.1.")
]
RepeatCountOpt = Annotated[
    str | None,
    _opt("--repeat-count", "Repetition grid: times K (>= 2) each repeated document appears, e.g. 2,16,128."),
]
CorruptOpt = Annotated[
    str | None, _opt("--corrupt", "Corruption axis KIND:RATES (typos, shuffle, truncate, mix), e.g. typos:0,0.1,0.3.")
]
CorruptFromOpt = Annotated[str | None, _opt("--corrupt-from", "For --corrupt mix:…: the dataset mixed in.")]
FilterOpt = Annotated[
    str | None,
    _opt(
        "--filter",
        "Quality filter axis: levels 'none' or `curate filter` rules (a preset, NAME:min=A,max=B, joined by +), "
        "e.g. none,gopher.",
    ),
]
MemorisationOpt = Annotated[
    bool | None,
    _opt("--memorisation/--no-memorisation", "Probe every run's memorisation (repeated, unique, validation docs)."),
]


def _axes_given(
    steps: str | None,
    epochs: str | None,
    repeat_fraction: str | None,
    repeat_count: str | None,
    corrupt: str | None,
    corrupt_from: str | None,
    memorisation: bool | None,
    filter_levels: str | None = None,
) -> dict[str, Any]:
    """The axes' options as config values: --steps N is the one budget, --steps N,M,… the `budgets` axis."""
    from datadiet.sweep.axes import filter_axis

    values = _ints(steps, "--steps")
    one, many = (values[0], None) if values is not None and len(values) == 1 else (None, values)
    return {
        "steps": one,
        "budgets": many,
        "epochs": _floats(epochs, "--epochs"),
        "repeat_fractions": _floats(repeat_fraction, "--repeat-fraction"),
        "repeat_counts": _ints(repeat_count, "--repeat-count"),
        "corrupt": corrupt,
        "corrupt_from": corrupt_from,
        "memorisation": memorisation,
        "filters": filter_axis(filter_levels) if filter_levels is not None else None,
    }


VocabOpt = Annotated[int | None, _opt("--vocab", "BPE vocabulary trained on the base. [default: 8192]")]
TokenizerOpt = Annotated[
    str | None, _opt("--tokenizer", "Use this tokenizer (store ref or tokenizer.json) instead of training one.")
]
NameOpt = Annotated[str | None, _opt("--name", "Sweep name, also the prefix of its artefacts. [default: sweep]", "-n")]
SetOpt = Annotated[
    list[str] | None, _opt("--set", "Override a training setting for every run, KEY=VALUE (repeatable).")
]
NprocOpt = Annotated[
    int | None, _opt("--nproc", "Train each run on N processes with torch DDP (the results do not change).", min=1)
]
ConfigOpt = Annotated[Path | None, _opt("--config", "TOML file holding the sweep (options given here override it).")]
OutOpt = Annotated[Path | None, _opt("--out", "Also copy the report into this folder.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the DAG, what is done, and the time left; change nothing.")
]


def _sweep_config(given: dict[str, Any], config: Path | None) -> Any:
    """The SweepConfig of the given options (None = not given) over the --config file's values."""
    from datadiet.config import build
    from datadiet.sweep import SweepConfig

    if config is not None:
        return SweepConfig.from_toml(config, given)
    if given["base"] is None or given["val"] is None:
        raise UsageError("a sweep needs --base and --val (or a --config file holding them)")
    return build(SweepConfig, {k: v for k, v in given.items() if v is not None}, source="", flag=_flag)


@command()
def sweep(
    base: BaseOpt = None,
    val: ValOpt = None,
    sizes: SizesOpt = None,
    rates: RatesOpt = None,
    seeds: SeedsOpt = None,
    data_seeds: DataSeedsOpt = None,
    pool: PoolOpt = None,
    copies: CopiesOpt = None,
    near: NearOpt = None,
    dedupe: DedupeOpt = None,
    preset: PresetOpt = None,
    steps: StepsOpt = None,
    epochs: EpochsOpt = None,
    repeat_fraction: RepeatFractionOpt = None,
    repeat_count: RepeatCountOpt = None,
    corrupt: CorruptOpt = None,
    corrupt_from: CorruptFromOpt = None,
    filter_levels: FilterOpt = None,
    memorisation: MemorisationOpt = None,
    vocab: VocabOpt = None,
    tokenizer: TokenizerOpt = None,
    name: NameOpt = None,
    set_: SetOpt = None,
    nproc: NprocOpt = None,
    config: ConfigOpt = None,
    out_dir: OutOpt = None,
    dry_run: DryRunOpt = False,
    parallel: ParallelOpt = "auto",
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also write each run's training curves as TensorBoard event files under <store>/tensorboard/ as it is published (pip install 'datadiet[tensorboard]').",
        ),
    ] = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Run the study's grid (sizes × duplication rates × data seeds × training seeds) as cached steps, then relate and report."""
    o = Out.current()
    given: dict[str, Any] = {
        "base": base,
        "val": val,
        "sizes": _floats(sizes, "--sizes"),
        "rates": _floats(rates, "--rates"),
        "seeds": _ints(seeds, "--seeds"),
        "data_seeds": _ints(data_seeds, "--data-seeds"),
        "pool": pool,
        "copies": copies,
        "near": near,
        "dedupe": dedupe,
        "preset": preset,
        "vocab": vocab,
        "tokenizer": tokenizer,
        "name": name,
        "overrides": parse_overrides(set_) if set_ else None,
        "nproc": nproc,
        **_axes_given(
            steps, epochs, repeat_fraction, repeat_count, corrupt, corrupt_from, memorisation, filter_levels
        ),
    }
    from datadiet.engine import check_engine

    check_engine(engine)
    _run_sweep(o, _sweep_config(given, config), out_dir, dry_run, _parallel(parallel), tensorboard, (engine, address))


@command()
def demo(
    stories: Annotated[
        int, typer.Option("--stories", min=100, help="Training stories of the built-in corpus.")
    ] = 8000,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", min=1, help="Training steps per run (default: the tiny preset's).", show_default=False
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a training setting, KEY=VALUE (repeatable).", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Also copy the report into this folder.", show_default=False)
    ] = None,
    parallel: ParallelOpt = "auto",
) -> None:
    """A miniature of the study on the built-in corpus: sizes 0.5, 1 × duplication 0, 0.5, 1 (minutes on a CPU)."""
    o = Out.current()
    from datadiet.sweep import demo_config, prepare_demo

    if out_dir is not None:  # checked before the corpus is built
        o.store().check_outside(out_dir, "--out")
    runs_at_once = _parallel(parallel)  # checked before the corpus is built
    train_ref, val_ref = prepare_demo(o.store(), stories, tracker=o.tracker)
    o.info(f"built-in corpus: {train_ref} (train), {val_ref} (validation)")
    cfg = demo_config(train_ref, val_ref, steps, parse_overrides(set_ or []))
    _run_sweep(o, cfg, out_dir, dry_run=False, parallel=runs_at_once)


def _runs_table(o: Out, runs: list[str] | None, sweep_ref: str | None) -> tuple[Any, Any]:
    """The study table of the given runs, or of a sweep; returns (table, sweep dataset or None)."""
    import polars as pl

    from datadiet.eval.pipeline import run_row

    st = o.store()
    if (sweep_ref is None) == (not runs):
        raise UsageError("give either RUNS... or --sweep ID")
    if sweep_ref is not None:
        ds = st.resolve(sweep_ref, "sweeps")
        return pl.read_parquet(ds.file("runs.parquet"), glob=False), ds
    rows = [run_row(st, st.resolve(r, "runs"), tracker=o.tracker) for r in runs or []]
    return pl.DataFrame(rows), None


RunsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Runs NAME[@VERSION] (see `curate runs`); factors are read from each run's data lineage.",
        show_default=False,
    ),
]
SweepOpt = Annotated[
    str | None, typer.Option("--sweep", help="A sweep NAME[@VERSION] instead of a list of runs.", show_default=False)
]


def _print_table(c: Console, title: str, content: tuple[list[str], list[list[str]]]) -> None:
    header, rows = content
    t = Table(title=title)
    for k, col in enumerate(header):
        t.add_column(col, justify="left" if k == 0 else "right")
    for r in rows:
        t.add_row(*(Text(x) for x in r))
    c.print(t)


@command()
def relate(
    runs: RunsArg = None,
    sweep_ref: SweepOpt = None,
) -> None:
    """Relate dataset statistics to model metrics: cell intervals over data seeds, quantity/quality split, verdict."""
    o = Out.current()
    from datadiet.eval.pipeline import relate_runs
    from datadiet.eval.report import correlation_table, effects_table, split_table

    table, _ = _runs_table(o, runs, sweep_ref)
    if table.height < 2:
        raise UsageError(f"relating needs at least 2 runs, got {table.height}")
    result = relate_runs(table)

    def render(c: Console) -> None:
        _print_table(c, "differences between cells, paired by data seed (95% CI)", effects_table(result))
        _print_table(c, "quantity vs quality: shares of the systematic variance (joint 95% CI)", split_table(result))
        _print_table(c, "strongest correlations at the dataset level (95% CI)", correlation_table(result, top=12))
        c.print(styled("\n[bold]Verdict.[/] {}", result.verdict))

    o.emit(result.to_dict(), render)


@command()
def report(
    runs: RunsArg = None,
    sweep_ref: SweepOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for report.md, report.html and the PNGs (required with RUNS).", show_default=False
        ),
    ] = None,
) -> None:
    """Write (or copy) a report: the grid, the study's numbers where they match, plots and the verdict."""
    o = Out.current()
    from datadiet.eval.pipeline import study_report
    from datadiet.sweep import machine_description

    if out_dir is not None:  # before anything is read: a report must never land in a version
        o.store().check_outside(out_dir, "--out")
    table, sweep_ds = _runs_table(o, runs, sweep_ref)
    if sweep_ds is not None:
        path = _export_report(sweep_ds, out_dir)
        verdict = sweep_ds.manifest.stats["verdict"]
        ref = sweep_ds.ref
    else:
        if out_dir is None:
            raise UsageError("--out DIR is required when reporting on a list of runs")
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"machine": machine_description(), "runs": len(table)}
        result, paths = study_report(
            out_dir, o.store(), table, title="datadiet report", meta=meta, study_match=False, tracker=o.tracker
        )
        path, verdict, ref = paths["html"], result.verdict, None
    payload = {"ref": ref, "report": str(path), "verdict": verdict, "runs": table.to_dicts()}
    o.emit(payload, lambda c: _render_summary(c, table, verdict, path))
