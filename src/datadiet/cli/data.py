"""Commands that bring data into the store and look at it: ingest, corpus, ls, show, head, lineage, export."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from datadiet.cli.common import AddressOpt, EngineOpt, Out, command, commit_payload, one_of, report_commit
from datadiet.curate.ingest.op import DECODE_ERRORS
from datadiet.curate.ingest.read import FORMATS
from datadiet.schema import EOT
from datadiet.store import KINDS
from datadiet.ui import clean, styled, text

# `curate export --format`: a file whose extension says its format, or a Hugging Face datasets folder.
EXPORT_TARGETS = ("auto", "hf")


def _age(created: str) -> str:
    try:
        delta = datetime.now(timezone.utc) - datetime.fromisoformat(created)
    except ValueError:
        return "?"
    s = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


@command()
def ingest(
    paths: Annotated[
        # Strings, not Paths: a Path would fold "s3://bucket" into "s3:/bucket".
        list[str],
        typer.Argument(
            help="Files, folders or globs (.txt, .jsonl, .parquet; .gz/.zst allowed), local or URIs pyarrow opens: "
            "s3://BUCKET/corpus/*.jsonl.gz, gs://BUCKET/dir/, file:///ABS/DIR/ (wildcards in the path part). "
            "Also Arrow files and Hugging Face save_to_disk folders (every column kept).",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name to write a new version of.")],
    fmt: Annotated[
        str,
        typer.Option("--format", **one_of("--format", FORMATS), help="auto (by extension), text, jsonl or parquet."),
    ] = "auto",
    separator: Annotated[str, typer.Option("--separator", help="Line that separates documents in text files.")] = EOT,
    text_field: Annotated[
        str, typer.Option("--text-field", help="JSONL/Parquet/Arrow field holding the text.")
    ] = "text",
    id_field: Annotated[
        str | None,
        typer.Option("--id-field", help="JSONL/Parquet/Arrow field with the source's own ids (must be unique)."),
    ] = None,
    errors: Annotated[
        str,
        typer.Option(
            "--errors",
            **one_of("--errors", DECODE_ERRORS, "--errors must be 'strict' or 'replace', not {value!r}"),
            help="strict: invalid UTF-8 is an error; replace: substitute U+FFFD.",
        ),
    ] = "strict",
    max_doc_bytes: Annotated[
        int, typer.Option("--max-doc-bytes", min=1, help="Largest document accepted, in bytes.")
    ] = 16 * 1024 * 1024,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Read corpus files, local or URIs (s3://, gs://, file://), into a new immutable dataset version (streamed; same files = up to date)."""
    o = Out.current()
    from datadiet.curate.ingest.op import IngestConfig
    from datadiet.curate.ingest.op import ingest as do_ingest

    cfg = IngestConfig(
        format=fmt,
        separator=separator,
        text_field=text_field,
        id_field=id_field,
        errors=errors,
        max_doc_bytes=max_doc_bytes,
    )
    commit = do_ingest(o.store(), paths, name, cfg, tracker=o.tracker, engine=engine, address=address)
    dropped = commit.dataset.manifest.stats.get("dropped_empty", 0)
    report_commit(o, commit, f"{dropped} empty dropped")


@command()
def corpus(
    stories: Annotated[int, typer.Option("--stories", min=1, help="Training stories to generate.")] = 20_000,
    val_stories: Annotated[
        int | None, typer.Option("--val-stories", min=1, help="Validation stories (default: max(200, stories/10)).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same corpus.")] = 0,
    near_dup_rate: Annotated[
        float, typer.Option("--near-dup-rate", help="Share of stories that are near copies of another, in [0, 1).")
    ] = 0.03,
    name: Annotated[str, typer.Option("--name", "-n", help="Writes NAME-train and NAME-val.")] = "stories",
) -> None:
    """Generate the built-in corpus of children's stories (train and a separate validation split)."""
    o = Out.current()
    from datadiet.curate.corpus.op import CorpusConfig, write_corpus

    cfg = CorpusConfig(stories=stories, val_stories=val_stories, seed=seed, near_dup_rate=near_dup_rate)
    train, val = write_corpus(o.store(), cfg, name, tracker=o.tracker)
    if o.json:
        o.emit({"train": commit_payload(train), "val": commit_payload(val)})
    else:
        report_commit(o, train, "train")
        report_commit(o, val, "validation")


