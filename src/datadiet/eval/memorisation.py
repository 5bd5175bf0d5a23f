"""The memorisation probe: does a run reproduce its training documents? `curate eval RUN --memorisation`.

Extraction by prompting (Carlini et al. 2022): give the model the first P tokens of a document
(after the end-of-text token every training document follows) and decode the next S tokens
greedily; the document counts as memorised when all S match the document exactly. Three classes
of documents are probed, at most N of each, drawn with a seed from those with at least P + S
tokens:

* `repeated`: training documents that appear more than once in the run's training data (rows
  sharing a `source_id`: the copies `curate duplicate` labels, or mixed-in documents used twice);
* `unique`: training documents that appear once;
* `validation`: documents of the run's validation set, never trained on (the baseline rate).

Per class: the exact-continuation rate with a Clopper–Pearson 95% interval, the mean share of the S tokens
matched position by position, and the mean next-token loss over the P + S tokens of the window.
For the repeated class the rates are also broken down by how many times a document appears.

Deterministic: greedy decoding (`datadiet.train.generate`, batched by `MAX_BATCH`), a seeded
sample, no dropout. Bounded: at most N documents per class are tokenised and decoded.

    result = probe(model, {"repeated": [...], "unique": [...], "validation": [...]}, ProbeConfig(), eos_id=0)
    commit = memorisation_version(store, "ts@3fa2", ProbeConfig(docs_per_class=100))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datadiet.errors import UsageError, whole_number
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import SOURCE_ID, TEXT

if TYPE_CHECKING:
    import polars as pl
    import torch

    from datadiet.store import Commit, Store
    from datadiet.train.model import GPT

OPERATION = "memorisation"
MEMORISATION_FILE = "memorisation.json"
CLASSES = ("repeated", "unique", "validation")
# Prompts decoded in one greedy batch (the generator's own cap; every prompt has P + 1 tokens).
BATCH = 64
# Documents are tokenised in rounds of this many candidates until N eligible ones are found, so a
# class of 2M documents costs a few hundred encodings, not 2M.
ENCODE_ROUND = 256


@dataclass(frozen=True)
class ProbeConfig:
    """How the probe prompts and how many documents it takes.

    Attributes:
        prefix_tokens: P, the tokens of the document given as the prompt.
        suffix_tokens: S, the tokens that must follow exactly.
        docs_per_class: N, the most documents probed per class.
        seed: Seed of the sample of documents.
    """

    prefix_tokens: int = 32
    suffix_tokens: int = 32
    docs_per_class: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for option, value, low in (
            ("--prefix-tokens", self.prefix_tokens, 1),
            ("--suffix-tokens", self.suffix_tokens, 1),
            ("--docs-per-class", self.docs_per_class, 1),
            ("--seed", self.seed, 0),
        ):
            if whole_number(value, option) < low or value > 1_000_000:
                raise UsageError(f"{option} must be between {low} and 1000000, not {value}")


def binomial_interval(hits: int, n: int) -> tuple[float, float] | None:
    """Clopper–Pearson 95% interval for a binomial share (None for n = 0).

    Exact: its coverage is at least 95% for every n and rate (Wilson's dips to ~93% at n = 20,
    p = 0.05, which the probe's small classes reach), at the price of being a little wide.
    """
    from scipy.stats import beta

    if n == 0:
        return None
    lo = 0.0 if hits == 0 else float(beta.ppf(0.025, hits, n - hits + 1))
    hi = 1.0 if hits == n else float(beta.ppf(0.975, hits + 1, n - hits))
    return lo, hi


def _window_losses(model: GPT, windows: np.ndarray, device: torch.device) -> np.ndarray:
    """(n,) mean next-token loss of each row of WINDOWS (n, P+S+1): inputs are all but the last token."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for lo in range(0, len(windows), BATCH):
            idx = torch.as_tensor(windows[lo : lo + BATCH], dtype=torch.long, device=device)
            logits, _ = model(idx[:, :-1])
            ce = F.cross_entropy(logits.float().transpose(1, 2), idx[:, 1:], reduction="none")  # (B, T)
            out.append(ce.mean(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def probe(
    model: GPT,
    docs: Mapping[str, Sequence[Sequence[int]]],
    cfg: ProbeConfig,
    *,
    eos_id: int,
    counts: Mapping[str, Sequence[int]] | None = None,
    device: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> dict[str, Any]:
    """Probe MODEL with the documents of each class (token ids without the leading end-of-text).

    Args:
        model: The GPT; `prefix_tokens + suffix_tokens` must fit its context.
        docs: Class name -> documents of at least P + S tokens (longer ones are cut).
        cfg: P, S (N is applied by the caller).
        eos_id: The end-of-text id put before each document, as in training.
        counts: Class name -> how often each document appears in training (for the breakdown).
        device: Where to run (default: where the weights are).
        tracker: Progress, one step per document.

    Returns:
        Per class: docs, exact (count), exact_rate, exact_rate_ci95, token_match, mean_loss, and
        for classes with counts a `by_count` list.

    Raises:
        UsageError: P + S does not fit the model's context.
    """
    import torch

    from datadiet.train.generate import SampleConfig, generate

    p, s = cfg.prefix_tokens, cfg.suffix_tokens
    if p + s > model.cfg.block_size:
        raise UsageError(
            f"--prefix-tokens {p} + --suffix-tokens {s} is more than the model's context of "
            f"{model.cfg.block_size} tokens; lower them"
        )
    for name, rows in docs.items():
        short = [len(r) for r in rows if len(r) < p + s]
        if short:
            raise UsageError(f"a {name} document has {short[0]} tokens, fewer than P + S = {p + s}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    greedy = SampleConfig(max_new_tokens=s, temperature=0)
    result: dict[str, Any] = {}
    total = sum(len(v) for v in docs.values())
    with tracker.task(f"Memorisation probe ({total} documents)", total=total) as task:
        for name, rows in docs.items():
            windows = np.array([[eos_id, *list(r)[: p + s]] for r in rows], dtype=np.int64).reshape(
                len(rows), p + s + 1
            )
            matches = np.zeros((len(rows), s), dtype=bool)
            for lo in range(0, len(rows), BATCH):
                chunk = windows[lo : lo + BATCH]
                out = generate(model, chunk[:, : p + 1].tolist(), greedy, eos_id=None, device=dev)
                matches[lo : lo + len(chunk)] = (
                    np.array(out, dtype=np.int64).reshape(len(chunk), s) == chunk[:, p + 1 :]
                )
                task.advance(len(chunk))
            losses = _window_losses(model, windows, dev)
            result[name] = _summary(matches, losses, counts.get(name) if counts else None)
    return result


def _summary(matches: np.ndarray, losses: np.ndarray, counts: Sequence[int] | None) -> dict[str, Any]:
    exact = np.asarray(matches.all(axis=1), dtype=bool)
    n = len(matches)
    out: dict[str, Any] = {
        "docs": n,
        "exact": int(exact.sum()),
        "exact_rate": float(exact.mean()) if n else None,
        "exact_rate_ci95": binomial_interval(int(exact.sum()), n),
        "token_match": float(matches.mean()) if n else None,
        "mean_loss": float(losses.mean()) if n else None,
    }
    if counts is not None and n:
        c = np.asarray(counts, dtype=np.int64)
        out["mean_count"] = float(c.mean())
        out["by_count"] = [
            {"count": int(k), "docs": int((c == k).sum()), "exact_rate": float(exact[c == k].mean())}
            for k in np.unique(c)
        ]
    return out


def sample_documents(
    texts: pl.Series, encode: Any, cfg: ProbeConfig, stream: int
) -> tuple[list[list[int]], list[int], int]:
    """Up to N documents of TEXTS with at least P + S tokens, in a seeded random order.

    Args:
        texts: The candidates.
        encode: texts -> token id lists (the run's tokenizer, without the end-of-text token).
        cfg: P, S, N and the seed.
        stream: Which class (a separate seeded order per class).

    Returns:
        The chosen documents' tokens, their positions in TEXTS, and how many candidates were tokenised.
    """
    order = np.random.default_rng([cfg.seed, stream]).permutation(texts.len())
    need = cfg.prefix_tokens + cfg.suffix_tokens
    chosen: list[list[int]] = []
    where: list[int] = []
    seen = 0
    for lo in range(0, len(order), ENCODE_ROUND):
        batch = order[lo : lo + ENCODE_ROUND]
        seen += len(batch)
        for pos, ids in zip(batch.tolist(), encode(texts.gather(batch).to_list()), strict=True):
            if len(ids) >= need:
                chosen.append(ids[:need])
                where.append(pos)
                if len(chosen) == cfg.docs_per_class:
                    return chosen, where, seen
    return chosen, where, seen


def training_classes(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The distinct documents of a training set that appear more than once, and those that appear once.

    A document is its `source_id` (copies share their source's); its text is that of its first
    row. Each frame has `text` and `count` (rows of the training set with that source).
    """
    import polars as pl

    grouped = frame.group_by(SOURCE_ID, maintain_order=True).agg(
        pl.col(TEXT).first().alias(TEXT), pl.len().alias("count")
    )
    return grouped.filter(pl.col("count") > 1), grouped.filter(pl.col("count") == 1)


def memorisation_version(
    store: Store,
    run_ref: str,
    cfg: ProbeConfig,
    *,
    val_ref: str | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> Commit:
    """Probe run RUN_REF and keep the result as an `evals` version (operation "memorisation").

    Parents: the run, its training dataset and the validation dataset (the run's own by default),
    so the probe is computed once per (run, data, P, S, N, seed).
    """
    from datadiet.train.generate import load_run_model

    run = store.resolve(run_ref, "runs")
    train = store.resolve(run.manifest.parents[0])
    val = store.resolve(val_ref or run.manifest.parents[1])

    def build(writer: Any) -> dict[str, Any]:
        rm = load_run_model(store, run.ref)

        def encode(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in rm.tokenizer.encode_batch(texts, add_special_tokens=False)]

        with tracker.task(f"Choosing documents of {train.ref}", total=None):
            repeated, unique = training_classes(train.read())
            val_texts = val.read().get_column(TEXT)
        docs, counts, eligible = {}, {}, {}
        for stream, (name, texts) in enumerate(
            (("repeated", repeated[TEXT]), ("unique", unique[TEXT]), ("validation", val_texts))
        ):
            docs[name], where, eligible[name] = sample_documents(texts, encode, cfg, stream)
            if name == "repeated":
                counts[name] = repeated["count"].gather(where).to_list()
        result = probe(rm.model, docs, cfg, eos_id=rm.eos_id, counts=counts, tracker=tracker)
        sizes = {"repeated": repeated.height, "unique": unique.height, "validation": val_texts.len()}
        for name in CLASSES:
            result[name]["class_size"] = sizes[name]
            result[name]["tokenised"] = eligible[name]
        out = {"run": run.ref, "train": train.ref, "val": val.ref, "config": asdict(cfg), "classes": result}
        writer.write_file(MEMORISATION_FILE, json.dumps(out, indent=2).encode())
        return out

    return store.commit(
        run.name,
        operation=OPERATION,
        params=asdict(cfg),
        parents=[run.ref, train.ref, val.ref],
        build=build,
        kind="evals",
    )
