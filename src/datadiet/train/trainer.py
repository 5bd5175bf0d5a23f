"""The training loop: one function, `train`, that turns token arrays and two configs into a run folder.

    result = train(model_cfg, train_cfg, train_tokens, val_tokens, out_dir)

writes `out_dir/checkpoint.pt` (every `checkpoint_every` steps and at the end) and `out_dir/metrics.jsonl`
(one line per step) and returns a `TrainResult`. Everything a step depends on — its batch, its dropout
mask, its learning rate — is a function of (seed, step), so `train(..., resume=True)` after an
interruption reaches the same weights and metrics as a run that never stopped. The function keeps no
module-level state; the CLI (`curate train`) passes a tracker and an `on_step` callback for display.

Called in every process of an initialised torch.distributed group (see `datadiet.train.distributed`),
it trains with DistributedDataParallel: each rank takes its slice of the same global batch, and rank 0
alone writes the checkpoint and metrics, so N processes give the single-process run's result.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.train.checkpoint import METRICS_FILE, checkpoint_path, load_checkpoint, save_checkpoint
from datadiet.train.config import TrainConfig
from datadiet.train.ddp import (
    World,
    all_reduce_sum,
    check_nproc,
    current_world,
    ddp_device,
    threads_per_process,
    wrap_ddp,
)
from datadiet.train.device import cpu_threads, select_device
from datadiet.train.model import GPT, GPTConfig, lm_cross_entropy

# Settings that change neither the weights nor the logged losses, so a run may resume with others.
RESUMABLE_CHANGES = frozenset({"device", "compile", "threads", "checkpoint_every", "ce_chunk"})


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports.

    Attributes:
        train_loss: Mean loss of the last optimizer step.
        val_loss: Mean validation loss after the last step.
        steps: Optimizer steps taken in total.
        tokens: Training tokens consumed in total.
        wall_time_s: Seconds spent in `train`, summed over resumed sessions.
        tokens_per_s: Training throughput of this session's steps (evaluation and checkpoints excluded).
        params: Parameters, non-embedding count as in `GPT.num_params`.
        checkpoint: The final checkpoint.
    """

    train_loss: float
    val_loss: float
    steps: int
    tokens: int
    wall_time_s: float
    tokens_per_s: float
    params: int
    checkpoint: Path

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        d = asdict(self)
        d["checkpoint"] = str(self.checkpoint)
        return d


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a `TrainConfig.dtype` value, or None for plain float32.

    "auto" is bf16 on CUDA (tensor cores, no loss scaling needed) and float32 elsewhere, so CPU results
    do not depend on whether the CPU has bf16 matrix units.
    """
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of 0-based step `step`: linear warmup to `lr`, then cosine decay to `min_lr`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


class BatchSampler:
    """Window start offsets of every micro-batch, each a pure function of (seed, micro-batch index).

    Args:
        n_tokens: Length of the training token array.
        cfg: Supplies sampler, seed, batch_size and block_size.

    Raises:
        UsageError: The training tokens do not fill one window of block_size + 1.
    """

    def __init__(self, n_tokens: int, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.span = cfg.block_size + 1  # inputs plus the one-token-shifted targets
        if n_tokens < self.span:
            raise UsageError(
                f"training data has {n_tokens} tokens, fewer than block_size + 1 = {self.span}; "
                "use more data or a smaller --set block_size"
            )
        self.n_starts = n_tokens - self.span + 1
        self.n_windows = (n_tokens - 1) // cfg.block_size  # non-overlapping windows for "epoch"
        self._perm: tuple[int, np.ndarray] | None = None

    def starts(self, micro: int) -> np.ndarray:
        """Start offsets, shape (batch_size,), of micro-batch number `micro` (0-based over the whole run)."""
        B = self.cfg.batch_size
        if self.cfg.sampler == "random":
            rng = np.random.default_rng([self.cfg.seed, micro])
            return rng.integers(0, self.n_starts, size=B, dtype=np.int64)
        index = np.arange(micro * B, (micro + 1) * B, dtype=np.int64)  # global sample numbers
        out = np.empty(B, dtype=np.int64)
        for epoch in np.unique(index // self.n_windows):
            sel = index // self.n_windows == epoch
            out[sel] = self._permutation(int(epoch))[index[sel] % self.n_windows] * self.cfg.block_size
        return out

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            # The trailing 1 keeps this stream apart from the "random" sampler's (seed, micro) stream.
            self._perm = (epoch, np.random.default_rng([self.cfg.seed, epoch, 1]).permutation(self.n_windows))
        return self._perm[1]


def windows(tokens: np.ndarray, starts: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, each (len(starts), block_size) int64, cut from `tokens`."""
    rows = tokens[starts[:, None] + np.arange(block_size + 1)].astype(np.int64)  # (B, T+1)
    data = torch.from_numpy(rows)
    return data[:, :-1], data[:, 1:]


