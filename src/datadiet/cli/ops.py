"""Curation operations: `curate dedupe`, `curate clusters`, `curate duplicate`, `curate subset`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from datadiet.cli.common import AddressOpt, EngineOpt, NameOpt, Out, command, one_of, report_commit
from datadiet.cli.help import DEDUPE_HELP, DUPLICATE_HELP, SUBSET_HELP
from datadiet.curate.dedupe.minhash import KEEP_POLICIES, METHODS
from datadiet.curate.dedupe.normalize import SHINGLE_KINDS
from datadiet.ui import clean, styled

# dedupe's options whose declarations need more than a line.
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        **one_of("--method", METHODS),
        help="exact (identical normalised text) or minhash (near duplicates too).",
    ),
]
ThresholdOpt = Annotated[
    float, typer.Option("--threshold", help="Jaccard similarity of shingle sets counted as duplicate, in (0, 1).")
]
ShingleOpt = Annotated[
    str, typer.Option("--shingle", **one_of("--shingle", SHINGLE_KINDS), help="word or char n-grams.")
]
BandsOpt = Annotated[
    int | None,
    typer.Option("--bands", help="LSH bands (default: chosen for high recall at the threshold).", show_default=False),
]
RowsOpt = Annotated[
    int | None, typer.Option("--rows", help="Signature values per band (give with --bands).", show_default=False)
]
KeepOpt = Annotated[
    str,
    typer.Option(
        "--keep",
        **one_of("--keep", KEEP_POLICIES),
        help="Keeper of each cluster: first (lowest position), longest, or random (seeded).",
    ),
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Check candidates against the exact Jaccard (no false positives).")
]
AgainstOpt = Annotated[
    str | None,
    typer.Option(
        "--against",
        help="Remove documents that near-duplicate this other dataset (decontamination); it is not changed.",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Signing processes (default: all cores); does not change the result.",
        show_default=False,
    ),
]


@command(help=DEDUPE_HELP, short_help="Remove exact and MinHash-LSH near-duplicate documents.")
def dedupe(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    method: MethodOpt = "minhash",
    threshold: ThresholdOpt = 0.8,
    num_perm: Annotated[int, typer.Option("--num-perm", help="MinHash permutations (signature length).")] = 128,
    ngram: Annotated[int, typer.Option("--ngram", help="Words (or characters) per shingle.")] = 5,
    shingle: ShingleOpt = "word",
    bands: BandsOpt = None,
    rows: RowsOpt = None,
    keep: KeepOpt = "first",
    verify: VerifyOpt = False,
    against: AgainstOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations and of --keep random.")] = 1,
    workers: WorkersOpt = None,
    name: NameOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    o = Out.current()
    from datadiet.curate.dedupe import output as D
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.dedupe.op import dedupe as do_dedupe

    cfg = MinhashConfig(
        method=method,
        threshold=threshold,
        num_perm=num_perm,
        ngram=ngram,
        shingle=shingle,
        bands=bands,
        rows=rows,
        keep=keep,
        verify=verify,
        seed=seed,
    )
    commit = do_dedupe(
        o.store(),
        ref,
        cfg,
        name=name,
        against=against,
        workers=workers,
        tracker=o.tracker,
        engine=engine,
        address=address,
    )
    s = commit.dataset.manifest.stats
    report_commit(
        o,
        commit,
        f"{s[D.STAT_DOCS_IN]:,} in, removed {s[D.STAT_REMOVED_EXACT]:,} exact + {s[D.STAT_REMOVED_NEAR]:,} near, "
        f"{s[D.STAT_CLUSTERS]:,} clusters",
    )


@command()
def clusters(
    ref: Annotated[str, typer.Argument(help="A version made by `curate dedupe`.", show_default=False)],
    top: Annotated[int, typer.Option("--top", min=0, help="Show the N largest clusters.")] = 10,
    id_: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Show this document's cluster and the kept document it matched, words that differ highlighted.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Explain a dedupe: the largest clusters and, for any removed document, what it matched."""
    o = Out.current()
    import dataclasses

    from datadiet.curate.dedupe.explain import explain_clusters

    st = o.store()
    report = explain_clusters(st.resolve(ref), top=top, id=id_, store=st)

    def render(c: Console) -> None:
        t = Table(title=f"largest clusters of {report.ref} ({report.clusters:,} clusters)")
        for col in ("cluster", "size", "removed", "keeper", "min J est.", "keeper text"):
            t.add_column(col)
        for cl in report.top:
            j = "-" if cl.min_jaccard_estimate is None else f"{cl.min_jaccard_estimate:.2f}"
            t.add_row(str(cl.cluster_id), f"{cl.size:,}", f"{cl.removed:,}", cl.keeper_id, j, cl.keeper_preview[:60])
        c.print(t)
        m = report.match
        if m is not None:
            state = "kept" if m.kept else "removed"
            j = f"estimated Jaccard {m.jaccard_estimate:.3f}" if m.jaccard_estimate is not None else ""
            c.print(styled("\n[bold]{}[/] ({}) matched keeper [bold]{}[/] {}", m.id, state, m.keeper_id, j))
            diff = Text()
            for op, words in m.diff:
                style = {"delete": "red strike", "insert": "green bold"}.get(op, "")
                diff.append(clean(words) + " ", style=style)
            c.print(diff)
        if report.note:
            c.print(report.note)

    o.emit(dataclasses.asdict(report), render)


