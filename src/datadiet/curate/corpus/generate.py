"""The built-in corpus's generator: one story's slots drawn from its own `random.Random`, rendered
through the templates, near copies that replay their source's draws, and the streams per
(seed, split, purpose) that make every corpus a pure function of its seed.

    train, val = generate_corpus(CorpusConfig(stories=20_000, seed=0))
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from datadiet.curate.corpus.op import CorpusConfig
from datadiet.curate.corpus.templates import (
    _PARAGRAPH_1,
    _PARAGRAPH_2,
    _PARAGRAPH_5,
    _PROBLEMS,
)
from datadiet.curate.corpus.words import (
    _KIND_CHILD,
    _NAMES,
    _PRONOUNS,
    ACTIVITIES,
    ANIMAL_DOINGS,
    ANIMAL_PARTS,
    ANIMALS,
    BAD_FEELINGS,
    CHARACTER_ADJECTIVES,
    ENDINGS,
    EXCLAIMS,
    FAMILY,
    FIX_TOOLS,
    FOODS,
    GOOD_FEELINGS,
    HELPERS,
    HOMES,
    OBJECT_ADJECTIVES,
    OBJECTS,
    PLACES,
    SCARED_FEELINGS,
    SKY_COLORS,
    SMALL_ANIMALS,
    SOUND_CAUSES,
    SOUNDS,
    SPOTS,
    TALL_THINGS,
    TIMES,
    WEATHER,
    _a,
)
from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker

# Bump when any word list, template or draw order changes: the same (seed, sizes) then give other
# text, so callers put this in the store operation's parameters to keep version ids honest.
GENERATOR_VERSION = 1


TRAIN_SPLIT = 0


VAL_SPLIT = 1


_STORY_STREAM = 0


_DUP_STREAM = 1


_REPLACEMENT_STREAM = 2


# Progress is reported in chunks: one tracker call per story would cost ~2% at 20k stories/s.
_PROGRESS_CHUNK = 1_000


_Story = list[list[str]]


def count_wording(name: str, minimum: int) -> str:
    """The error line of a bad count NAME (`{value}` to fill in): the functions' and `CorpusConfig`'s."""
    return f"{name} must be an integer >= {minimum}, got {{value!r}}; pass e.g. {name}=1000"


SEED_WORDING = "seed must be a non-negative integer, got {value!r}; pass e.g. seed=0"
RATE_WORDING = "near_dup_rate must be a number in [0, 1), got {value!r}; pass e.g. near_dup_rate=0.03"


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(count_wording(name, minimum).format(value=value))


def _check_seed(seed: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(SEED_WORDING.format(value=seed))


def _check_rate(rate: object) -> None:
    if (
        not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not math.isfinite(rate)
        or not 0.0 <= rate < 1.0
    ):
        raise UsageError(RATE_WORDING.format(value=rate))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _draw_slots(rng: random.Random) -> dict[str, str]:
    """Draw every detail of one story (names, object, place, problem) from `rng`.

    A near copy replays its source's draws exactly, overrides one slot, and then renders with
    the same continuing stream; `_render` draws the same number of times whatever the slots hold.
    The draws happen in a fixed order (cast, then scene, then details): changing it changes every
    story, which needs a new GENERATOR_VERSION.
    """
    r = rng.random

    def pick(seq: Sequence[str]) -> str:
        return seq[int(r() * len(seq))]

    cast = _draw_cast(r, pick)
    scene = _draw_scene(r, pick)
    details = _draw_details(r, pick)
    slots = cast | scene | details
    return {key: slots[key] for key in _SLOT_ORDER}


_Pick = Callable[[Sequence[str]], str]


def _draw_cast(r: Callable[[], float], pick: _Pick) -> dict[str, str]:
    """The main character and the friend (names, pronouns, kinds, adjectives) and their activities."""
    g = "fmn"[int(r() * 2.1)]  # 5% singular "they"
    fg = "fmn"[int(r() * 2.1)]
    names = _NAMES[g]
    main = names[int(r() * len(names))]
    fnames = _NAMES[fg]
    friend = fnames[int(r() * len(fnames))]
    while friend == main:
        friend = fnames[int(r() * len(fnames))]
    pro = _PRONOUNS[g]
    fpro = _PRONOUNS[fg]
    kind = pick(_KIND_CHILD[g]) if r() < 0.75 else pick(ANIMALS)
    fkind = pick(_KIND_CHILD[fg]) if r() < 0.6 else pick(ANIMALS)
    cadj = pick(CHARACTER_ADJECTIVES)
    fadj = pick(CHARACTER_ADJECTIVES)
    act, act_past = ACTIVITIES[int(r() * len(ACTIVITIES))]
    act2 = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    while act2 == act:
        act2 = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    fact = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    return {
        "N": main,
        "s": pro[0],
        "S": pro[1],
        "o": pro[2],
        "p": pro[3],
        "P": pro[4],
        "x": pro[5],
        "was": pro[6],
        "is": pro[7],
        "F": friend,
        "fs": fpro[0],
        "fS": fpro[1],
        "fo": fpro[2],
        "fp": fpro[3],
        "fx": fpro[5],
        "fwas": fpro[6],
        "kind": kind,
        "fkind": fkind,
        "cadj": cadj,
        "fadj": fadj,
        "act": act,
        "act_past": act_past,
        "act2": act2,
        "fact": fact,
    }


def _draw_scene(r: Callable[[], float], pick: _Pick) -> dict[str, str]:
    """The object, the place, the helper, the small animal, the noise's cause, the time and the weather."""
    obj = pick(OBJECTS)
    oadj = pick(OBJECT_ADJECTIVES)
    place, prep, desc = PLACES[int(r() * len(PLACES))]
    h, haddr, hg = HELPERS[int(r() * len(HELPERS))]
    small = pick(SMALL_ANIMALS)
    cause, cause2 = SOUND_CAUSES[int(r() * len(SOUND_CAUSES))]
    time = pick(TIMES)
    weather = pick(WEATHER)
    return {
        "obj": obj,
        "oadj": oadj,
        "place": place,
        "prep": prep,
        "desc": desc,
        "h": h,
        "H": haddr,
        "hs": _PRONOUNS[hg][0],
        "small": small,
        "cause": cause,
        "cause2": cause2,
        "time": time,
        "weather": weather,
    }


