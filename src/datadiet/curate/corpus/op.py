"""The built-in corpus: procedurally generated short children's stories, no download needed.

Stories follow TinyStories in spirit: a named main character and a friend, a place, an object, a
problem, short dialogue in quotes, a resolution and a moral, in five paragraphs joined by "\n"
(120-230 words, mean ~165). Every story is built from word lists and sentence templates with
agreement (he / she / singular they, "a" / "an", past tense), so it is grammatical, and it follows
one fixed arc in which the names, object and place introduced first recur, so a small language
model has real structure to learn (the bigram entropy of the word stream is far below its
unigram entropy).

A share `near_dup_rate` of the stories of each split are near copies of an earlier original story
of the same split (one detail swapped, sometimes a sentence dropped), so deduplication has work to
do on it; `near_duplicate_pairs` returns that truth.

Everything is a pure function of the seed: numpy `SeedSequence` derives one independent stream per
(seed, split, purpose), each story draws from its own `random.Random`, and nothing depends on the
process hash seed. Invoked by `curate corpus --stories N --seed S --name NAME` through the CLI, or
directly::

    from datadiet.curate.corpus.generate import generate_corpus
    from datadiet.curate.corpus.op import CorpusConfig
    train, val = generate_corpus(CorpusConfig(stories=20_000, seed=0))

The package: `op.py` (this: `CorpusConfig` and the two commits, NAME-train and NAME-val),
`words.py` (the word lists), `templates.py` (the sentence templates and problems),
`generate.py` (drawing, rendering and near copies; the pure generator).
"""

from __future__ import annotations

import polars as pl

from datadiet.config import Count, OpenProbability, WholeSeed, schema
from datadiet.curate.corpus.generate import (
    GENERATOR_VERSION,
    RATE_WORDING,
    SEED_WORDING,
    count_wording,
    generate_corpus,
    near_duplicate_pairs,
)
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, TEXT
from datadiet.store import Commit, PartWriter, Store


def _bad_count(name: str) -> dict[str, str]:
    return {"type": count_wording(name, 1), "greater_than_equal": count_wording(name, 1)}


# Each setting's error line (`config.schema`): as `generate_stories` words its own arguments.
_WORDING = {
    "stories": _bad_count("stories"),
    "val_stories": _bad_count("val_stories"),
    "seed": {"type": SEED_WORDING, "greater_than_equal": SEED_WORDING},
    "near_dup_rate": {"type": RATE_WORDING, "value": RATE_WORDING},
}


@schema(wording=_WORDING)
class CorpusConfig:
    """What `generate_corpus` builds.

    Attributes:
        stories: Number of training stories (>= 1).
        val_stories: Number of validation stories; None means max(200, stories // 10).
        seed: Non-negative seed; the same seed gives the same corpus in any process.
        near_dup_rate: Share of each split's stories that are near copies of an earlier story, in [0, 1).
    """

    # Types and bounds are pydantic's; near_dup_rate=0 becomes 0.0, the version id of the CLI's 0.
    stories: Count = 20_000
    val_stories: Count | None = None
    seed: WholeSeed = 0
    near_dup_rate: OpenProbability = 0.03

    @property
    def val_count(self) -> int:
        """The number of validation stories, with the default resolved."""
        return self.val_stories if self.val_stories is not None else max(200, self.stories // 10)


def write_corpus(
    store: Store, cfg: CorpusConfig, name: str, *, tracker: Tracker = NULL_TRACKER
) -> tuple[Commit, Commit]:
    """Generate the corpus and publish it as two datasets, `NAME-train` and `NAME-val`.

    The generator version is part of the parameters, so a change to the templates makes new
    versions instead of silently reusing old ones. Ids are `train:<index>` / `val:<index>`.
    """
    cache: dict[str, list[str]] = {}

    def texts_of(split: str) -> list[str]:
        # Both splits come from one generate_corpus call, made only if some split is not stored yet.
        if not cache:
            cache["train"], cache["val"] = generate_corpus(cfg, tracker=tracker)
        return cache[split]

    commits = []
    for split, count in (("train", cfg.stories), ("val", cfg.val_count)):
        params = {
            "stories": cfg.stories,
            "val_stories": cfg.val_count,
            "seed": cfg.seed,
            "near_dup_rate": cfg.near_dup_rate,
            "split": split,
            "generator_version": GENERATOR_VERSION,
        }

        def build(writer: PartWriter, split: str = split, count: int = count) -> dict[str, object]:
            texts = texts_of(split)
            writer.write(pl.DataFrame({ID: [f"{split}:{i}" for i in range(len(texts))], TEXT: texts}))
            pairs = near_duplicate_pairs(count, cfg.seed, cfg.near_dup_rate, split=split)
            return {"stories": len(texts), "near_duplicates": len(pairs), "generator_version": GENERATOR_VERSION}

        commits.append(
            store.commit(
                f"{name}-{split}", operation="corpus", params=params, parents=["builtin:stories"], build=build
            )
        )
    return commits[0], commits[1]