@command(help="Overwrite (or append) labelled copies of pool documents: the study's controlled duplication.")
def duplicate(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    rate: Annotated[float, typer.Option("--rate", help=DUPLICATE_HELP["rate"])],
    pool: Annotated[int | None, typer.Option("--pool", help=DUPLICATE_HELP["pool"], show_default=False)] = None,
    copies: Annotated[int | None, typer.Option("--copies", help=DUPLICATE_HELP["copies"], show_default=False)] = None,
    append: Annotated[bool, typer.Option("--append", help=DUPLICATE_HELP["append"])] = False,
    near: Annotated[float, typer.Option("--near", help=DUPLICATE_HELP["near"])] = 0.0,
    doc: Annotated[str | None, typer.Option("--doc", help=DUPLICATE_HELP["doc"], show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help=DUPLICATE_HELP["seed"])] = 0,
    name: NameOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    o = Out.current()
    from datadiet.curate.duplicate import inject as I
    from datadiet.curate.duplicate.op import DuplicateConfig
    from datadiet.curate.duplicate.op import duplicate as do_duplicate

    cfg = DuplicateConfig(rate=rate, pool=pool, copies=copies, append=append, near=near, doc=doc, seed=seed)
    commit = do_duplicate(o.store(), ref, cfg, name=name, tracker=o.tracker, engine=engine, address=address)
    s = commit.dataset.manifest.stats
    report_commit(
        o,
        commit,
        f"{s[I.STAT_COPIES_INJECTED]:,} copies of {s[I.STAT_POOL_SIZE]:,} pool docs, "
        f"{s[I.STAT_UNIQUE_DOCUMENTS]:,} unique docs, copy share {s[I.STAT_COPY_SHARE]:.3f}",
    )


@command(
    help="A random subset; subsets of one dataset with one seed are nested (25% inside 50%), so size is not confounded with which stories were drawn."
)
def subset(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    fraction: Annotated[
        float | None, typer.Option("--fraction", help=SUBSET_HELP["fraction"], show_default=False)
    ] = None,
    docs: Annotated[int | None, typer.Option("--docs", help=SUBSET_HELP["docs"], show_default=False)] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", help=SUBSET_HELP["tokens"], show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help=SUBSET_HELP["seed"])] = 0,
    name: NameOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    o = Out.current()
    from datadiet.curate.subset import select as S
    from datadiet.curate.subset.op import SubsetConfig
    from datadiet.curate.subset.op import subset as do_subset

    cfg = SubsetConfig(fraction=fraction, docs=docs, tokens=tokens, seed=seed)
    commit = do_subset(o.store(), ref, cfg, name=name, tracker=o.tracker, engine=engine, address=address)
    s = commit.dataset.manifest.stats
    report_commit(o, commit, f"{s[S.STAT_ROW_SHARE]:.3f} of {s[S.STAT_ROWS_IN]:,} rows")
