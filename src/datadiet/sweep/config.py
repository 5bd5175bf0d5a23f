"""The sweep's configuration and the DAG's vocabulary: `SweepConfig`, `Node`, `SweepEvent`, `sweep_title`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, Strict

from datadiet.config import (
    Flag,
    Fraction,
    OpenProbability,
    PositiveFloat,
    PositiveInt,
    Probability,
    Seed,
    Text,
    build,
    load_toml,
    schema,
)
from datadiet.errors import UsageError
from datadiet.progress import Tracker
from datadiet.store import Commit
from datadiet.sweep.axes import STUDY_RATES, check_axes

STUDY_SIZES = (0.25, 0.5, 1.0)
SWEEP_FILE = "sweep.json"


# Sweep-only field types (the shared ones come from datadiet.config, the one schema module).
Threshold = Annotated[float, Strict(), Field(gt=0, lt=1, allow_inf_nan=False)]
Vocab = Annotated[int, Strict(), Field(ge=1, le=1 << 20)]
Procs = Annotated[int, Strict(), Field(ge=1, le=4096)]


@schema()
class SweepConfig:
    """One study: every field is recorded with the sweep; all but `name` shape its artefacts.

    pydantic checks every field's type and bounds when one is built (from flags, the TOML file or
    Python); the rules across fields follow in `__post_init__`, all before any step runs.
    """

    base: Text
    val: Text
    sizes: Annotated[tuple[Fraction, ...], Field(min_length=1, max_length=1000)] = STUDY_SIZES
    rates: Annotated[tuple[Probability, ...], Field(min_length=1, max_length=1000)] = STUDY_RATES
    seeds: Annotated[tuple[Seed, ...], Field(min_length=1, max_length=1000)] = (0,)
    pool: PositiveInt | None = None
    copies: PositiveInt | None = None
    near: OpenProbability = 0.0
    dedupe: Flag = False
    decontaminate: Flag = True
    threshold: Threshold = 0.8
    preset: Text = "paper"
    steps: PositiveInt | None = None
    vocab: Vocab = 8192
    tokenizer: Text | None = None
    data_seeds: Annotated[tuple[Seed, ...], Field(min_length=1, max_length=1000)] = (0,)
    overrides: tuple[tuple[Text, Text], ...] = ()
    name: Text = "sweep"
    nproc: Procs | None = None
    # Issue 14's axes (see `datadiet.sweep` "Axes"): several budgets, the repetition grid, a corruption.
    budgets: Annotated[tuple[PositiveInt, ...], Field(max_length=100)] = ()
    epochs: Annotated[tuple[PositiveFloat, ...], Field(max_length=100)] = ()
    repeat_fractions: Annotated[tuple[Fraction, ...], Field(max_length=100)] = ()
    repeat_counts: Annotated[tuple[PositiveInt, ...], Field(max_length=100)] = ()
    corrupt: Text | None = None
    corrupt_from: Text | None = None
    memorisation: Flag = False
    # A quality filter vs none (`--filter none,gopher`): levels `none` or `curate filter` rules.
    filters: Annotated[tuple[Text, ...], Field(max_length=100)] = ()

    def __post_init__(self) -> None:
        if (
            len(set(self.sizes)) != len(self.sizes)
            or len(set(self.rates)) != len(self.rates)
            or len(set(self.seeds)) != len(self.seeds)
            or len(set(self.data_seeds)) != len(self.data_seeds)
        ):
            raise UsageError("--sizes, --rates, --seeds and --data-seeds must not repeat a value")
        if self.pool is not None and self.copies is not None:
            raise UsageError("give --pool or --copies, not both")
        from datadiet.train.config import PRESETS, resolve_config
        from datadiet.train.tokenizer import MIN_VOCAB

        # Checked here, so a bad value fails before any step runs rather than after hours of them.
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.tokenizer is None and not MIN_VOCAB <= self.vocab <= 1 << 20:
            raise UsageError(f"--vocab must be between {MIN_VOCAB} and {1 << 20}, not {self.vocab}")
        steps = {} if self.steps is None else {"steps": str(self.steps)}
        resolve_config(self.preset, self.vocab, {**dict(self.overrides), **steps})
        check_axes(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_toml(cls, path: Path, overrides: Mapping[str, Any]) -> SweepConfig:
        """Defaults < the TOML file (a `[sweep]` table or top-level keys) < explicit options."""
        data = load_toml(path)
        data = data.get("sweep", data)
        source = f"--config {path}:"
        if not isinstance(data, dict):
            raise UsageError(f"{source} [sweep] must be a table of settings, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{source} unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        if isinstance(merged.get("overrides"), dict):  # [sweep.overrides] lr = 3e-4: typed by the train config
            merged["overrides"] = tuple((str(k), str(v)) for k, v in merged["overrides"].items())
        if "base" not in merged or "val" not in merged:
            raise UsageError("a sweep needs --base and --val (or base/val in the config file)")
        return build(cls, merged, source=source)


Runner = Callable[[list[str], Tracker], Commit]


@dataclass
class Node:
    """One step of the DAG: an artefact addressed by (kind, operation, params, its dependencies' refs).

    `run(refs, tracker)` builds it from the refs of `deps` (in order). `identity(refs)` gives the
    (params, parents) that address it when they are not simply `params` and `refs`.
    """

    key: str
    label: str
    kind: str
    name: str
    operation: str
    deps: list[str]
    run: Runner
    params: dict[str, Any] = field(default_factory=dict)
    identity: Callable[[list[str]], tuple[dict[str, Any], list[str]]] | None = None
    spec: Callable[[list[str]], Any] | None = None  # a run's RunSpec from its deps' refs (grid training)
    cell: tuple[float, float, int] | None = None  # (size, rate, replicate index) of a run, for displays
    factors: dict[str, Any] = field(default_factory=dict)  # a variant's or run's place in the grid (issue 14's axes)
    data_seed: int | None = None
    train_seed: int | None = None
    state: str = "pending"
    ref: str | None = None
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepEvent:
    """What a live display needs after each step."""

    node: Node
    done: int
    total: int
    eta_s: float | None


def sweep_title(cfg: SweepConfig) -> str:
    """The report's heading: a named sweep by its name; the default-named one by what it varies."""
    if cfg.name == "sweep":
        return f"datadiet sweep of {cfg.base}: size × duplication"
    return f"datadiet sweep {cfg.name}"