def _draw_details(r: Callable[[], float], pick: _Pick) -> dict[str, str]:
    """The remaining details, drawn in this order, and the problem the story turns on."""
    return {
        "home": pick(HOMES),
        "fam": pick(FAMILY),
        "spot": pick(SPOTS),
        "spot2": pick(SPOTS),
        "spot3": pick(SPOTS),
        "tall": pick(TALL_THINGS),
        "critter": pick(ANIMALS),
        "critter_doing": pick(ANIMAL_DOINGS),
        "part": pick(ANIMAL_PARTS),
        "sound": pick(SOUNDS),
        "sky": pick(SKY_COLORS),
        "bad": pick(BAD_FEELINGS),
        "good": pick(GOOD_FEELINGS),
        "scared": pick(SCARED_FEELINGS),
        "food": pick(FOODS),
        "tool": pick(FIX_TOOLS),
        "excl": pick(EXCLAIMS),
        "ending": pick(ENDINGS),
        "problem": str(int(r() * len(_PROBLEMS))),
    }


# The slots in the order the story's dict has always held them (cast, scene and details interleaved).
_SLOT_ORDER = [
    "N",
    "s",
    "S",
    "o",
    "p",
    "P",
    "x",
    "was",
    "is",
    "F",
    "fs",
    "fS",
    "fo",
    "fp",
    "fx",
    "fwas",
    "kind",
    "fkind",
    "cadj",
    "fadj",
    "home",
    "fam",
    "act",
    "act_past",
    "act2",
    "fact",
    "obj",
    "oadj",
    "place",
    "prep",
    "desc",
    "spot",
    "spot2",
    "spot3",
    "tall",
    "h",
    "H",
    "hs",
    "small",
    "critter",
    "critter_doing",
    "part",
    "cause",
    "cause2",
    "sound",
    "time",
    "weather",
    "sky",
    "bad",
    "good",
    "scared",
    "food",
    "tool",
    "excl",
    "ending",
    "problem",
]


def _derive(slots: dict[str, str]) -> None:
    """Fill the slots computed from others (articles, capitals), after any near-copy override."""
    slots["a_cadj"] = _a(slots["cadj"])
    slots["a_fadj"] = _a(slots["fadj"])
    ao = slots["oadj"] + " " + slots["obj"]
    slots["ao"] = _a(ao) + " " + ao
    slots["a_small"] = _a(slots["small"])
    slots["a_critter"] = _a(slots["critter"])
    slots["a_critter_cap"] = _cap(slots["a_critter"])
    slots["a_time"] = _a(slots["time"])
    slots["a_weather"] = _a(slots["weather"])
    slots["prep_cap"] = _cap(slots["prep"])
    slots["H_cap"] = _cap(slots["H"])