def eval_starts(n_tokens: int, block_size: int, max_tokens: int) -> np.ndarray:
    """Evenly spaced non-overlapping validation windows, at most `max_tokens` tokens in all.

    Raises:
        UsageError: The validation tokens do not fill one window.
    """
    n_windows = (n_tokens - 1) // block_size
    if n_windows < 1:
        raise UsageError(
            f"validation data has {n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}; "
            "use a larger validation set or a smaller --set block_size"
        )
    n_eval = min(n_windows, max(1, max_tokens // block_size))
    return np.unique(np.linspace(0, n_windows - 1, n_eval).round().astype(np.int64)) * block_size


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokens: np.ndarray,
    starts: np.ndarray,
    block_size: int,
    batch_size: int,
    device: torch.device,
    amp: torch.dtype | None = None,
) -> float:
    """Mean next-token loss of `model` over the windows at `starts` (all windows have the same length).

    Args:
        model: A `GPT` (or compiled wrapper) returning (logits, loss).
        tokens: The token array.
        starts: Window offsets, e.g. from `eval_starts`.
        block_size: Window length.
        batch_size: Windows per forward pass.
        device: Where the model lives.
        amp: Autocast dtype, or None for float32.
    """
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(starts), batch_size):
        x, y = windows(tokens, starts[i : i + batch_size], block_size)
        with _autocast(device, amp):
            _, loss = model(x.to(device), y.to(device))
        assert loss is not None
        total += float(loss) * len(x)
    model.train(was_training)
    return total / len(starts)


def _autocast(device: torch.device, amp: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device_type=device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (weights of matmuls and embeddings) only, not on gains.

    The fused kernel (one launch for all parameters) is used on CUDA and CPU, where torch has one;
    elsewhere the multi-tensor `foreach` path.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused, foreach=None if fused else True
    )


# glibc's mallopt parameters (malloc.h). After training they are set to the state glibc's own
# dynamic tuning converges to in a process that frees large buffers (mmap threshold raised to its
# 32 MB cap, trim threshold twice that), as setting any of them switches that tuning off for good.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_AFTER = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 64 << 20))


def _glibc() -> Any:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def keep_freed_memory(device: torch.device) -> Iterator[None]:
    """On a CPU with glibc, keep freed tensor memory in the process while training; give it back after.

    glibc serves each allocation above its mmap threshold (32 MB at most) with a fresh mmap and
    unmaps it on free, so every step faults in and zeroes its activations and gradients again: for
    `small` on the dev machine, 250k page faults and 0.4 s of system time in a 2.4 s step. With
    mmap off and trimming deferred, each step reuses the previous step's heap pages, which made the
    step 7-11% faster there (benchmarks/train_speed.py). The process's footprint stays at its peak
    until training ends, which a training run reaches on its first step anyway. Skipped when the
    user tunes malloc through MALLOC_* variables, and on CUDA (torch caches device memory itself).
    """
    libc = _glibc() if device.type == "cpu" else None
    if libc is None or any(k.startswith("MALLOC_") for k in os.environ):
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        for param, value in _AFTER:
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def _step_seed(seed: int, step: int, rank: int = 0) -> int:
    # Dropout masks of step k come from this seed alone, so a resumed run draws the same masks. Under DDP
    # each rank draws its own (rank 0 the single-process stream), so no two ranks share a mask; the
    # masks, unlike everything else, then depend on the number of processes.
    key = [seed, step, 2] if rank == 0 else [seed, step, 2, rank]
    return int(np.random.default_rng(key).integers(0, 2**62))


def check_inputs(
    model_cfg: GPTConfig, train_cfg: TrainConfig, train_tokens: np.ndarray, val_tokens: np.ndarray
) -> None:
    """Refuse configs that disagree on the context length and tokens outside the model's vocabulary.

    Raises:
        UsageError: What is wrong and how to fix it.
    """
    if model_cfg.block_size != train_cfg.block_size:
        raise UsageError(
            f"model block_size {model_cfg.block_size} differs from train block_size {train_cfg.block_size}; "
            "build both with resolve_config"
        )
    for name, toks in (("training", train_tokens), ("validation", val_tokens)):
        if len(toks) and int(toks.max()) >= model_cfg.vocab_size:
            raise UsageError(
                f"{name} tokens hold id {int(toks.max())} >= vocab_size {model_cfg.vocab_size}; "
                "encode the data with the run's tokenizer"
            )


