"""Compute accounting of a run: FLOPs, tokens seen, unique tokens, epochs, wall time, throughput.

Called once a run has trained (`train/pipeline.train_run`; any trainer can call it too)::

    record = compute_record(model.flops_per_token(), steps=1000, tokens_per_step=4096,
                            train_set_tokens=847_500, unique_train_tokens=600_000, wall_time_s=52.0)

FLOPs use the model's own count (`GPT.flops_per_token`, nanoGPT's `estimate_mfu` formula, as in
the PaLM paper's appendix B): 6·N for the weight matmuls (2 forward + 4 backward per parameter; N
counts every parameter but the position embeddings, so the tied output projection onto the
vocabulary is in it, which at this scale is more than the blocks: 8,192 × 128 = 1.05M against
0.79M in the 4 blocks of `paper`) plus 12·L·d·T for attention (L layers, width d, context T):

    FLOPs = (6·N + 12·L·d·T) × tokens seen.

`epochs` is tokens seen ÷ the training set's tokens; `unique_train_tokens` counts the tokens of the
documents that are not injected copies (copy_index 0, each with its separator), and
`unique_epochs` is tokens seen ÷ that: how often the model saw each distinct document on average.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FLOPS_FORMULA = "(6·N + 12·L·d·T) × tokens seen (nanoGPT/PaLM; N = parameters but position embeddings)"

# Keys of the record, also the columns the report and `curate runs` show.
FLOPS = "flops"
TOKENS_SEEN = "tokens_seen"
TRAIN_SET_TOKENS = "train_set_tokens"
UNIQUE_TRAIN_TOKENS = "unique_train_tokens"
EPOCHS = "epochs"
UNIQUE_EPOCHS = "unique_epochs"
WALL_TIME_S = "wall_time_s"
TOKENS_PER_S = "tokens_per_s"


def unique_tokens(tokens: npt.NDArray[Any], eot: int, copy_index: npt.NDArray[Any]) -> int:
    """Tokens of the original documents (copy_index 0) in a token file of documents each ended by `eot`.

    Args:
        tokens: The training token array (documents in row order, each followed by the separator).
        eot: The separator's id.
        copy_index: Each row's copy_index, in the same order.
    """
    ends = np.flatnonzero(np.asarray(tokens) == eot)
    if ends.size != copy_index.size:
        # Not one separator per row (a document containing the separator's text, or another layout):
        # fall back to the share of original rows, which is exact for rows of equal length.
        share = float((copy_index == 0).mean()) if copy_index.size else 1.0
        return round(len(tokens) * share)
    lengths = np.diff(ends, prepend=-1)
    return int(lengths[np.asarray(copy_index) == 0].sum())


def compute_record(
    flops_per_token: float,
    *,
    steps: int,
    tokens_per_step: int,
    train_set_tokens: int,
    unique_train_tokens: int,
    wall_time_s: float,
    tokens_per_s: float | None = None,
) -> dict[str, Any]:
    """The run's compute, as stored under "compute" in its manifest stats and result.json.

    Args:
        flops_per_token: Training FLOPs per token (`GPT.flops_per_token()`).
        steps: Optimizer steps taken.
        tokens_per_step: Tokens per optimizer step (batch × context × accumulation).
        train_set_tokens: Tokens in the training set (separators included).
        unique_train_tokens: Tokens of its documents that are not injected copies.
        wall_time_s: Seconds of training, resumed sessions summed.
        tokens_per_s: Measured training throughput; default tokens seen ÷ wall time.
    """
    seen = steps * tokens_per_step
    return {
        FLOPS: float(flops_per_token) * seen,
        "flops_per_token": float(flops_per_token),
        "flops_formula": FLOPS_FORMULA,
        TOKENS_SEEN: seen,
        TRAIN_SET_TOKENS: int(train_set_tokens),
        UNIQUE_TRAIN_TOKENS: int(unique_train_tokens),
        EPOCHS: seen / train_set_tokens if train_set_tokens else float("nan"),
        UNIQUE_EPOCHS: seen / unique_train_tokens if unique_train_tokens else float("nan"),
        WALL_TIME_S: float(wall_time_s),
        TOKENS_PER_S: float(tokens_per_s) if tokens_per_s else (seen / wall_time_s if wall_time_s else float("nan")),
    }
