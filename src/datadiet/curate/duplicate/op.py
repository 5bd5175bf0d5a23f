"""Controlled, labelled duplication of a dataset: `curate duplicate REF --rate R [options]`.

Semantics (DESIGN.md, "Duplication, defined"), for a dataset of N documents and a pool of P
documents (default P = 1):

* default (overwrite, the original study's method): `int(R·(N−P))` randomly chosen slots other
  than the pool documents' own are overwritten by copies, so the dataset keeps N rows. With P = 1
  that is `int(R·(N−1))`, and `--rate 1` gives N copies of one story; `--rate 0` gives rows equal
  to the input (a version of its own, so every cell of a grid is addressable).
* `--pool P`: the copies are drawn round robin from P distinct original documents, so each is
  copied equally often (the counts differ by at most one).
* `--copies K`: P is chosen so that each pool document gets about K injected copies:
  P = round(R·N / (K+R)) when overwriting (because then P·K = R·(N−P)), P = round(R·N / K) when
  appending; P is at least 1.
* `--append`: `int(R·N)` copies are inserted at random positions instead (the dataset grows).
* `--near E`: every copy gets `round(E·W)` of its W words edited (substitution by another word of
  the corpus vocabulary, deletion, insertion of a vocabulary word, swap with the next word; one
  operation per chosen word), so `edit_fraction` = round(E·W)/W. A deleted word's whitespace goes with
  it unless it holds a line break, so paragraphs survive. The word-5-gram Jaccard of the
  copy to its source is stored in the extra column `jaccard_to_source`; with independent edits it
  is about s/(2−s) with s = (1−E)^5 (E = 0.1 → ~0.42, E = 0.2 → ~0.20).

Labels: a copy has `source_id` = the pool document's id, `copy_index` = k (k-th copy of that
source, counting on from any copies already in the input), `id` = f"{source_id}#dup{k}" and
`edit_fraction` = its realised edit share; originals are untouched (copy_index 0). Pool documents
are always originals (copy_index 0). `jaccard_to_source` (Float32) is written only when `--near`
is set (or when the input already has it): null for rows that are not copies, 1.0 for exact ones.
Words are maximal runs of non-whitespace (compared exactly, no case folding); the whitespace after
each word is kept with it, so paragraph breaks survive edits. Substituted and inserted words are
drawn uniformly from the word types of the pool and of a seeded sample of 10,000 documents.

The stats (manifest "stats") give the pool ids (the first 1,000), pool size, copies injected,
per-pool-document copy counts, unique documents remaining (distinct `source_id`), the share of
rows injected now and the share that are copies at all; `pool.parquet` beside the parts lists the
whole pool (`id`, `copies`).

Everything is drawn from numpy Generators spawned from the seed (never Python's hash()), one
stream each for the pool, the slots and the edits, so the same input, parameters and seed give
byte-identical rows, and exact and near copies of one seed overwrite the same slots. Near copies
are edited in blocks of similar source length; block b draws from its own stream, spawned from
(seed, b) (edit scheme NEAR_SCHEME), so a block gives the same rows wherever it is edited: in this
process, in worker processes (from MIN_PARALLEL_COPIES copies on) or in a Ray task.

The output is written one `PartWriter.write` per input part (the rows that part's originals and
the copies between them make, see `chunk_bounds`), so `--engine ray`, whose tasks each write one
input part's output, gives byte-identical parts (`ray.py`).

The package: `op.py` (this: `DuplicateConfig` and the one commit), `inject.py` (the plan: pool,
slots, labels, placement, stats), `near.py` (near-copy editing), `ray.py` (the Ray build).

Library use (`duplicate_frame` is in `inject.py`)::

    cfg = DuplicateConfig(rate=0.5, pool=10, seed=1)
    frame, stats = duplicate_frame(frame, cfg)          # pure
    commit = duplicate(Store(), "tiny", cfg)            # reads a version, commits a new one
    commit = duplicate(Store(), "tiny", cfg, engine="ray", address="auto")   # same version, on Ray
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from pydantic import Field, Strict

from datadiet.config import Count, Flag, OpenProbability, Probability, WholeSeed, schema
from datadiet.curate.duplicate.inject import (
    POOL_FILE,
    _duplicate,
    chunk_bounds,
    pool_file_bytes,
)
from datadiet.curate.duplicate.near import (
    NEAR_SCHEME,
    NEAR_SCHEME_PARAM,
)
from datadiet.engine import check_engine, require_ray
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Commit, Dataset, PartWriter, Store, read_parts

OPERATION = "duplicate"


# A document id as the pool is given it (`--doc`, the sweep's ordered draw).
DocId = Annotated[str, Strict(), Field(min_length=1)]
_DOC = "--doc must be a document id, not {value!r}"
_DOCS = "docs must be a non-empty list of document ids, not {value!r}"
# Each setting's error line, as the flag the CLI gives it by (`config.schema`).
_WORDING = {
    "rate": {
        "type": "--rate must be a number, not {value!r}",
        "value": "--rate must be between 0 and 1, not {value}; e.g. --rate 0.25",
    },
    "near": {
        "type": "--near must be a number, not {value!r}",
        "value": "--near must be at least 0 and below 1, not {value}; e.g. --near 0.1",
    },
    "pool": {
        "type": "--pool must be a whole number, not {value!r}",
        "greater_than_equal": "--pool must be at least 1, not {value}",
    },
    "copies": {
        "type": "--copies must be a whole number, not {value!r}",
        "greater_than_equal": "--copies must be at least 1, not {value}",
    },
    "append": {"type": "--append must be true or false, not {value!r}"},
    "doc": {"type": _DOC, "value": _DOC},
    "seed": {
        "type": "--seed must be a whole number, not {value!r}",
        "greater_than_equal": "--seed must be >= 0, not {value}",
    },
    "docs": {"type": _DOCS, "value": _DOCS},
}


@schema(wording=_WORDING)
class DuplicateConfig:
    """What `duplicate` does; every field changes the rows, so all of them are in the version id.

    Attributes:
        rate: Share R in [0, 1] of the non-pool documents overwritten (or, with `append`, int(R·N) copies added).
        pool: Number P of distinct documents copied round robin; None means 1, or derived from `copies`.
        copies: Target number K of copies per pool document (chooses P; excludes `pool`).
        append: Insert the copies at random positions instead of overwriting documents.
        near: Share E in [0, 1) of each copy's words that are edited; 0 gives exact copies.
        doc: Id of the (first) document to copy; otherwise drawn with the seed.
        seed: Seed of every random choice.
        docs: Ids of the pool's first documents, in pool order (excludes `doc`): the first min(P, len)
            of them are the pool's first members, the rest drawn with the seed. A sweep passes one
            ordered draw per data seed, so every size and rate repeats the same documents.
    """

    rate: Probability
    pool: Count | None = None
    copies: Count | None = None
    append: Flag = False
    near: OpenProbability = 0.0
    doc: DocId | None = None
    seed: WholeSeed = 0
    docs: Annotated[tuple[DocId, ...], Field(min_length=1)] | None = None

    def __post_init__(self) -> None:
        # Types, bounds and canonical types (--rate 1 is 1.0, so it gives the version id of --rate
        # 1.0) are pydantic's; what spans fields is checked here.
        if self.pool is not None and self.copies is not None:
            raise UsageError("--pool and --copies both choose the pool size; give only one of them")
        if self.docs is not None:
            if self.doc is not None:
                raise UsageError("give the pool's documents as doc or as docs, not both")
            if len(set(self.docs)) != len(self.docs):
                raise UsageError("docs must not repeat a document id")

    def to_params(self) -> dict[str, Any]:
        """The parameters as stored in the manifest and hashed into the version id.

        With near copies they include the edit scheme (NEAR_SCHEME), so a change of scheme makes
        new versions instead of passing old rows off as new ones.
        """
        params = asdict(self)
        if self.docs is None:
            del params["docs"]  # absent unless given, so every version made without it keeps its id
        else:
            params["docs"] = list(self.docs)
        if self.near > 0:
            params[NEAR_SCHEME_PARAM] = NEAR_SCHEME
        return params


def duplicate(
    store: Store,
    ref: str,
    cfg: DuplicateConfig,
    name: str | None = None,
    tracker: Tracker = NULL_TRACKER,
    workers: int | None = None,
    *,
    engine: str = "local",
    address: str | None = None,
) -> Commit:
    """Commit a duplicated version of REF (operation "duplicate", params = CFG, parent = REF's full ref).

    Args:
        store: The store holding REF and receiving the new version.
        ref: `NAME` or `NAME@VERSION` of the input dataset.
        cfg: The duplication to apply.
        name: Name of the new version; defaults to the input's name (a new version of it).
        tracker: Progress reporting.
        workers: Processes that edit near copies (default: every core); does not change the result.
        engine: "local" (this machine) or "ray" (a Ray cluster, `datadiet.curate.duplicate.ray`);
            the result, version id and Parquet files included, is the same.
        address: The Ray cluster for engine "ray" (None: start a local one; "auto"; "HOST:PORT").

    Returns:
        The commit; `up_to_date` is True when the same duplication of the same input already existed.
    """
    on_ray = check_engine(engine) == "ray"  # a wrong --engine is reported before a wrong REF
    source = store.resolve(ref)
    params = cfg.to_params()
    if on_ray:
        require_ray()
        from datadiet.curate.duplicate import ray as ray_build

        build = ray_build.build(source, cfg, address=address, tracker=tracker)
    else:
        build = _local_build(source, cfg, tracker, workers)
    return store.commit(name or source.name, operation=OPERATION, params=params, parents=[source.ref], build=build)


def _local_build(
    source: Dataset, cfg: DuplicateConfig, tracker: Tracker, workers: int | None
) -> Callable[[PartWriter], dict[str, Any]]:
    """The build function of a duplication on this machine: one write per input part's output chunk."""

    def build(writer: PartWriter) -> dict[str, Any]:
        with tracker.task(f"Reading {source.ref}", total=None):
            frame, part_rows = read_parts(source)
        out, stats, pool, plan = _duplicate(frame, cfg, tracker, workers)
        del frame
        with tracker.task("Writing", total=len(part_rows)) as task:
            for lo, hi in itertools.pairwise(chunk_bounds(part_rows, plan, cfg.append).tolist()):
                writer.write(out.slice(lo, hi - lo))
                task.advance()
            writer.write_file(POOL_FILE, pool_file_bytes(pool))
        return stats

    return build
