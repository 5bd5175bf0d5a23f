"""Training settings: the frozen `TrainConfig`, the named presets and `--set key=value` overrides.

A run's configuration is `resolve_config(preset, vocab_size, overrides)`: the preset's model shape and
schedule, then the user's overrides, each parsed with `ast.literal_eval` and required to match the
field's type (nanoGPT's configurator without `exec` or globals). The CLI maps `--preset`, `--steps`,
`--seed` and every `--set` onto that one call and persists `to_dict()` of both halves with the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from datadiet.config import (
    Flag,
    NonNegativeFloat,
    NonNegativeInt,
    OpenProbability,
    PositiveFloat,
    PositiveInt,
    Seed,
    build,
    parse_literal,
    schema,
)
from datadiet.errors import UsageError
from datadiet.train.model import GPTConfig

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")


@schema()
class TrainConfig:
    """How a model is trained.

    Attributes:
        steps: Optimizer steps.
        batch_size: Sequences per micro-batch.
        block_size: Tokens per sequence (the model's context).
        lr: Peak learning rate, reached after `warmup` steps.
        min_lr: Learning rate at the end of the cosine decay.
        warmup: Steps of linear warmup from 0 to `lr`.
        weight_decay: AdamW decoupled weight decay, applied to matrices only.
        beta1: AdamW first-moment decay.
        beta2: AdamW second-moment decay.
        grad_clip: Clip the global gradient norm to this value; 0 disables clipping.
        grad_accum: Micro-batches accumulated into each optimizer step.
        eval_every: Evaluate on the validation tokens every this many steps (and always at the end); 0 = end only.
        eval_tokens: Cap on validation tokens per evaluation (evenly spaced windows, the same every time).
        checkpoint_every: Save a checkpoint every this many steps (and always at the end); 0 = end only.
        sampler: "random" draws windows at random offsets (nanoGPT's get_batch); "epoch" makes full passes
            over non-overlapping windows in a seeded order.
        seed: Seeds the initial weights, the batch order and dropout.
        device: "auto" picks cuda, then mps, then cpu.
        dtype: "auto" means bf16 autocast on CUDA and float32 elsewhere.
        compile: Compile the model with `torch.compile` (solo runs and ensembles: the trunk up to the
            hidden states, the chunked loss staying eager; with DDP or `ce_chunk=0`, the whole forward).
            A speed setting, not part of a run's id; off by default (docs/benchmarks.md, "bf16 and compile").
        threads: CPU threads for torch; 0 uses every core this process may run on (under DDP, its share of them).
        ce_chunk: Token rows whose logits the loss computes at a time, gradients included
            (`model.lm_cross_entropy`); 0 materialises all of them. A speed setting: it changes only the
            float rounding of the loss, so it is not part of a run's id. At 512 a `paper` step never holds
            the four 134 MB logit-sized arrays; its speed is a wash on an idle 2-core CPU (0.95x of full
            logits over whole runs; a one-step probe's 3x was not reproduced: docs/benchmarks.md, "Grid speed").
    """

    # Field types come from datadiet.config: pydantic checks type and bounds whenever one is built.
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 32
    block_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    min_lr: NonNegativeFloat = 1e-4
    warmup: NonNegativeInt = 100
    weight_decay: NonNegativeFloat = 0.1
    beta1: OpenProbability = 0.9
    beta2: OpenProbability = 0.99
    grad_clip: NonNegativeFloat = 1.0
    grad_accum: PositiveInt = 1
    eval_every: NonNegativeInt = 200
    eval_tokens: PositiveInt = 32768
    checkpoint_every: NonNegativeInt = 250
    sampler: Literal["random", "epoch"] = "random"
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: Flag = False
    threads: NonNegativeInt = 0
    ce_chunk: NonNegativeInt = 512

    def __post_init__(self) -> None:
        if self.min_lr > self.lr:
            raise UsageError(
                f"train setting min_lr={self.min_lr} is above lr={self.lr}; fix it with --set min_lr={self.lr / 10:g}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @property
    def tokens_per_step(self) -> int:
        """Training tokens consumed by one optimizer step."""
        return self.batch_size * self.block_size * self.grad_accum


@dataclass(frozen=True)
class Preset:
    """A named model shape (everything but the vocabulary) with the schedule that suits it.

    Attributes:
        model: `GPTConfig` fields except `vocab_size` and `block_size` (the latter is `train.block_size`).
        train: The training settings.
        note: One line for listings.
    """

    model: dict[str, Any]
    train: TrainConfig
    note: str


PRESETS: dict[str, Preset] = {
    # The original study: nanoGPT at 4 layers x 4 heads x 128 wide, context 128, 1000 steps of batch 32.
    "paper": Preset(
        model={"n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        train=TrainConfig(),
        note="the original study's nanoGPT (4x4x128, context 128, 1000 steps of batch 32)",
    ),
    # Sized for tests and the demo: ~0.6M parameters at vocab 4096, ~150 steps in seconds on 2 CPU cores.
    "tiny": Preset(
        model={"n_layer": 2, "n_head": 2, "n_embd": 64, "dropout": 0.0},
        train=TrainConfig(
            steps=150,
            batch_size=16,
            block_size=64,
            lr=3e-3,
            min_lr=3e-4,
            warmup=15,
            eval_every=50,
            eval_tokens=8192,
            checkpoint_every=50,
        ),
        note="tests and demos: 2x2x64, context 64, 150 steps of batch 16",
    ),
    # 6 x 12·512² = 18.9M in the blocks + 4.2M tied embedding at vocab 8192 = ~23M.
    "small": Preset(
        model={"n_layer": 6, "n_head": 8, "n_embd": 512, "dropout": 0.0},
        train=TrainConfig(
            steps=2000,
            batch_size=16,
            block_size=256,
            lr=6e-4,
            min_lr=6e-5,
            warmup=200,
            beta2=0.95,
            eval_every=250,
            eval_tokens=131072,
            checkpoint_every=500,
        ),
        note="~20M parameters (6x8x512, context 256)",
    ),
    # GPT-2 small's body: 12 x 12·768² = 84.9M in the blocks + 6.3M tied embedding at vocab 8192.
    "base": Preset(
        model={"n_layer": 12, "n_head": 12, "n_embd": 768, "dropout": 0.0},
        train=TrainConfig(
            steps=5000,
            batch_size=32,
            block_size=1024,
            lr=6e-4,
            min_lr=6e-5,
            warmup=500,
            beta2=0.95,
            eval_every=500,
            eval_tokens=524288,
            checkpoint_every=1000,
        ),
        note="~85M parameters, GPT-2 small's shape (12x12x768, context 1024)",
    ),
}

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "dropout")


def resolve_config(
    preset: str, vocab_size: int, overrides: dict[str, str] | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Build the model and training configs of a run.

    Args:
        preset: A key of `PRESETS`.
        vocab_size: The tokenizer's vocabulary size.
        overrides: `--set key=value` pairs; values are Python literals (`3e-4`, `True`, `'epoch'`), and a
            bare word is taken as a string for string fields (`sampler=epoch`).

    Returns:
        The model config (its `block_size` is the training `block_size`) and the training config.

    Raises:
        UsageError: An unknown preset or key, a value of the wrong type, a value out of range, or a model
            too large for this machine's memory.
    """
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    model_values: dict[str, Any] = dict(base.model)
    train_values: dict[str, Any] = base.train.to_dict()
    for key, raw in (overrides or {}).items():
        if key in MODEL_KEYS:
            model_values[key] = parse_literal(raw)
        elif key in train_values:
            train_values[key] = parse_literal(raw)
        else:
            known = ", ".join([*MODEL_KEYS, *train_values])
            raise UsageError(f"unknown setting {key!r} in --set; known settings: {known}")

    def remedy(key: str) -> str:
        default = {**base.model, **base.train.to_dict()}.get(key)
        return f"; fix it with --set {key}={default!r}" if default is not None else ""

    train_cfg = build(TrainConfig, train_values, source="train setting", remedy=remedy)
    model_cfg = build(
        GPTConfig,
        {"vocab_size": vocab_size, "block_size": train_cfg.block_size, **model_values},
        source="model setting",
        remedy=remedy,
    )
    check_memory(model_cfg, train_cfg)
    return model_cfg, train_cfg


# fp32 weights + gradients + AdamW's two moments = 16 bytes per parameter, before activations.
_TRAIN_BYTES_PER_PARAM = 16


def check_memory(model_cfg: GPTConfig, train_cfg: TrainConfig) -> None:
    """Refuse a model that cannot be trained in this machine's RAM.

    Catches `--set n_embd=1000000` up front as one line instead of a 12 TB allocation error deep in
    torch. A lower bound only (activations come on top), so it never refuses a model that fits: on a
    CPU the weights, gradients and AdamW state (16 bytes a parameter) must fit in RAM; with a GPU the
    weights are still built in RAM first (4 bytes a parameter) before they move to the device.
    """
    d, layers = model_cfg.n_embd, model_cfg.n_layer
    params = layers * 12 * d * d + (model_cfg.padded_vocab_size + model_cfg.block_size) * d
    gpu = train_cfg.device in ("cuda", "mps") or (train_cfg.device == "auto" and _accelerator())
    need = params * (_WEIGHT_BYTES if gpu else _TRAIN_BYTES_PER_PARAM)
    if not gpu:  # backpropagation keeps at least the residual stream of every layer: B x T x C floats each
        need += train_cfg.batch_size * train_cfg.block_size * d * layers * 4
    have = ram_bytes()
    if have and need > have:
        raise UsageError(
            f"a model of {params:,} parameters (n_layer={layers}, n_embd={d}) needs at least {need / 2**30:,.1f} GiB "
            f"of memory to train, more than this machine's {have / 2**30:,.1f} GiB; "
            "lower --set n_embd, n_layer, batch_size or block_size"
        )


_WEIGHT_BYTES = 4


def _accelerator() -> bool:
    # Without creating a CUDA context: a context made here would break the DDP workers started later.
    import torch

    return bool(torch.cuda.is_available() or torch.backends.mps.is_available())


def ram_bytes() -> int:
    """Physical RAM in bytes (0 when the platform does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 0