def is_eval_step(done: int, cfg: TrainConfig) -> bool:
    """Whether the validation loss is measured after `done` steps (every `eval_every`, and at the end)."""
    return done == cfg.steps or bool(cfg.eval_every and done % cfg.eval_every == 0)


def is_checkpoint_step(done: int, cfg: TrainConfig) -> bool:
    """Whether a checkpoint is written after `done` steps (every `checkpoint_every`, and at the end)."""
    return done == cfg.steps or bool(cfg.checkpoint_every and done % cfg.checkpoint_every == 0)


def checkpoint_state(
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    step: int,
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    rng_state: torch.Tensor,
    elapsed_s: float,
    last: dict[str, float],
) -> dict[str, Any]:
    """What a checkpoint holds; one format for solo and ensemble runs, so either can resume the other."""
    return {
        "model": model_state,
        "optimizer": optimizer_state,
        "step": step,
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "rng_state": rng_state,
        "elapsed_s": elapsed_s,
        "last": dict(last),
    }


def start_metrics(metrics_file: Path, ckpt_file: Path, resume_step: int | None) -> None:
    """Prepare `metrics.jsonl` for a session: cut it back to the checkpoint's step, or start it afresh.

    Raises:
        UsageError: A fresh start into a folder that already holds a checkpoint.
    """
    if resume_step is not None:
        _truncate_metrics(metrics_file, resume_step)
    elif ckpt_file.exists():
        raise UsageError(
            f"{ckpt_file.parent} already holds a run's checkpoint; pass --resume to continue it or choose a new folder"
        )
    else:
        metrics_file.unlink(missing_ok=True)


def nonfinite_error(
    train_cfg: TrainConfig, step: int, what: str, lr: float, ckpt_file: Path, last_ckpt_step: int | None
) -> DatadietError:
    """The error for a loss or gradient that became NaN or infinite, naming the checkpoint that is kept."""
    kept = (
        f"last good checkpoint kept at {ckpt_file} (step {last_ckpt_step})"
        if last_ckpt_step
        else "no checkpoint was written yet"
    )
    return DatadietError(
        f"training {what} became NaN or infinite at step {step}; {kept} — "
        f"lower the learning rate, e.g. --set lr={train_cfg.lr / 10:g} (this step's lr was {lr:.3g})"
    )


