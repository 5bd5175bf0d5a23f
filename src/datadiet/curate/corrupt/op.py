"""`curate corrupt REF --kind typos|shuffle|truncate|mix --rate R [--from OTHER] [--seed S]`: labelled damage.

Quality beyond duplication: each kind damages the text in one controlled, seeded way, and every
row says what was done to it (`corruption`, `corrupt_fraction`, `corrupt_from`; schema.py), so a
sweep can relate a model's metrics to exactly how much damage its data had.

Kinds, for a dataset of N documents:

* `typos`: every ASCII letter gets a typo with probability R (substitution, deletion, insertion
  or a swap with the next letter, uniformly); `corrupt_fraction` = typos / letters of the row.
* `shuffle`: every sentence, with probability R, has its words put in a random order (whitespace
  stays in place, so lengths and paragraphs survive); `corrupt_fraction` = words that moved / words.
* `truncate`: int(R·N) documents are cut after a random word (keeping k of their W words, k uniform
  in 1..W−1; documents of one word are left as they are); `corrupt_fraction` = characters removed.
* `mix`: int(R·N) documents are replaced by documents of the dataset `--from OTHER` (e.g. the SMS
  corpus in ../shared/data), each of OTHER's documents used once before any is used twice; a
  replacing row has `source_id` = its id in OTHER, `id` = that id + "#mix<k>" (k-th use),
  `corrupt_from` = OTHER's full ref and `corrupt_fraction` 1.

The number of rows never changes, and rows keep their order and (except `mix`) their ids, so a
corrupted version lines up row for row with its input. The version id is content-addressed: the
parents (REF, and OTHER for mix), the kind, the rate, the seed and the kernel scheme.

Files: `op.py` (this: the parameters and the one commit), `build.py` (the local build: labels,
tally, the row plan, the writes), `kernels.py` (the text kernels), `ray.py` (the Ray build). Both
builds write the same rows in the same parts (`build.write_spans`), so `--engine ray` gives
byte-identical Parquet files and the same version id.

Library use::

    commit = corrupt(Store(), "tiny", CorruptConfig(kind="typos", rate=0.1, seed=1))
    commit = corrupt(Store(), "tiny", CorruptConfig(kind="mix", rate=0.3), other="sms")
    commit = corrupt(Store(), "tiny", CorruptConfig(kind="typos", rate=0.1), engine="ray")   # same version, on Ray
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import polars as pl
from pydantic import Field, Strict

from datadiet.config import PLAIN, WholeSeed, choice, schema
from datadiet.curate.corrupt.build import Tally, corrupt_frame, plan_rows
from datadiet.curate.corrupt.kernels import BLOCK_ROWS
from datadiet.engine import check_engine, require_ray
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, TEXT
from datadiet.store import Commit, Dataset, PartWriter, Store

OPERATION = "corrupt"
KINDS = ("typos", "shuffle", "truncate", "mix")
# The kernels' scheme, in every version's parameters: a change of how the random choices are keyed
# or what an edit does must make new versions, never pass old rows off as new ones.
SCHEME = 1


# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_WORDING = {
    "kind": {
        "type": f"--kind must be one of {', '.join(KINDS)}, not {{value!r}}",
        "value": f"--kind must be one of {', '.join(KINDS)}, not {{value!r}}",
    },
    "rate": {
        "type": "--rate must be a number, not {value!r}",
        "value": "--rate must be between 0 and 1, not {value}; e.g. --rate 0.1",
    },
    "seed": {
        "type": "--seed must be a whole number, not {value!r}",
        "greater_than_equal": "--seed must be >= 0, not {value}",
    },
}


@schema(wording=_WORDING)
class CorruptConfig:
    """What `corrupt` does; every field changes the rows, so all are in the version id (with SCHEME).

    Types and bounds are pydantic's (`config.schema`): --rate 1 is stored as 1.0, so it gives the
    version id of --rate 1.0; numpy numbers pass as the plain ones they are.

    Attributes:
        kind: One of KINDS.
        rate: Share in [0, 1] damaged (letters, sentences or documents, by kind).
        seed: Seed of every random choice.
    """

    kind: Annotated[str, Strict(), choice(KINDS)]
    rate: Annotated[float, PLAIN, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
    seed: WholeSeed = 0

    def to_params(self) -> dict[str, Any]:
        """The parameters as stored in the manifest and hashed into the version id."""
        return {"kind": self.kind, "rate": self.rate, "seed": self.seed, "scheme": SCHEME}


def _other_rows(store: Store, cfg: CorruptConfig, other: str | None, source: Dataset) -> Dataset | None:
    """Resolve --from: required for mix (a non-empty dataset other than REF), refused otherwise."""
    if cfg.kind != "mix":
        if other is not None:
            raise UsageError(f"--from is only for --kind mix, not --kind {cfg.kind}")
        return None
    if other is None:
        raise UsageError("--kind mix needs --from OTHER: the dataset whose documents are mixed in")
    found = store.resolve(other)
    if found.kind != "datasets":
        raise UsageError(f"--from {other!r} is a {found.kind[:-1]}, not a dataset")
    if found.ref == source.ref:
        raise UsageError(f"--from {other!r} is the version being corrupted; name a different dataset")
    if found.rows == 0:
        raise UsageError(f"--from {found.ref} has no documents to mix in")
    return found


def corrupt(
    store: Store,
    ref: str,
    cfg: CorruptConfig,
    other: str | None = None,
    name: str | None = None,
    tracker: Tracker = NULL_TRACKER,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
) -> Commit:
    """Commit a corrupted version of REF (operation "corrupt"; parents REF and, for mix, OTHER).

    Args:
        store: The store holding REF (and OTHER) and receiving the new version.
        ref: `NAME` or `NAME@VERSION` of the dataset to corrupt.
        cfg: The corruption.
        other: For `kind="mix"`: the dataset whose documents are mixed in (`--from`).
        name: Name of the new version; defaults to the input's name (a new version of it).
        tracker: Progress reporting.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.curate.corrupt.ray`);
            the result, version id and Parquet files included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").
        workers: Threads of the local engine's text kernels (default: every core); never changes the result.

    Returns:
        The commit; `up_to_date` is True when the same corruption of the same input already existed.

    Raises:
        UsageError: a bad kind, rate or seed, `--from` missing for mix or given for another kind,
            an empty input, or a reference that does not resolve.
    """
    on_ray = check_engine(engine) == "ray"  # a wrong --engine is reported before a wrong REF
    source = store.resolve(ref)
    if source.kind != "datasets":
        raise UsageError(f"{ref!r} is a {source.kind[:-1]}, not a dataset")
    if source.rows == 0:
        raise UsageError(f"{source.ref} is empty; there is nothing to corrupt")
    mixed_in = _other_rows(store, cfg, other, source)
    parents = [source.ref] + ([mixed_in.ref] if mixed_in is not None else [])
    if on_ray:
        require_ray()
        from datadiet.curate.corrupt import ray as ray_build

        build = ray_build.build(source, cfg, mixed_in, address=address, tracker=tracker)
    else:
        build = _local_build(source, cfg, mixed_in, tracker, workers)
    return store.commit(name or source.name, operation=OPERATION, params=cfg.to_params(), parents=parents, build=build)


def _local_build(
    source: Dataset, cfg: CorruptConfig, mixed_in: Dataset | None, tracker: Tracker, workers: int | None
) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function on this machine: the input part by part, each write `build.write_spans` says."""

    def build(writer: PartWriter) -> dict[str, Any]:
        other_frame = None
        if mixed_in is not None:
            with tracker.task(f"Reading {mixed_in.ref}", total=None):
                other_frame = mixed_in.scan().select(ID, TEXT).collect()
        n_other = other_frame.height if other_frame is not None else 0
        plan = plan_rows(source.rows, n_other, cfg.kind, cfg.rate, cfg.seed)
        tally = Tally()
        origin = mixed_in.ref if mixed_in else None
        first, pending = 0, None
        with tracker.task(f"Corrupting ({cfg.kind} {cfg.rate:g})", total=source.rows) as task:
            for part in source.iter_frames():
                # Blocks of randomness never straddle two writes: rows past the last whole block
                # wait for the next part (the output's parts follow the input's, shifted by < 256 rows).
                frame = part if pending is None else pl.concat([pending, part], how="diagonal_relaxed")
                whole = (first + frame.height) // BLOCK_ROWS * BLOCK_ROWS - first
                if whole > 0:
                    out = corrupt_frame(frame.head(whole), cfg, first, plan, other_frame, origin, tally, workers)
                    writer.write(out)
                    first += whole
                    task.advance(whole)
                pending = frame.slice(whole)
            if pending is not None and pending.height:
                writer.write(corrupt_frame(pending, cfg, first, plan, other_frame, origin, tally, workers))
                task.advance(pending.height)
        return tally.stats(cfg, n_other if mixed_in is not None else None)

    return build


def corrupt_rows(frame: pl.DataFrame, cfg: CorruptConfig, other: pl.DataFrame | None = None) -> pl.DataFrame:
    """FRAME corrupted as CFG says (pure; the whole dataset in memory), as `corrupt` writes it.

    For mix, OTHER holds the other dataset's `id` and `text`; `corrupt_from` is then "OTHER".
    """
    n_other = other.height if other is not None else 0
    if cfg.kind == "mix" and not n_other:
        raise UsageError("--kind mix needs --from OTHER: the dataset whose documents are mixed in")
    plan = plan_rows(frame.height, n_other, cfg.kind, cfg.rate, cfg.seed)
    return corrupt_frame(frame, cfg, 0, plan, other, "OTHER" if other is not None else None)