def _render(slots: dict[str, str], rng: random.Random) -> _Story:
    """Turn drawn slots into paragraphs of filled-in units, choosing template variants from `rng`."""
    r = rng.random

    def pick(seq: Sequence[str]) -> str:
        return seq[int(r() * len(seq))]

    problem, resolution, morals = _PROBLEMS[int(slots["problem"])]
    slots["moral"] = pick(morals).format_map(slots)

    def para(stages: Sequence[Sequence[str]]) -> list[str]:
        out = []
        for variants in stages:
            template = variants[int(r() * len(variants))]
            if template:
                out.append(template.format_map(slots))
        return out

    return [para(_PARAGRAPH_1), para(_PARAGRAPH_2), para(problem), para(resolution), para(_PARAGRAPH_5)]


def _join(story: _Story) -> str:
    return "\n".join(" ".join(units) for units in story)


# Near copies change one detail; each entry is (slot, the list its new value comes from). The
# friend's name appears 3-8 times, so swapping it edits up to ~40 of ~160 five-word shingles; the
# other slots appear 1-3 times, leaving room for a dropped sentence as well. Measured over 3 x 90
# copies: 5-gram Jaccard to the source 0.55-0.98, mean 0.88, against ~0.01 for unrelated stories.
_FRIEND_SLOT = "F"


_TWEAKS: tuple[tuple[str, Sequence[str]], ...] = (
    ("oadj", OBJECT_ADJECTIVES),
    ("time", TIMES),
    ("weather", WEATHER),
    ("food", FOODS),
    ("spot", SPOTS),
    ("good", GOOD_FEELINGS),
    ("bad", BAD_FEELINGS),
    ("cadj", CHARACTER_ADJECTIVES),
    ("home", HOMES),
    ("fam", FAMILY),
    (_FRIEND_SLOT, ()),
)


def _near_copy(source_seed: int, copy_seed: int) -> str:
    """A near copy of the story drawn from `source_seed`: one detail swapped, maybe a unit dropped.

    Some slots do not appear in every story (the weather only shows in one of the optional
    details), so tweaks are tried in a random order until the text really changes.
    """
    rng = random.Random(source_seed)
    drawn = _draw_slots(rng)
    state = rng.getstate()
    slots = dict(drawn)
    _derive(slots)
    source = _join(_render(slots, rng))
    edit = random.Random(copy_seed)
    for k in edit.sample(range(len(_TWEAKS)), len(_TWEAKS)):
        slot, pool = _TWEAKS[k]
        if slot == _FRIEND_SLOT:
            # A same-gender name keeps every friend pronoun right.
            pool = next(names for names in _NAMES.values() if drawn[slot] in names)
        new = pool[edit.randrange(len(pool))]
        while new in (drawn[slot], drawn["N"]):
            new = pool[edit.randrange(len(pool))]
        slots = dict(drawn)
        slots[slot] = new
        _derive(slots)
        rng.setstate(state)
        story = _render(slots, rng)
        if _join(story) != source:
            break
    if slot != _FRIEND_SLOT and edit.random() < 0.5:
        # Drop one unit, never a paragraph's first: that keeps the introduction of every name.
        candidates = [(i, j) for i, units in enumerate(story) for j in range(1, len(units))]
        i, j = candidates[edit.randrange(len(candidates))]
        del story[i][j]
    return _join(story)


def _stream(seed: int, split: int, purpose: int) -> random.Random:
    """An independent `random.Random` for (seed, split, purpose), stable across processes."""
    state = np.random.SeedSequence([seed, split, purpose]).generate_state(4, np.uint32)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


def _story_seeds(n: int, seed: int, split: int) -> list[int]:
    rng = _stream(seed, split, _STORY_STREAM)
    return [rng.getrandbits(64) for _ in range(n)]


def _pairs_for(n: int, seed: int, rate: float, split: int) -> list[tuple[int, int]]:
    # round(), not a Bernoulli draw per story: the realised rate is then exact (to 1/n), so
    # tests and dedup recall can rely on it; a copy's source is always an earlier original.
    k = min(max(n - 1, 0), round(rate * n))
    if k == 0:
        return []
    rng = _stream(seed, split, _DUP_STREAM)
    copies = sorted(rng.sample(range(1, n), k))
    copy_set = set(copies)
    originals = [i for i in range(n) if i not in copy_set]
    return [(c, originals[rng.randrange(bisect_left(originals, c))]) for c in copies]


