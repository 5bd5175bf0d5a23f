"""Model metrics on the fixed validation set, and the original study's two figures beside them.

Used at the end of every training run (`train/pipeline.py`), by `curate eval RUN [--val REF]
[--max-tokens T]` and by the sweep after each run::

    from datadiet.train.metrics import evaluate
    m = evaluate(model, val_tokens, block_size=128, token_bytes=token_byte_lengths(tokenizer))
    m["val_loss"], m["perplexity"], m["accuracy"], m["bits_per_byte"]

Windows: the validation tokens are cut into non-overlapping windows of `block_size` targets (each
window reads `block_size + 1` tokens; consecutive windows share their boundary token, so every
token after the first is predicted exactly once, as in the trainer's own validation). With
`max_tokens`, `max_tokens // block_size` windows are taken evenly spaced over the whole set, so a
capped evaluation is deterministic and still covers the beginning, middle and end.

Definitions (keys are the constants below):

- `val_loss`: mean next-token cross-entropy (nats) over every evaluated token;
- `perplexity`: exp(val_loss);
- `accuracy`: share of evaluated tokens whose arg-max prediction is the target;
- `bits_per_byte` (`bits_per_byte()`, the one definition): the total NLL of exactly the scored
  target tokens / (ln 2 x the UTF-8 bytes of exactly those targets), so it equals
  val_loss x eval_tokens / (ln 2 x eval_bytes); comparable across tokenizers. A token's bytes are
  those of its text (`token_byte_lengths`); the separator `<|endoftext|>` counts as
  SEPARATOR_BYTES = 1 byte, the newline that ends a document in a plain-text corpus (not the 13
  bytes of its name);
- `eval_tokens`, `eval_bytes`: the scored targets and their bytes;
- `study_perplexity`: the original study's perplexity, the mean over batches of exp(batch mean
  loss) (batches as given by `batch_size`, the last one possibly smaller and weighted the same;
  with equal batches it is >= `perplexity` by Jensen's inequality);
- `study_accuracy`: the original study's "accuracy", the mean number of correct tokens per row of
  `block_size` tokens (so 49.0 with 128-token rows means 38% of tokens).
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker

VAL_LOSS = "val_loss"
PERPLEXITY = "perplexity"
ACCURACY = "accuracy"
BITS_PER_BYTE = "bits_per_byte"
STUDY_PERPLEXITY = "study_perplexity"
STUDY_ACCURACY = "study_accuracy"
EVAL_TOKENS = "eval_tokens"
# Tokens per forward pass of `evaluate` (rounded to whole batches): one `paper` training step's worth.
EVAL_PASS_TOKENS = 4096
EVAL_BYTES = "eval_bytes"
# The separator stands for the one byte that ends a document in a plain-text corpus (a newline).
SEPARATOR_BYTES = 1
BPB_CONVENTION = (
    "bits per byte = total NLL of the scored targets / (ln 2 × their UTF-8 bytes); "
    "each <|endoftext|> separator counts as 1 byte"
)
EVAL_WINDOWS = "eval_windows"
METRICS: tuple[str, ...] = (VAL_LOSS, PERPLEXITY, ACCURACY, BITS_PER_BYTE, STUDY_PERPLEXITY, STUDY_ACCURACY)
# The values each metric can take. An interval over few data seeds may reach past them (a t interval over
# 2 seeds of an accuracy went below 0); clipped to these, it covers the truth at least as often.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    VAL_LOSS: (0.0, math.inf),
    PERPLEXITY: (1.0, math.inf),
    ACCURACY: (0.0, 1.0),
    BITS_PER_BYTE: (0.0, math.inf),
    STUDY_PERPLEXITY: (1.0, math.inf),
    STUDY_ACCURACY: (0.0, math.inf),
}


def _exp(x: float) -> float:
    # A diverged model (the study's 100%-duplication runs reach loss ~12) must not crash the report.
    return math.exp(x) if x < 709.0 else math.inf


def eval_windows(n_tokens: int, block_size: int, max_tokens: int | None = None) -> npt.NDArray[np.int64]:
    """Start offsets of the evaluation windows (see the module docstring).

    Args:
        n_tokens: Length of the validation token array.
        block_size: Targets per window.
        max_tokens: Cap on evaluated tokens; None evaluates every window.

    Returns:
        Sorted int64 offsets, multiples of `block_size`.

    Raises:
        UsageError: The tokens do not fill one window, or the cap is below one window.
    """
    if block_size < 1:
        raise UsageError(f"block size must be a positive integer, not {block_size}")
    n_windows = (n_tokens - 1) // block_size
    if n_windows < 1:
        raise UsageError(
            f"validation data has {n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}; "
            "use a larger validation set or a smaller block size"
        )
    if max_tokens is None:
        n_eval = n_windows
    else:
        if max_tokens < block_size:
            raise UsageError(f"--max-tokens {max_tokens} is below one window of {block_size} tokens; raise it")
        n_eval = min(n_windows, max_tokens // block_size)
    picks = np.unique(np.linspace(0, n_windows - 1, n_eval).round().astype(np.int64))
    out: npt.NDArray[np.int64] = picks * block_size
    return out


def bits_per_byte(nll_nats: float, n_bytes: int) -> float | None:
    """Total NLL (nats) of some target tokens over ln 2 × the UTF-8 bytes of exactly those targets."""
    return nll_nats / (math.log(2) * n_bytes) if n_bytes > 0 else None


def token_byte_lengths(tokenizer: Any) -> npt.NDArray[np.int64]:
    """UTF-8 bytes of every token id's text (special tokens: SEPARATOR_BYTES), indexed by id.

    Byte-level BPE (GPT-2's and ours) writes each byte as one character of its 256-symbol alphabet,
    so a token's bytes are its string's length, even for a token that ends inside a multi-byte
    character; for other tokenizers a token's bytes are those of its decoded text.

    Args:
        tokenizer: A `tokenizers.Tokenizer`.
    """
    spec = json.loads(tokenizer.to_str())
    decoder = spec.get("decoder") or {}
    kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders", []) or []}
    byte_level = "ByteLevel" in kinds
    specials = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    out = np.zeros(max(vocab.values(), default=-1) + 1, dtype=np.int64)
    for text, i in vocab.items():
        if text in specials:
            out[i] = SEPARATOR_BYTES
        elif byte_level:
            out[i] = len(text)
        else:
            out[i] = len(tokenizer.decode([i]).encode("utf-8"))
    return out


def eval_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU for evaluation and sampling (nothing on a CPU)."""
    # bf16 on a GPU roughly doubles throughput; the loss itself is computed in fp32 below.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: nn.Module,
    val_tokens: npt.NDArray[Any],
    *,
    block_size: int,
    batch_size: int = 32,
    max_tokens: int | None = None,
    device: str | torch.device = "cpu",
    token_bytes: npt.NDArray[np.int64] | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> dict[str, Any]:
    """Loss, perplexity, accuracy, bits per byte and the study's two figures on the validation tokens.

    Args:
        model: Called as `model(idx)` returning `(logits (B, T, V), loss)`, like `datadiet.train.model.GPT`.
            It is moved to `device` and put in eval mode (its mode is restored afterwards).
        val_tokens: 1-D token ids of the validation set (a memmap is fine).
        block_size: Targets per window (the model's context length).
        batch_size: Windows per forward pass (also the study's "batch" for `study_perplexity`).
        max_tokens: Evaluate at most this many tokens, in evenly spaced windows; None for all.
        device: Where to run.
        token_bytes: UTF-8 bytes of each token id (`token_byte_lengths`); None leaves
            `bits_per_byte` and `eval_bytes` as None.
        tracker: Progress.

    Returns:
        A JSON-ready dict: the `METRICS` keys plus `eval_tokens`, `eval_bytes`, `eval_windows`, `block_size`,
        `batch_size`.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be a positive integer, not {batch_size}")
    tokens = np.asarray(val_tokens)
    if tokens.ndim != 1:
        raise UsageError(f"validation tokens must be a 1-D array, got shape {tokens.shape}")
    if token_bytes is not None and int(tokens.max(initial=0)) >= token_bytes.size:
        raise UsageError(f"token id {int(tokens.max())} is outside the tokenizer's {token_bytes.size} ids")
    dev = torch.device(device)
    starts = eval_windows(tokens.size, block_size, max_tokens)
    offsets = np.arange(block_size + 1)
    was_training = model.training
    model.to(dev)
    model.eval()
    correct, count, n_bytes = 0, 0, 0
    row_loss: list[npt.NDArray[np.float64]] = []
    row_correct: list[npt.NDArray[np.int64]] = []
    # Windows per forward pass: whole study batches making about EVAL_PASS_TOKENS tokens, so a tiny
    # model is not bound by per-call overhead (4x fewer passes for `tiny`; `paper` is unchanged at one
    # batch). The study's per-batch figures are then formed from per-window sums, as before.
    per_pass = batch_size * max(1, EVAL_PASS_TOKENS // (batch_size * block_size))
    try:
        with torch.inference_mode(), tracker.task("Evaluating", total=starts.size) as task:
            for i in range(0, starts.size, per_pass):
                rows = tokens[starts[i : i + per_pass, None] + offsets].astype(np.int64)  # (B, T+1)
                if token_bytes is not None:
                    n_bytes += int(token_bytes[rows[:, 1:]].sum())  # bytes of exactly the scored targets
                data = torch.from_numpy(rows).to(dev)
                x, y = data[:, :-1], data[:, 1:]  # (B, T) each
                with eval_autocast(dev):
                    logits, _ = model(x)  # (B, T, V)
                logits = logits.float()
                losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
                hits = (logits.argmax(dim=-1) == y).sum(dim=1)  # (B,)
                row_loss.append(losses.view(y.shape).sum(dim=1, dtype=torch.float64).cpu().numpy())
                count += losses.numel()
                correct += int(hits.sum())
                row_correct.append(hits.cpu().numpy().astype(np.int64))
                task.advance(rows.shape[0])
    finally:
        model.train(was_training)
    sums = np.concatenate(row_loss)  # (windows,) summed loss of each window
    loss_sum = float(sums.sum())
    batch_ppl = [_exp(float(sums[i : i + batch_size].mean()) / block_size) for i in range(0, sums.size, batch_size)]
    mean_loss = loss_sum / count
    return {
        VAL_LOSS: mean_loss,
        PERPLEXITY: _exp(mean_loss),
        ACCURACY: correct / count,
        BITS_PER_BYTE: bits_per_byte(loss_sum, n_bytes) if token_bytes is not None else None,
        STUDY_PERPLEXITY: float(np.mean(batch_ppl)),
        STUDY_ACCURACY: float(np.concatenate(row_correct).mean()),
        EVAL_TOKENS: count,
        EVAL_BYTES: n_bytes if token_bytes is not None else None,
        EVAL_WINDOWS: int(starts.size),
        "block_size": block_size,
        "batch_size": batch_size,
    }