def _summary(d: Any) -> str:
    """What a version holds, in the terms of its kind (a run's rows are not a useful number)."""
    stats = d.manifest.stats
    if d.kind == "datasets":
        return f"{d.manifest.rows:,}"
    if d.kind == "tokenizers":
        return f"vocab {stats.get('vocab_size', '?'):,}" if isinstance(stats.get("vocab_size"), int) else "tokenizer"
    if d.kind == "tokens":
        return f"{stats['tokens']:,} tokens" if isinstance(stats.get("tokens"), int) else "tokens"
    if d.kind == "runs":
        m = stats.get("metrics") or {}
        steps = (stats.get("train") or {}).get("steps")
        loss = f"val loss {m['val_loss']:.4f}" if isinstance(m.get("val_loss"), (int, float)) else "run"
        return f"{loss}, {steps:,} steps" if isinstance(steps, int) else loss
    return f"{d.manifest.bytes:,} bytes"


@command("ls")
def ls_(
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            **one_of("--kind", KINDS),
            help="datasets, tokenizers, tokens, runs, evals, stats, reports or sweeps.",
        ),
    ] = "datasets",
    name: Annotated[str | None, typer.Argument(help="Only versions of this name.", show_default=False)] = None,
) -> None:
    """List versions: name, version, rows, operation, parent and age (newest last)."""
    o = Out.current()
    st = o.store()
    items = st.versions(name, kind) if name else st.all(kind)
    if name and not items:
        st.resolve(name, kind)  # raises the RefError that names what the store does hold
    # The version each name resolves to: the last command's (see Store.make_current), else the newest.
    newest = {d.name: d.version for d in items}
    current = {n: v for n in newest if (v := st.current(n, kind)) in {d.version for d in items if d.name == n}}
    current = {**newest, **current}
    rows: list[dict[str, Any]] = [
        {
            "current": current[d.name] == d.version,
            "ref": d.ref,
            "name": d.name,
            "version": d.version,
            "rows": d.manifest.rows,
            "summary": _summary(d),
            "bytes": d.manifest.bytes,
            "operation": d.manifest.operation,
            "parents": d.manifest.parents,
            "created": d.manifest.created,
        }
        for d in items
    ]

    def render(c: Console) -> None:
        if not rows:
            c.print(f"no {kind} in {st.location}")
            return
        t = Table(title=f"{kind} in {st.location}")
        size = "rows" if kind == "datasets" else "what"
        for col in ("name", "version", size, "operation", "parent", "age"):
            t.add_column(col, justify="right" if col == "rows" else "left")
        for r in rows:
            parents = ", ".join(p if not p.startswith("file:") else p[:20] + "…" for p in r["parents"])
            version = r["version"] + (" *" if r["current"] else "")
            t.add_row(r["name"], version, r["summary"], r["operation"], parents, _age(r["created"]))
        c.print(t)
        c.print("* the version NAME stands for: the one the last command made or found up to date")
        if kind == "datasets" and not name:
            others = [f"{len(st.all(k)):,} {k}" for k in ("tokenizers", "runs", "sweeps")]
            c.print(f"also: {', '.join(others)} (curate tokenizer ls, curate runs, curate ls --kind KIND)")

    o.emit(rows, render)


@command()
def show(
    ref: Annotated[
        str, typer.Argument(help="NAME or NAME@VERSION-PREFIX (any kind of artefact).", show_default=False)
    ],
) -> None:
    """Show a version's manifest: lineage, parameters, counts, file hashes and operation stats."""
    o = Out.current()
    import json

    ds = o.store().find(ref)
    m = ds.manifest.to_dict()

    def render(c: Console) -> None:
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for key in ("name", "version", "kind", "operation", "created", "package_version", "rows", "bytes"):
            value = m[key]
            t.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        t.add_row("parents", "\n".join(m["parents"]) or "-")
        t.add_row("params", json.dumps(m["params"], indent=1, ensure_ascii=False, default=str))
        t.add_row("stats", json.dumps(m["stats"], indent=1, ensure_ascii=False, default=str))
        t.add_row("files", "\n".join(f"{k}  {v[:16]}…" for k, v in m["files"].items()))
        t.add_row("path", ds.location)
        c.print(Panel(t, title=text(ds.ref)))

    o.emit(m | {"path": ds.location, "ref": ds.ref}, render)


