"""Samples from a trained model, and how original they are: distinct-n and verbatim memorisation.

Used by `curate eval RUN --samples N`::

    from datadiet.eval.generations import sample_generations
    out = sample_generations(model, tokenizer, n=8, max_new_tokens=128, seed=0, train_texts=texts)
    out["distinct_1"], out["distinct_2"], out["memorised_8gram_share"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import torch
from torch import nn

from datadiet.errors import UsageError
from datadiet.schema import EOT
from datadiet.train.metrics import eval_autocast

DISTINCT_1 = "distinct_1"
DISTINCT_2 = "distinct_2"
MEMORISED_8GRAM_SHARE = "memorised_8gram_share"
MEMORISATION_NGRAM = 8


def _word_ngrams(texts: Sequence[str], n: int) -> npt.NDArray[np.uint64]:
    # The same vectorised word hashing as the dataset statistics, so 8-grams match across the two.
    from datadiet.eval.stats.compute import BLOCK_DOCS, ngram_hashes

    parts = [
        ngram_hashes(pl.Series(list(texts[s : s + BLOCK_DOCS]), dtype=pl.String), n)
        for s in range(0, len(texts), BLOCK_DOCS)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _distinct(hashes: npt.NDArray[np.uint64]) -> float | None:
    return np.unique(hashes).size / hashes.size if hashes.size else None


def sample_generations(
    model: nn.Module,
    tokenizer: Any,
    n: int,
    max_new_tokens: int,
    seed: int,
    train_texts: Sequence[str],
    *,
    block_size: int | None = None,
    temperature: float = 1.0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Sample `n` continuations of the end-of-text token and measure their diversity and copying.

    Args:
        model: As for `evaluate`.
        tokenizer: A `tokenizers.Tokenizer` with the `<|endoftext|>` token.
        n: Samples.
        max_new_tokens: Tokens generated per sample.
        seed: Seeds the sampling generator (the same seed gives the same samples on one device).
        train_texts: The run's training documents (for the memorisation share).
        block_size: Longest context fed to the model; default `model.cfg.block_size`.
        temperature: Softmax temperature (> 0).
        device: Where to run.

    Returns:
        `distinct_1` / `distinct_2` (distinct word 1- / 2-grams over all samples / their count),
        `memorised_8gram_share` (generated word 8-grams found verbatim in the training documents;
        None when the samples have no 8-gram), and the `samples` themselves.
    """
    if n < 1 or max_new_tokens < 1:
        raise UsageError(f"need at least one sample and one new token, got n={n}, max_new_tokens={max_new_tokens}")
    if not temperature > 0:
        raise UsageError(f"temperature must be positive, not {temperature}")
    cfg = getattr(model, "cfg", None)
    context = block_size or getattr(cfg, "block_size", None)
    if context is None:
        raise UsageError("pass block_size: the model has no cfg.block_size")
    eot = tokenizer.token_to_id(EOT)
    if eot is None:
        raise UsageError(f"the tokenizer has no {EOT} token; use one trained by `curate tokenizer train`")
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    was_training = model.training
    model.to(dev)
    model.eval()
    idx = torch.full((n, 1), eot, dtype=torch.long, device=dev)
    try:
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                with eval_autocast(dev):
                    logits, _ = model(idx[:, -context:])
                probs = torch.softmax(logits[:, -1, :].float() / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=gen)
                idx = torch.cat([idx, nxt], dim=1)
    finally:
        model.train(was_training)
    samples = [tokenizer.decode(row[1:]) for row in idx.cpu().tolist()]
    ones = _word_ngrams(samples, 1)
    twos = _word_ngrams(samples, 2)
    gen8 = _word_ngrams(samples, MEMORISATION_NGRAM)
    train8 = _word_ngrams(train_texts, MEMORISATION_NGRAM) if gen8.size else np.zeros(0, dtype=np.uint64)
    return {
        DISTINCT_1: _distinct(ones),
        DISTINCT_2: _distinct(twos),
        MEMORISED_8GRAM_SHARE: float(np.isin(gen8, train8).mean()) if gen8.size else None,
        "samples": samples,
    }
