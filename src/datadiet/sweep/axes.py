"""Issue 14's sweep axes, the parts that need no DAG node: rules, budgets, repetition cells, report glue.

`datadiet.sweep.dag` builds the nodes (`_run_nodes`, `_repeat_variants`, `_corrupt_variants`,
`_memorisation_nodes`); this module holds what they compute with:

- `check_axes` / `corrupt_axis` / `filter_axis`: the rules of `--steps N,M,…`, `--epochs`,
  `--repeat-fraction` × `--repeat-count`, `--corrupt KIND:RATES` and `--filter none,RULES`, checked
  when a `SweepConfig` is built;
- `Budget` / `budget_points` / `epochs_to_steps`: the budget axis (epochs become steps per size from
  the variant's own token count);
- `repetition_config`: a repetition cell (share F of the rows repeated, each K more times) as a
  labelled `duplicate`;
- `memorisation_columns` / `append_axes`: the study table's `mem_*` columns and the report's extra sections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadiet.errors import UsageError
from datadiet.eval.budget import NO_FILTER, axes_html

if TYPE_CHECKING:
    from datadiet.store import Store
    from datadiet.sweep.config import SweepConfig

STUDY_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)  # the study's duplication rates, the sweep's default


def check_axes(cfg: SweepConfig) -> None:
    """The rules of issue 14's axes, checked before any step runs.

    Raises:
        UsageError: several budget axes at once, a repeated value, half a repetition grid or one
            combined with --rates/--pool/--copies, or a malformed --corrupt.
    """
    given = [flag for flag, v in (("--steps", cfg.steps), ("--steps N,M", cfg.budgets), ("--epochs", cfg.epochs)) if v]
    if len(given) > 1:
        raise UsageError(f"give one budget axis, not {' and '.join(given)}")
    for flag, values in (
        ("--steps", cfg.budgets),
        ("--epochs", cfg.epochs),
        ("--repeat-fraction", cfg.repeat_fractions),
        ("--repeat-count", cfg.repeat_counts),
    ):
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} must not repeat a value")
    if any(k < 2 for k in cfg.repeat_counts):
        raise UsageError("--repeat-count must be at least 2: a document that appears once is not repeated")
    if bool(cfg.repeat_fractions) != bool(cfg.repeat_counts):
        raise UsageError("the repetition grid needs both --repeat-fraction and --repeat-count")
    if cfg.repeat_fractions and (cfg.rates != STUDY_RATES or cfg.pool is not None or cfg.copies is not None):
        raise UsageError("the repetition grid chooses the duplication itself; drop --rates, --pool and --copies")
    if cfg.corrupt is not None:
        kind, _ = corrupt_axis(cfg.corrupt)
        if (kind == "mix") != (cfg.corrupt_from is not None):
            raise UsageError("--corrupt mix:… needs --corrupt-from OTHER, and --corrupt-from needs --corrupt mix:…")
    elif cfg.corrupt_from is not None:
        raise UsageError("--corrupt-from needs --corrupt mix:RATES")
    if len(set(cfg.filters)) != len(cfg.filters):
        raise UsageError("--filter must not repeat a level")
    for level in cfg.filters:
        filter_config(level)


def filter_axis(spec: str) -> tuple[str, ...]:
    """`--filter none,gopher` as its levels: `none` or rules joined by `+` (`word_count:min=50,max=1000+gopher`).

    A comma separates levels except before a bound (`max=1000`), which continues the rule before it.
    """
    levels: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        head = token.partition("+")[0]
        if levels and "=" in head and ":" not in head:
            levels[-1] += f",{token}"  # `word_count:min=50,max=1000`: the second bound of the same rule
        else:
            levels.append(token)
    if not levels or any(not level for level in levels):
        raise UsageError(f"--filter {spec!r} has an empty level; e.g. --filter none,gopher")
    return tuple(levels)


def filter_config(level: str) -> Any:
    """A filter level as the `curate filter` it runs (a `FilterConfig`), or None for `none`.

    Raises:
        UsageError: an unknown rule or preset, or a malformed bound (the message `curate filter --rule` gives).
    """
    from datadiet.curate.filter.op import FilterConfig

    if level == NO_FILTER:
        return None
    try:
        return FilterConfig.from_specs(rules=[r.strip() for r in level.split("+")])
    except UsageError as exc:
        raise UsageError(f"--filter level {level!r}: {exc}") from None


def level_tag(level: str) -> str:
    """A filter level as a piece of a store name (`word_count:min=50` → `word_count-min-50`)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", level).strip("-.") or "filter"