def _generate(n: int, seed: int, rate: float, split: int, tracker: Tracker) -> list[str]:
    seeds = _story_seeds(n, seed, split)
    copy_of = dict(_pairs_for(n, seed, rate, split))
    out: list[str] = []
    with tracker.task("Generating stories", total=n) as task:
        for i, story_seed in enumerate(seeds):
            src = copy_of.get(i)
            if src is None:
                rng = random.Random(story_seed)
                slots = _draw_slots(rng)
                _derive(slots)
                out.append(_join(_render(slots, rng)))
            else:
                out.append(_near_copy(seeds[src], story_seed))
            if (i + 1) % _PROGRESS_CHUNK == 0:
                task.advance(_PROGRESS_CHUNK)
        task.advance(n % _PROGRESS_CHUNK)
    return out


def generate_stories(n: int, seed: int, near_dup_rate: float = 0.03, *, tracker: Tracker = NULL_TRACKER) -> list[str]:
    """Generate `n` training-stream stories for `seed`.

    The same arguments give the same list in any process. The result equals the train split of
    `generate_corpus(CorpusConfig(stories=n, seed=seed, near_dup_rate=near_dup_rate))`.

    Args:
        n: Number of stories (>= 0).
        seed: Non-negative seed.
        near_dup_rate: Share of stories that are near copies of an earlier story, in [0, 1); which
            ones is given by `near_duplicate_pairs(n, seed, near_dup_rate)`.
        tracker: Progress reporting.

    Returns:
        The stories; paragraphs within a story are separated by "\\n".

    Raises:
        UsageError: If an argument is out of range.
    """
    _check_count("n", n, minimum=0)
    _check_seed(seed)
    _check_rate(near_dup_rate)
    return _generate(n, seed, near_dup_rate, TRAIN_SPLIT, tracker)


def near_duplicate_pairs(n: int, seed: int, near_dup_rate: float, *, split: str = "train") -> list[tuple[int, int]]:
    """Which stories of `generate_stories(n, seed, near_dup_rate)` are near copies, and of what.

    Args:
        n: Number of stories, as passed to `generate_stories`.
        seed: The seed, as passed to `generate_stories`.
        near_dup_rate: The rate, as passed to `generate_stories`.
        split: "train" (the default; `generate_stories` and the train split of `generate_corpus`)
            or "val" (the validation split of `generate_corpus`, with n its `val_count`).

    Returns:
        (copy index, source index) pairs sorted by copy index; exactly round(near_dup_rate * n)
        of them (at most n - 1), every source an earlier story that is itself not a copy.

    Raises:
        UsageError: If an argument is out of range.
    """
    _check_count("n", n, minimum=0)
    _check_seed(seed)
    _check_rate(near_dup_rate)
    splits = {"train": TRAIN_SPLIT, "val": VAL_SPLIT}
    if split not in splits:
        raise UsageError(f"split must be 'train' or 'val', got {split!r}")
    return _pairs_for(n, seed, near_dup_rate, splits[split])


def generate_corpus(cfg: CorpusConfig, *, tracker: Tracker = NULL_TRACKER) -> tuple[list[str], list[str]]:
    """Generate the train and validation splits described by `cfg`.

    The splits come from independent streams of the seed, each with its own near copies (see
    `near_duplicate_pairs(..., split=...)`), and share no story text: a validation story that
    happens to equal a training story (never seen in practice; the space of stories is > 10^40)
    is replaced by a fresh one from a third stream.

    Args:
        cfg: Sizes, seed and near-duplicate rate.
        tracker: Progress reporting.

    Returns:
        (train, val) lists of stories.
    """
    train = _generate(cfg.stories, cfg.seed, cfg.near_dup_rate, TRAIN_SPLIT, tracker)
    val = _generate(cfg.val_count, cfg.seed, cfg.near_dup_rate, VAL_SPLIT, tracker)
    seen = set(train)
    spare: random.Random | None = None
    for i, text in enumerate(val):
        while text in seen:
            spare = spare or _stream(cfg.seed, VAL_SPLIT, _REPLACEMENT_STREAM)
            rng = random.Random(spare.getrandbits(64))
            slots = _draw_slots(rng)
            _derive(slots)
            text = _join(_render(slots, rng))
        val[i] = text
    return train, val
