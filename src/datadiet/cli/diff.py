"""`curate diff A B`: rows added, removed and changed, statistics side by side, and the lineage of both."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datadiet.cli.common import Out, command
from datadiet.ui import styled


@command()
def diff(
    a: Annotated[str, typer.Argument(help="First dataset NAME[@VERSION].", show_default=False)],
    b: Annotated[str, typer.Argument(help="Second dataset NAME[@VERSION].", show_default=False)],
    examples: Annotated[
        int, typer.Option("--examples", "-e", min=0, help="Ids to list for each of added, removed and changed.")
    ] = 5,
) -> None:
    """Compare two dataset versions: rows added/removed/changed (matched by id, compared by text hash), texts only in one, statistics side by side and the lineage of both."""
    o = Out.current()
    from datadiet.curate.diff.compare import diff_versions

    d = diff_versions(o.store(), a, b, examples=examples)

    def chain(entries: list[dict[str, Any]]) -> str:
        steps = [f"{e['operation']} {e['ref']}" for e in entries if e["kind"] != "file"]
        files = sum(1 for e in entries if e["kind"] == "file")
        return " ← ".join(steps) + (f" ← {files} file(s)" if files else "")

    def render(c: Console) -> None:
        c.print(styled("[bold]A[/] {}   [bold]B[/] {}   common ancestor: {}", d.a, d.b, d.common_ancestor or "none"))
        rows = Table(title="rows (matched by id)")
        for col in ("added (B only)", "removed (A only)", "changed text", "unchanged"):
            rows.add_column(col, justify="right")
        rows.add_row(*(f"{d.counts[k]:,}" for k in ("added", "removed", "changed", "unchanged")))
        c.print(rows)
        t = d.texts
        c.print(
            f"distinct texts: {t['only_in_a']:,} only in A, {t['only_in_b']:,} only in B, {t['in_both']:,} in both; "
            f"rows repeating a text: {t['duplicate_rows_a']:,} in A, {t['duplicate_rows_b']:,} in B"
        )
        side = Table(title="statistics")
        side.add_column("")
        side.add_column("A", justify="right")
        side.add_column("B", justify="right")
        sa, sb = d.stats["a"], d.stats["b"]
        for key, fmt in (
            ("rows", "{:,}"),
            ("bytes", "{:,}"),
            ("characters", "{:,}"),
            ("mean_characters", "{:,.1f}"),
            ("labelled_copies", "{:,}"),
            ("operation", "{}"),
        ):
            side.add_row(key.replace("_", " "), styled("{}", fmt.format(sa[key])), styled("{}", fmt.format(sb[key])))
        c.print(side)
        for label, key in (("added", "added"), ("removed", "removed"), ("changed", "changed")):
            if d.examples[key]:
                c.print(styled("{} e.g.: {}", label, ", ".join(d.examples[key])))
        c.print(styled("[bold]lineage A[/] {}", chain(d.lineage["a"])))
        c.print(styled("[bold]lineage B[/] {}", chain(d.lineage["b"])))

    o.emit(d.to_dict(), render)
