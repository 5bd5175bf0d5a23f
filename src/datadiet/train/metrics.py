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
from collections.abc import Callable, Iterator, Sequence
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
# The precision the evaluation ran in, and the |loss difference| (nats) against float32 measured on its
# first pass when it was asked to run in a lower one (None otherwise).
EVAL_DTYPE = "eval_dtype"
EVAL_PRECISION_GAP = "eval_precision_gap"
# A lower evaluation precision (the run's bf16 training precision) is kept only where its loss matches
# float32's to this many nats on the first pass; the rest of that model's evaluation then runs in it.
EVAL_PRECISION_TOL = 1e-4
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
    """bf16 autocast on a GPU for sampling (nothing on a CPU); evaluation uses `evaluate`'s checked `amp`."""
    # bf16 on a GPU roughly doubles throughput; the loss itself is computed in fp32 below.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to DTYPE on DEVICE, or nothing for None (float32)."""
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# x (E, B, T) and an autocast dtype (None: float32) -> each member's logits (B, T, V) in float32, in order.
LogitsFn = Callable[[torch.Tensor, "torch.dtype | None"], Iterator[torch.Tensor]]


def evaluate(
    model: nn.Module,
    val_tokens: npt.NDArray[Any],
    *,
    block_size: int,
    batch_size: int = 32,
    max_tokens: int | None = None,
    device: str | torch.device = "cpu",
    token_bytes: npt.NDArray[np.int64] | None = None,
    amp: torch.dtype | None = None,
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
        amp: Evaluate under autocast to this dtype (e.g. the run's training precision), kept only if the
            first pass's loss matches float32's to EVAL_PRECISION_TOL nats (see `evaluate_members`).
        tracker: Progress.

    Returns:
        A JSON-ready dict: the `METRICS` keys plus `eval_tokens`, `eval_bytes`, `eval_windows`, `block_size`,
        `batch_size`, `eval_dtype` and `eval_precision_gap`.
    """
    dev = torch.device(device)
    was_training = model.training
    model.to(dev)
    model.eval()

    def logits(x: torch.Tensor, dtype: torch.dtype | None) -> Iterator[torch.Tensor]:
        with autocast(dev, dtype):
            out, _ = model(x[0])
        yield out.float()

    try:
        return evaluate_members(
            logits,
            [val_tokens],
            block_size=block_size,
            batch_size=batch_size,
            max_tokens=max_tokens,
            device=dev,
            token_bytes=token_bytes,
            amp=amp,
            tracker=tracker,
        )[0]
    finally:
        model.train(was_training)


def evaluate_members(
    logits: LogitsFn,
    val_tokens: Sequence[npt.NDArray[Any]],
    *,
    block_size: int,
    batch_size: int = 32,
    max_tokens: int | None = None,
    device: torch.device,
    token_bytes: npt.NDArray[np.int64] | None = None,
    amp: torch.dtype | None = None,
    tracker: Tracker = NULL_TRACKER,
) -> list[dict[str, Any]]:
    """`evaluate` for E models at once: one forward pass (LOGITS) per batch of windows for all of them.

    Member e is scored on its own `val_tokens[e]`; every member's set must give the same number of
    windows. Each member's metrics are computed exactly as `evaluate` computes one model's (same windows,
    same per-window sums), so they differ from a solo evaluation only by the forward pass's float rounding.

    Precision: with AMP, the first pass runs both under autocast and in float32; a member whose mean loss
    on it differs by more than EVAL_PRECISION_TOL nats is evaluated in float32 throughout (recorded as
    `eval_dtype`, with the measured `eval_precision_gap`), so a lower precision is used only where it
    was seen to match.

    Raises:
        UsageError: Bad token arrays, a bad batch size, or members whose sets differ in windows.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be a positive integer, not {batch_size}")
    arrays = [_check_tokens(t, token_bytes) for t in val_tokens]
    starts = [eval_windows(t.size, block_size, max_tokens) for t in arrays]
    if len({s.size for s in starts}) != 1:
        raise UsageError("models evaluated together need validation sets with the same number of windows")
    n = starts[0].size
    offsets = np.arange(block_size + 1)
    scores = [_Scores(token_bytes) for _ in arrays]
    # Windows per forward pass: whole study batches making about EVAL_PASS_TOKENS tokens, so a tiny
    # model is not bound by per-call overhead (4x fewer passes for `tiny`; `paper` is unchanged at one
    # batch). The study's per-batch figures are then formed from per-window sums, as before.
    per_pass = batch_size * max(1, EVAL_PASS_TOKENS // (batch_size * block_size))
    dtypes: list[torch.dtype | None] = [None] * len(arrays)
    with torch.inference_mode(), tracker.task("Evaluating", total=n) as task:
        for i in range(0, n, per_pass):
            rows = np.stack(
                [t[s[i : i + per_pass, None] + offsets].astype(np.int64) for t, s in zip(arrays, starts, strict=True)]
            )
            data = torch.from_numpy(rows).to(device)
            x, y = data[..., :-1], data[..., 1:]  # (E, B, T) each
            if i == 0 and amp is not None:
                dtypes = _check_precision(logits, x, y, amp, scores)
            for e, out in enumerate(_pick(logits, x, dtypes)):
                scores[e].add(out, y[e], rows[e])
            task.advance(rows.shape[1])
    return [sc.result(batch_size, block_size, n, d) for sc, d in zip(scores, dtypes, strict=True)]


def _check_tokens(val_tokens: npt.NDArray[Any], token_bytes: npt.NDArray[np.int64] | None) -> npt.NDArray[Any]:
    tokens = np.asarray(val_tokens)
    if tokens.ndim != 1:
        raise UsageError(f"validation tokens must be a 1-D array, got shape {tokens.shape}")
    if token_bytes is not None and int(tokens.max(initial=0)) >= token_bytes.size:
        raise UsageError(f"token id {int(tokens.max())} is outside the tokenizer's {token_bytes.size} ids")
    return tokens


def _pick(logits: LogitsFn, x: torch.Tensor, dtypes: list[torch.dtype | None]) -> Iterator[torch.Tensor]:
    """Each member's logits in its own precision (one pass when they share it, which is the usual case)."""
    kinds = set(dtypes)
    if len(kinds) == 1:
        yield from logits(x, dtypes[0])
        return
    both = {d: list(logits(x, d)) for d in kinds}  # mixed: both passes, each member takes its own
    for e, d in enumerate(dtypes):
        yield both[d][e]


def _check_precision(
    logits: LogitsFn, x: torch.Tensor, y: torch.Tensor, amp: torch.dtype, scores: list[_Scores]
) -> list[torch.dtype | None]:
    """Per member, AMP if its loss on this pass matches float32's to EVAL_PRECISION_TOL nats, else None."""
    dtypes: list[torch.dtype | None] = []
    for e, (low, full) in enumerate(zip(logits(x, amp), logits(x, None), strict=True)):
        gap = abs(_mean_loss(low, y[e]) - _mean_loss(full, y[e]))
        scores[e].gap = gap
        dtypes.append(amp if gap <= EVAL_PRECISION_TOL else None)
    return dtypes


def _mean_loss(logits: torch.Tensor, y: torch.Tensor) -> float:
    losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
    return float(losses.sum(dtype=torch.float64)) / y.numel()


class _Scores:
    """One model's running sums over the evaluated windows, pass by pass."""

    def __init__(self, token_bytes: npt.NDArray[np.int64] | None) -> None:
        self.token_bytes = token_bytes
        self.correct, self.count, self.n_bytes = 0, 0, 0
        self.row_loss: list[npt.NDArray[np.float64]] = []
        self.row_correct: list[npt.NDArray[np.int64]] = []
        self.gap: float | None = None

    def add(self, logits: torch.Tensor, y: torch.Tensor, rows: npt.NDArray[np.int64]) -> None:
        """Score one pass: LOGITS (B, T, V) in float32 for targets Y (B, T) cut from ROWS (B, T+1)."""
        if self.token_bytes is not None:
            self.n_bytes += int(self.token_bytes[rows[:, 1:]].sum())  # bytes of exactly the scored targets
        losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        hits = (logits.argmax(dim=-1) == y).sum(dim=1)  # (B,)
        self.row_loss.append(losses.view(y.shape).sum(dim=1, dtype=torch.float64).cpu().numpy())
        self.count += losses.numel()
        self.correct += int(hits.sum())
        self.row_correct.append(hits.cpu().numpy().astype(np.int64))

    def result(self, batch_size: int, block_size: int, windows: int, dtype: torch.dtype | None) -> dict[str, Any]:
        sums = np.concatenate(self.row_loss)  # (windows,) summed loss of each window
        loss_sum = float(sums.sum())
        batch_ppl = [
            _exp(float(sums[i : i + batch_size].mean()) / block_size) for i in range(0, sums.size, batch_size)
        ]
        mean_loss = loss_sum / self.count
        with_bytes = self.token_bytes is not None
        return {
            VAL_LOSS: mean_loss,
            PERPLEXITY: _exp(mean_loss),
            ACCURACY: self.correct / self.count,
            BITS_PER_BYTE: bits_per_byte(loss_sum, self.n_bytes) if with_bytes else None,
            STUDY_PERPLEXITY: float(np.mean(batch_ppl)),
            STUDY_ACCURACY: float(np.concatenate(self.row_correct).mean()),
            EVAL_TOKENS: self.count,
            EVAL_BYTES: self.n_bytes if with_bytes else None,
            EVAL_WINDOWS: windows,
            "block_size": block_size,
            "batch_size": batch_size,
            EVAL_DTYPE: str(dtype or torch.float32).removeprefix("torch."),
            EVAL_PRECISION_GAP: self.gap,
        }
