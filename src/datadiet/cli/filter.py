"""`curate filter`: keep documents that meet SQL conditions and quality heuristics, with a table of what each removed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datadiet.cli.common import NameOpt, Out, command, report_commit
from datadiet.curate.filter.rules import PRESETS, RULES
from datadiet.ui import styled

_RULE_LIST = "; ".join(
    f"{name} ({meaning}; keeps {'' if lo is None else f'>= {lo:g}'}{' and ' if lo is not None and hi is not None else ''}{'' if hi is None else f'<= {hi:g}'})"
    for name, (lo, hi, meaning) in RULES.items()
)
FILTER_HELP = f"""Keep the documents that meet every condition; the rest are removed, each labelled by the first
condition it failed (removed.parquet), with a per-condition table in the manifest.

--where takes a polars SQL condition over the dataset's columns, e.g. "length(text) >= 200" or
"text NOT LIKE '%lorem%'" (a null result removes the row). --rule takes a heuristic, optionally with
bounds (NAME:min=A,max=B; none lifts a bound), or a preset: gopher ({", ".join(PRESETS["gopher"])}) or all.

Rules: {_RULE_LIST}. Definitions: docs/filter.md."""


@command(
    "filter",
    help=FILTER_HELP,
    short_help="Keep documents meeting SQL conditions and quality heuristics (Gopher-style).",
)
def filter_(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help='SQL condition a kept row meets (repeatable), e.g. "length(text) >= 200".',
            show_default=False,
        ),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            "-r",
            help="Quality rule NAME[:min=A,max=B] or preset gopher|all (repeatable).",
            show_default=False,
        ),
    ] = None,
    name: NameOpt = None,
) -> None:
    o = Out.current()
    from datadiet.curate.filter.op import STAT_CONDITIONS, FilterConfig, filter_dataset

    cfg = FilterConfig.from_specs(where or [], rule or [])
    commit = filter_dataset(o.store(), ref, cfg, name, tracker=o.tracker)
    stats = commit.dataset.manifest.stats
    if o.json:
        report_commit(o, commit)
        return
    report_commit(o, commit, f"removed {stats['removed']:,} of {stats['rows_in']:,}")

    def render(c: Console) -> None:
        t = Table(title="what each condition removed")
        for col, just in (
            ("condition", "left"),
            ("failed", "right"),
            ("removed (first)", "right"),
            ("failed only this", "right"),
            ("share failed", "right"),
        ):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        n = max(1, stats["rows_in"])
        for row in stats[STAT_CONDITIONS]:
            t.add_row(
                styled("{}", row["condition"]),
                f"{row['failed']:,}",
                f"{row['removed_first']:,}",
                f"{row['failed_only_this']:,}",
                f"{row['failed'] / n:.1%}",
            )
        c.print(t)

    o.emit(None, render)
