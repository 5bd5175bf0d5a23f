"""Store maintenance: `curate verify` and `curate gc` (a local store or one on object storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from datadiet.cli.common import Out, command
from datadiet.ui import styled


@command()
def verify(
    ref: Annotated[
        str | None, typer.Argument(help="One artefact to check (default: the whole store).", show_default=False)
    ] = None,
) -> None:
    """Recompute file hashes and row counts against the manifests; exit 1 if anything differs."""
    o = Out.current()
    from datadiet.errors import DatadietError
    from datadiet.store import verify as do_verify

    results = do_verify(o.store(), ref)
    bad = [r for r in results if not r["ok"]]

    def render(c: Console) -> None:
        for r in bad:
            c.print(styled("[red]BAD[/] {} {}: {}", r["kind"][:-1], r["ref"], "; ".join(r["problems"])))
        c.print(f"checked {len(results)} versions: {len(results) - len(bad)} ok, {len(bad)} with problems")

    o.emit({"checked": len(results), "bad": bad}, render)
    if bad:
        raise DatadietError(f"{len(bad)} of {len(results)} versions differ from their manifests (listed above)")


@command()
def gc(
    unreferenced: Annotated[
        bool,
        typer.Option(
            "--unreferenced",
            help="Also delete versions nothing depends on that are not the newest of their name, and the checkpoints of interrupted runs.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting versions.")] = False,
) -> None:
    """Remove temporary folders left by interrupted commands (and, with --unreferenced, unused versions)."""
    o = Out.current()
    from datadiet.errors import UsageError
    from datadiet.store import (
        REMOTE_DEBRIS_GRACE_S,
        Dataset,
        abandoned,
        remote_debris,
        remove,
        stale_cache,
        work_folders,
    )
    from datadiet.store import unreferenced as find_unreferenced

    st = o.store()
    published, interrupted = work_folders(st)
    # Interrupted runs' checkpoints are what --resume continues from: kept unless asked.
    debris: list[Path | Dataset | str] = [*abandoned(st), *published, *(interrupted if unreferenced else [])]
    # On object storage: uploads that died before their manifest (never versions), and cached copies
    # of versions removed elsewhere. Recent foreign debris may be an upload running on another machine.
    remote_stale, remote_recent = remote_debris(st)
    debris += remote_stale
    debris, failed = remove(st, debris)
    pruned, failed_pruned = remove(st, stale_cache(st))
    failed += failed_pruned
    victims = find_unreferenced(st) if unreferenced else []
    if victims and not yes:
        if o.json or not typer.get_text_stream("stdin").isatty():
            raise UsageError(f"{len(victims)} unreferenced versions would be deleted; rerun with --yes to confirm")
        for d in victims:
            o.console.print(f"  {d.kind[:-1]} {d.ref}  ({d.manifest.operation}, {d.manifest.rows:,} rows)")
        if not typer.confirm(f"Delete these {len(victims)} versions?"):
            victims = []
    removed_versions, failed_versions = remove(st, victims)
    failed += failed_versions
    victims = [d for d in removed_versions if isinstance(d, Dataset)]
    kept = [] if unreferenced else interrupted
    payload = {
        "removed_tmp": [str(p) for p in debris],
        "removed_versions": [d.ref for d in victims],
        "kept_resumable": [str(p) for p in kept],
        "not_removed": failed,
    }
    if st.remote is not None:
        payload |= {"pruned_cache": [str(p) for p in pruned], "kept_recent_uploads": remote_recent}
    notes = []
    if kept:
        notes.append(f"kept {len(kept)} interrupted runs' checkpoints for --resume (--unreferenced deletes them)")
    if remote_recent:
        hours = REMOTE_DEBRIS_GRACE_S // 3600
        notes.append(
            f"kept {len(remote_recent)} unfinished uploads that may still be running on other machines "
            f"(removed once untouched for {hours} h)"
        )
    if pruned:
        notes.append(f"pruned {len(pruned)} stale entries of the local cache {st.root}")
    if failed:
        # Reported, not hidden: a read-only store, or versions a running command is reading.
        notes.append(f"could not remove {len(failed)}: " + "; ".join(failed[:5]) + (" …" if len(failed) > 5 else ""))
    o.emit(
        payload,
        lambda c: c.print(
            f"removed {len(debris)} abandoned temporary folders and {len(victims)} versions"
            + "".join(f"; {n}" for n in notes)
        ),
    )
