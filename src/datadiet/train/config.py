"""Training settings: the frozen `TrainConfig`, the named presets and `--set key=value` overrides.

A run's configuration is `resolve_config(preset, vocab_size, overrides)`: the preset's model shape and
schedule, then the user's overrides, each parsed with `ast.literal_eval` and required to match the
field's type (nanoGPT's configurator without `exec` or globals). The CLI maps `--preset`, `--steps`,
`--seed` and every `--set` onto that one call and persists `to_dict()` of both halves with the run.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any

from datadiet.errors import UsageError
from datadiet.train.model import GPTConfig

SAMPLERS = ("random", "epoch")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
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
        compile: Wrap the model in `torch.compile`.
        threads: CPU threads for torch; 0 uses every core this process may run on (under DDP, its share of them).
    """

    steps: int = 1000
    batch_size: int = 32
    block_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_every: int = 200
    eval_tokens: int = 32768
    checkpoint_every: int = 250
    sampler: str = "random"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "block_size", "grad_accum", "eval_tokens"):
            _check(name, getattr(self, name) >= 1, "must be at least 1", "1")
        for name in ("warmup", "eval_every", "checkpoint_every", "seed", "threads"):
            _check(name, getattr(self, name) >= 0, "must not be negative", "0")
        _check("lr", self.lr > 0, "must be positive", "1e-3")
        _check("min_lr", 0 <= self.min_lr <= self.lr, f"must be between 0 and lr={self.lr}", str(self.lr / 10))
        _check("weight_decay", self.weight_decay >= 0, "must not be negative", "0.1")
        _check("beta1", 0 <= self.beta1 < 1, "must be in [0, 1)", "0.9")
        _check("beta2", 0 <= self.beta2 < 1, "must be in [0, 1)", "0.99")
        _check("grad_clip", self.grad_clip >= 0, "must not be negative (0 disables clipping)", "1.0")
        _check("sampler", self.sampler in SAMPLERS, f"must be one of {', '.join(SAMPLERS)}", "'random'")
        _check("device", self.device in DEVICES, f"must be one of {', '.join(DEVICES)}", "'auto'")
        _check("dtype", self.dtype in DTYPES, f"must be one of {', '.join(DTYPES)}", "'auto'")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @property
    def tokens_per_step(self) -> int:
        """Training tokens consumed by one optimizer step."""
        return self.batch_size * self.block_size * self.grad_accum


def _check(name: str, ok: bool, problem: str, example: str) -> None:
    if not ok:
        raise UsageError(f"train setting {name} {problem}; fix it with --set {name}={example}")


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
        UsageError: An unknown preset or key, a value of the wrong type, or a value out of range.
    """
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    model_values: dict[str, Any] = dict(base.model)
    train_values: dict[str, Any] = {}
    model_types = {f.name: f.type for f in fields(GPTConfig)}
    train_types = {f.name: f.type for f in fields(TrainConfig)}
    for key, raw in (overrides or {}).items():
        if key in MODEL_KEYS:
            model_values[key] = _parse(key, raw, str(model_types[key]))
        elif key in train_types:
            train_values[key] = _parse(key, raw, str(train_types[key]))
        else:
            known = ", ".join([*MODEL_KEYS, *train_types])
            raise UsageError(f"unknown setting {key!r} in --set; known settings: {known}")
    train_cfg = dataclasses.replace(base.train, **train_values)
    model_cfg = GPTConfig(vocab_size=vocab_size, block_size=train_cfg.block_size, **model_values)
    return model_cfg, train_cfg


def _parse(key: str, raw: str, type_name: str) -> Any:
    """Parse one override to the field's declared type (annotations are strings here)."""
    text = raw.strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if type_name == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        ok = isinstance(value, bool)
    elif type_name == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise UsageError(
            f"--set {key}={raw} is of type {type(value).__name__}, but {key} needs type {type_name}; "
            f"give a {type_name} value"
        )
    return value
