"""Quality beyond duplication: `curate corrupt`, labelled typos, shuffled sentences, truncations and mixed-in documents."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from datadiet.cli.common import AddressOpt, EngineOpt, NameOpt, Out, command, report_commit

CORRUPT_HELP: dict[str, str] = {
    "kind": (
        "typos (each letter with probability R), shuffle (each sentence's words with probability R), "
        "truncate (int(R·N) documents cut after a random word) or mix (int(R·N) documents replaced by --from's)."
    ),
    "rate": "The share R in [0, 1] damaged: letters (typos), sentences (shuffle) or documents (truncate, mix).",
    "from": "For --kind mix: the dataset NAME[@VERSION] whose documents replace a share of this one's.",
    "seed": "Seed of every random choice; the same input, kind, rate and seed give the same version.",
}


class Kind(str, enum.Enum):
    """The kinds of damage (`datadiet.curate.corrupt.KINDS`), as an Enum so --help lists them."""

    typos = "typos"
    shuffle = "shuffle"
    truncate = "truncate"
    mix = "mix"


@command(help="Damage a dataset in one controlled, seeded, labelled way: typos, shuffled sentences, truncation, mix.")
def corrupt(
    ref: Annotated[str, typer.Argument(help="Dataset NAME[@VERSION].", show_default=False)],
    kind: Annotated[Kind, typer.Option("--kind", help=CORRUPT_HELP["kind"], show_default=False)],
    rate: Annotated[float, typer.Option("--rate", help=CORRUPT_HELP["rate"], show_default=False)],
    from_: Annotated[str | None, typer.Option("--from", help=CORRUPT_HELP["from"], show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help=CORRUPT_HELP["seed"])] = 0,
    name: NameOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    o = Out.current()
    from datadiet.curate.corrupt.op import CorruptConfig
    from datadiet.curate.corrupt.op import corrupt as do_corrupt

    cfg = CorruptConfig(kind=kind.value, rate=rate, seed=seed)
    commit = do_corrupt(o.store(), ref, cfg, other=from_, name=name, tracker=o.tracker, engine=engine, address=address)
    s = commit.dataset.manifest.stats
    report_commit(
        o,
        commit,
        f"{s['rows_corrupted']:,} rows changed, {s['realised_rate']:.3f} of {s[s['unit'] + '_total']:,} {s['unit']}",
    )
