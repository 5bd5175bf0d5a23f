"""`curate demo`'s miniature grid: the built-in corpus and its `SweepConfig`."""

from __future__ import annotations

from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.store import Store
from datadiet.sweep.config import SweepConfig

DEMO_SIZES = (0.5, 1.0)
DEMO_RATES = (0.0, 0.5, 1.0)
# Two data seeds (each redraws the subsets and the story), so the report's intervals are estimable,
# and one training seed each: the data draw is the unit of replication.
DEMO_DATA_SEEDS = (0, 1)
DEMO_SEEDS = (0,)


def prepare_demo(store: Store, stories: int, tracker: Tracker = NULL_TRACKER) -> tuple[str, str]:
    """Generate (or find) the built-in corpus for the demo; returns (train ref, val ref)."""
    from datadiet.curate.corpus.op import CorpusConfig, write_corpus

    train, val = write_corpus(
        store, CorpusConfig(stories=stories, val_stories=max(200, stories // 10), seed=0), "demo", tracker=tracker
    )
    return train.dataset.ref, val.dataset.ref


def demo_config(
    train_ref: str, val_ref: str, steps: int | None = None, overrides: tuple[tuple[str, str], ...] = ()
) -> SweepConfig:
    """The demo's miniature grid: tiny preset, a 2,048-token BPE, two seeds."""
    return SweepConfig(
        base=train_ref,
        val=val_ref,
        sizes=DEMO_SIZES,
        rates=DEMO_RATES,
        seeds=DEMO_SEEDS,
        data_seeds=DEMO_DATA_SEEDS,
        preset="tiny",
        steps=steps,
        vocab=2048,
        overrides=overrides,
        name="demo",
    )