class _Session:
    """One process's share of a solo (or DDP) run: the model, its optimizer and the run's files."""

    def __init__(
        self,
        model_cfg: GPTConfig,
        train_cfg: TrainConfig,
        train_tokens: np.ndarray,
        val_tokens: np.ndarray,
        out_dir: Path,
        device: torch.device,
        world: World,
    ) -> None:
        self.model_cfg, self.cfg, self.device, self.world = model_cfg, train_cfg, device, world
        self.train_tokens, self.val_tokens = train_tokens, val_tokens
        self.ckpt_file = checkpoint_path(out_dir)
        self.metrics_file = out_dir / METRICS_FILE
        self.amp = autocast_dtype(train_cfg.dtype, device)
        self.sampler = BatchSampler(len(train_tokens), train_cfg)
        self.val_starts = eval_starts(len(val_tokens), train_cfg.block_size, train_cfg.eval_tokens)
        # Each rank scores a contiguous share of the validation windows; the shares' loss sums add up to
        # the single-process sum, so the logged val_loss is the same mean up to rounding.
        self.val_shard = np.array_split(self.val_starts, world.size)[world.rank]
        torch.manual_seed(train_cfg.seed)
        self.model = GPT(model_cfg).to(device)
        self.optimizer = make_optimizer(self.model, train_cfg, device)
        self.start, self.elapsed_before = 0, 0.0
        # Seconds spent in optimizer steps by earlier sessions (None: a checkpoint from before this was kept).
        self.step_s_before: float | None = 0.0
        self.step_s = 0.0
        self.last: dict[str, float] = {}
        self.last_ckpt_step: int | None = None
        self.session_start = time.perf_counter()

    def open(self, resume: bool) -> None:
        """Load the checkpoint when resuming, prepare the metrics file, and wrap the model for DDP/compile."""
        if resume:
            state = load_checkpoint(self.ckpt_file, map_location=self.device)
            _check_same_run(state, self.model_cfg, self.cfg, self.ckpt_file)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.start, self.elapsed_before, self.last = state["step"], state["elapsed_s"], state["last"]
            self.step_s_before = state.get("step_s")
            self.last_ckpt_step = self.start
        if self.world.is_main:
            start_metrics(self.metrics_file, self.ckpt_file, self.start if resume else None)
        self.ddp = wrap_ddp(self.model, self.device) if self.world.size > 1 else None
        net: nn.Module = self.model if self.ddp is None else self.ddp
        # The chunked loss needs the hidden states, not `forward`'s logits, so with it `compile` compiles
        # the model up to them (`GPT.hidden`); DDP's gradient hooks wrap `forward`, so DDP keeps the full path.
        self.chunked = bool(self.cfg.ce_chunk) and self.ddp is None
        compiled = self.cfg.compile
        self.fwd = torch.compile(net) if compiled and not self.chunked else net
        self.trunk = torch.compile(self.model.hidden) if compiled and self.chunked else None
        self.session_start = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.session_start

    def save(self, step: int) -> None:
        if self.world.is_main:
            state = checkpoint_state(
                self.model.state_dict(),
                self.optimizer.state_dict(),
                step,
                self.model_cfg,
                self.cfg,
                torch.get_rng_state(),
                self.elapsed(),
                self.last,
            )
            state["step_s"] = (self.step_s_before or 0.0) + self.step_s
            save_checkpoint(self.ckpt_file, state)
        self.last_ckpt_step = step

    def val_loss(self) -> float:
        cfg, world = self.cfg, self.world

        def mean_loss(starts: np.ndarray) -> float:
            return evaluate(self.model, self.val_tokens, starts, cfg.block_size, cfg.batch_size, self.device, self.amp)

        if world.size == 1:
            return mean_loss(self.val_starts)
        shard_sum = mean_loss(self.val_shard) * len(self.val_shard) if len(self.val_shard) else 0.0
        return all_reduce_sum(shard_sum, self.device, world) / len(self.val_starts)

    def _batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.world.shard(self.sampler.starts(micro))
        x, y = windows(self.train_tokens, starts, self.cfg.block_size)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def step(self, step: int) -> tuple[float, float]:
        """One optimizer step (all its micro-batches); returns (train loss, learning rate).

        Raises:
            DatadietError: The loss or the gradient norm is not finite.
        """
        cfg, ddp = self.cfg, self.ddp
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.model_cfg.dropout > 0:
            torch.manual_seed(_step_seed(cfg.seed, step, self.world.rank))
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            x, y = self._batch(step * cfg.grad_accum + micro)
            # DDP all-reduces gradients in the last micro-batch's backward only; the others accumulate.
            accumulate = ddp is not None and micro < cfg.grad_accum - 1
            with ddp.no_sync() if ddp is not None and accumulate else contextlib.nullcontext():
                with _autocast(self.device, self.amp):
                    loss = self._loss(x, y)
                # Each rank's loss is the mean over its B/N windows, all of block_size targets, and
                # DDP averages gradients over the N ranks, so the update is the gradient of the mean
                # over the global batch, as in one process; no extra scaling is needed.
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        train_loss = all_reduce_sum(float(loss_sum), self.device, self.world) / (cfg.grad_accum * self.world.size)
        if not math.isfinite(train_loss):
            raise nonfinite_error(cfg, step + 1, "loss", lr, self.ckpt_file, self.last_ckpt_step)
        # max_norm=inf measures the norm without clipping, so a non-finite gradient is caught either way.
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
        if not math.isfinite(float(norm)):
            raise nonfinite_error(cfg, step + 1, "gradient norm", lr, self.ckpt_file, self.last_ckpt_step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return train_loss, lr

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The chunked loss skips the full logits (DDP wraps `forward`, so it keeps them).
        if self.chunked and self.trunk is None:
            return self.model.loss(x, y, self.cfg.ce_chunk)
        if self.chunked and self.trunk is not None:  # compiled up to the hidden states; the loss stays eager
            vocab = self.model_cfg.vocab_size
            return lm_cross_entropy(self.trunk(x), self.model.wte.weight, y.reshape(-1), vocab, self.cfg.ce_chunk)
        _, loss = self.fwd(x, y)
        assert loss is not None
        return loss


def train(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    out_dir: Path,
    *,
    resume: bool = False,
    tracker: Tracker = NULL_TRACKER,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a GPT on `train_tokens`, evaluating on `val_tokens`, keeping checkpoints in `out_dir`.

    Args:
        model_cfg: The model's shape; its block_size must equal `train_cfg.block_size`.
        train_cfg: Schedule, sampling, device and precision.
        train_tokens: 1-D array of token ids (e.g. the memmap from `load_tokens`).
        val_tokens: 1-D array of validation token ids.
        out_dir: Run folder for `checkpoint.pt` and `metrics.jsonl`; created if missing.
        resume: Continue from the checkpoint in `out_dir` instead of starting fresh.
        tracker: Progress display.
        on_step: Called after every step with that step's metrics line (after any checkpoint is written).

    Under DDP (an initialised process group) every rank calls this with the same arguments; `tracker`
    and `on_step` are used on rank 0 only, and every rank returns the same result once rank 0's final
    checkpoint is written.

    Returns:
        The final losses, throughput and the checkpoint's path.

    Raises:
        UsageError: Inconsistent configs, too little data, `out_dir` already holding a run (without resume),
            a checkpoint made with other settings, or a batch size the processes cannot split evenly.
        DatadietError: The loss or gradient became NaN or infinite; the last good checkpoint is kept.
    """
    check_inputs(model_cfg, train_cfg, train_tokens, val_tokens)
    world = current_world()
    check_nproc(world.size, train_cfg.batch_size)
    if not world.is_main:
        tracker, on_step = NULL_TRACKER, None
    out_dir = Path(out_dir)
    if world.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    device = ddp_device(select_device(train_cfg.device), world)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    # threads=0 means every core, shared out among the processes on this machine so as not to oversubscribe.
    threads = train_cfg.threads or (threads_per_process(world.local_size) if world.size > 1 else 0)
    with cpu_threads(device, threads), keep_freed_memory(device), torch.random.fork_rng(devices=[]):
        run = _Session(model_cfg, train_cfg, train_tokens, val_tokens, out_dir, device, world)
        run.open(resume)
        _loop(run, tracker, on_step)
        if run.ddp is not None:
            dist.barrier()  # rank 0's final checkpoint exists before any rank returns its path
        # Throughput over every session's steps (a run finished by an ensemble and published here ran 0).
        ran = train_cfg.steps - (run.start if run.step_s_before is None else 0)
        step_time = run.step_s + (run.step_s_before or 0.0)
        return TrainResult(
            train_loss=run.last.get("train_loss", math.nan),
            val_loss=run.last.get("val_loss", math.nan),
            steps=train_cfg.steps,
            tokens=train_cfg.steps * train_cfg.tokens_per_step,
            wall_time_s=run.elapsed(),
            tokens_per_s=ran * train_cfg.tokens_per_step / step_time if step_time else 0.0,
            params=run.model.num_params(),
            checkpoint=run.ckpt_file,
        )


def _loop(run: _Session, tracker: Tracker, on_step: Callable[[dict[str, float]], None] | None) -> None:
    """Steps from the session's start to the end of the schedule, logging, evaluating and checkpointing."""
    cfg = run.cfg
    run.model.train()
    log_file = run.metrics_file if run.world.is_main else Path(os.devnull)
    with tracker.task("Training", total=cfg.steps) as task, log_file.open("a") as log:
        task.advance(run.start)
        for step in range(run.start, cfg.steps):
            t0 = time.perf_counter()
            train_loss, lr = run.step(step)
            dt = time.perf_counter() - t0
            run.step_s += dt
            done = step + 1
            line: dict[str, float] = {"step": done, "train_loss": train_loss, "lr": lr}
            run.last = {"train_loss": train_loss}
            if is_eval_step(done, cfg):
                line["val_loss"] = run.last["val_loss"] = run.val_loss()
            line["tokens_per_s"] = cfg.tokens_per_step / dt
            line["elapsed_s"] = run.elapsed()
            log.write(json.dumps(line) + "\n")
            log.flush()
            if is_checkpoint_step(done, cfg):
                run.save(done)
            task.advance(1)
            if on_step is not None:
                on_step(line)


def _check_same_run(state: dict[str, Any], model_cfg: GPTConfig, train_cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint made with settings that would change the result."""
    saved = {**state.get("model_config", {}), **state.get("train_config", {})}
    wanted = {**model_cfg.to_dict(), **train_cfg.to_dict()}
    diff = sorted(k for k in wanted if k not in RESUMABLE_CHANGES and saved.get(k) != wanted[k])
    if diff:
        shown = ", ".join(f"{k}={saved.get(k)!r} (now {wanted[k]!r})" for k in diff)
        raise UsageError(f"checkpoint {path} was made with {shown}; resume with the same settings or start a new run")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines after the checkpoint's step, which the resumed run will write again."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by the interruption
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