@command()
def head(
    ref: Annotated[str, typer.Argument(help="Dataset NAME or NAME@VERSION-PREFIX.", show_default=False)],
    n: Annotated[int, typer.Option("-n", "--rows", min=0, help="Number of rows to show.")] = 5,
) -> None:
    """Show the first rows of a dataset version."""
    o = Out.current()
    from datadiet.curate.export import head as do_head

    ds = o.store().resolve(ref)
    frame = do_head(ds, n)
    records = frame.to_dicts()

    def render(c: Console) -> None:
        c.print(styled("[bold]{}[/] — first {} of {} rows", ds.ref, frame.height, f"{ds.rows:,}"))
        for r in records:
            extra = "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("id", "text"))
            body = r["text"] if len(r["text"]) <= 1200 else r["text"][:1200] + " …"
            # Panel parses a string title as markup: titles are Text, the body a cleaned Text.
            c.print(
                Panel(
                    text(body),
                    title=text(clean(r["id"], newlines=False)),
                    title_align="left",
                    subtitle=text(clean(extra, newlines=False)),
                    subtitle_align="right",
                )
            )

    o.emit(records, render)


@command()
def lineage(
    ref: Annotated[
        str, typer.Argument(help="NAME or NAME@VERSION-PREFIX (any kind of artefact).", show_default=False)
    ],
) -> None:
    """Show the chain of operations from a version back to its source files."""
    o = Out.current()
    from datadiet.store import lineage as do_lineage

    chain = do_lineage(o.store(), ref)

    def render(c: Console) -> None:
        by_ref = {e["ref"]: e for e in chain}

        def label(e: dict[str, Any]) -> Text:
            if e["kind"] == "file":
                return styled("[dim]file[/] {} [dim]{}…[/]", e["params"].get("path"), e["ref"][12:28])
            rows = f", {e['rows']:,} rows" if e["rows"] is not None else ""
            return styled("[bold]{}[/] [dim]{}[/] {}{}", e["ref"], e["kind"][:-1], e["operation"], rows)

        def grow(node: Tree, e: dict[str, Any], depth: int) -> None:
            for p in e["parents"]:
                child = by_ref.get(p)
                if child is not None and depth < 50:
                    grow(node.add(label(child)), child, depth + 1)

        root = Tree(label(chain[0]))
        grow(root, chain[0], 0)
        c.print(root)

    o.emit(chain, render)


@command()
def export(
    ref: Annotated[str, typer.Argument(help="Dataset NAME or NAME@VERSION-PREFIX.", show_default=False)],
    path: Annotated[
        Path,
        typer.Argument(
            help="Output file: .parquet, .jsonl or .txt (TinyStories format); with --format hf, a new folder.",
            show_default=False,
        ),
    ],
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            **one_of("--format", EXPORT_TARGETS),
            help="auto (by PATH's extension) or hf: a Hugging Face save_to_disk folder that "
            "datasets.load_from_disk opens (needs pip install 'datadiet[hf]').",
        ),
    ] = "auto",
) -> None:
    """Export a dataset version to one file (or a Hugging Face datasets folder), written atomically."""
    o = Out.current()
    from datadiet.curate.export import export as do_export

    o.store().check_outside(path, "export target")  # every format: a published version must not change
    ds = o.store().resolve(ref)
    if format_ == "hf":
        from datadiet.curate.hf.convert import export_hf

        rows = export_hf(ds, path)
    else:
        rows = do_export(ds, path, tracker=o.tracker)
    o.emit(
        {"ref": ds.ref, "path": str(path), "rows": rows},
        lambda c: c.print(f"exported {rows:,} rows of {ds.ref} to {path}"),
    )