def corrupt_axis(spec: str) -> tuple[str, tuple[float, ...]]:
    """`KIND:R1,R2,…` as (kind, rates), each rate checked by `CorruptConfig`.

    Raises:
        UsageError: no colon, an unknown kind, a rate that is not a number in [0, 1], or a repeat.
    """
    from datadiet.curate.corrupt.op import CorruptConfig

    kind, sep, raw = spec.partition(":")
    if not sep or not raw.strip():
        raise UsageError(f"--corrupt {spec!r} is not KIND:RATES; e.g. --corrupt typos:0,0.1,0.3")
    try:
        rates = tuple(float(r) for r in raw.split(","))
    except ValueError:
        raise UsageError(f"--corrupt {spec!r}: the rates must be numbers, e.g. typos:0,0.1,0.3") from None
    if len(set(rates)) != len(rates):
        raise UsageError(f"--corrupt {spec!r} repeats a rate")
    for rate in rates:
        try:
            CorruptConfig(kind=kind.strip(), rate=rate)
        except UsageError as exc:
            raise UsageError(f"--corrupt {spec!r}: {exc}") from None
    return kind.strip(), rates


@dataclass(frozen=True)
class Budget:
    """One point of the budget axis: a number of steps, an epoch count (steps per size), or the preset's."""

    steps: int | None = None
    epochs: float | None = None
    axis: bool = True  # False for the sweep's one budget: its runs keep the names and keys they always had

    @property
    def key(self) -> str:
        if not self.axis:
            return ""
        if self.epochs is not None:
            return f":e{self.epochs:g}"
        return f":b{self.steps}" if self.steps is not None else ""

    @property
    def suffix(self) -> str:
        return self.key.replace(":", "-").replace(".", "p")

    @property
    def value(self) -> float | None:
        """The axis value (steps, or epochs), for the report."""
        return float(self.epochs) if self.epochs is not None else (float(self.steps) if self.steps else None)


def budget_points(cfg: SweepConfig) -> list[Budget]:
    """The budgets every variant trains at: --steps N,M,… or --epochs …, else the one --steps (or the preset's)."""
    if cfg.budgets:
        return [Budget(steps=b) for b in cfg.budgets]
    if cfg.epochs:
        return [Budget(epochs=e) for e in cfg.epochs]
    return [Budget(steps=cfg.steps, axis=False)]


def epochs_to_steps(store: Store, cfg: SweepConfig, train_ref: str, tokenizer: str, epochs: float) -> int:
    """Steps that show the training set EPOCHS times: ceil(epochs × its tokens / tokens per step).

    The token count is the variant's own (a cached `tokens` artefact, which training needs anyway),
    so each size gets its own number of steps.
    """
    from datadiet.train.config import resolve_config
    from datadiet.train.pipeline import resolve_tokenizer, tokens_version

    tok = resolve_tokenizer(store, tokenizer)
    tokens = int(tokens_version(store, store.resolve(train_ref), tok).manifest.stats["tokens"])
    _, train_cfg = resolve_config(cfg.preset, cfg.vocab, dict(cfg.overrides))
    return max(1, math.ceil(epochs * tokens / train_cfg.tokens_per_step))


def repetition_config(rows: int, fraction: float, count: int, seed: int) -> Any:
    """The `duplicate` of a repetition-grid cell: a share F of the rows are repeats, each document appearing K times.

    P documents each appear K times (the original and K − 1 copies) in N rows, so P·K = F·N:
    P = max(1, round(F·N / K)), and the copies overwrite P·(K − 1) of the other N − P rows
    (Hernandez et al. 2022's "small share repeated many times"; F = r, K = N·r is the study's
    one-story corner). The rate is set half a slot above P·(K − 1)/(N − P), so that `duplicate`'s
    int(rate·(N − P)) is exactly P·(K − 1) whatever the float rounding.

    Raises:
        UsageError: the cell needs more rows than the subset has.
    """
    from datadiet.curate.duplicate.op import DuplicateConfig

    pool = max(1, round(fraction * rows / count))
    if pool * count > rows:
        raise UsageError(
            f"--repeat-fraction {fraction:g} with --repeat-count {count} needs {pool * count:,} rows, "
            f"more than the {rows:,} of the subset; lower one of them"
        )
    rate = min(1.0, (pool * (count - 1) + 0.5) / (rows - pool)) if rows > pool else 0.0
    return DuplicateConfig(rate=rate, pool=pool, seed=seed)


def memorisation_columns(stats: dict[str, Any]) -> dict[str, float | None]:
    """A probe's exact-continuation rate per class, as `mem_<class>` columns of the study table."""
    return {f"mem_{name}": r.get("exact_rate") for name, r in stats.get("classes", {}).items()}


def append_axes(paths: Mapping[str, Path], markdown: str) -> None:
    """Add the axes' sections (budget, repetition, corruption, filter) to the report: markdown as is, and as HTML."""
    if not markdown.strip():
        return
    md, page = Path(paths["markdown"]), Path(paths["html"])
    md.write_text(md.read_text(encoding="utf-8").rstrip() + "\n\n" + markdown, encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    block = axes_html(markdown)
    cut = text.rfind("</body>")
    page.write_text(text[:cut] + block + text[cut:] if cut >= 0 else text + block, encoding="utf-8")
