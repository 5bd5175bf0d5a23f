"""Train several runs of one model shape at once, each exactly as `trainer.train` would train it alone.

    results = train_ensemble(model_cfg, [Member(cfg_seed0, toks0, val, dir0), Member(cfg_seed1, toks1, val, dir1)])

The members' weights are stacked into one `EnsembleGPT` and stepped together: one batched matmul per
layer for all members, one fused AdamW call over the stacked parameters. Everything else stays per
member, computed the way the solo trainer computes it: the initial weights (`torch.manual_seed(seed)`
then `GPT(cfg)`), the batches (`BatchSampler` of the member's seed and training tokens), the gradient
norm and its clipping, the AdamW moments (slices of the stacked state), the validation loss, the
`metrics.jsonl` lines and the checkpoints, which are written in the solo format, so any member can be
resumed alone and any solo run can join an ensemble. Members must share everything but the seed and
the data (one schedule, so one learning rate per step) and start from the same step; the grid
scheduler (`datadiet.train.grid`) groups runs that way. A member whose loss becomes NaN stops with
the solo run's error while the others go on. `compile` compiles the stacked trunk (the members' shared
kernels up to the hidden states, `EnsembleGPT.compile_trunk`), as the solo trainer compiles `GPT.hidden`.
After training, the grid scores the members' final metrics in one batched pass (`train.final_eval`).

Tolerance: float32 losses equal the solo run's to ~1e-6 relative per step (only matmul kernels' float
rounding differs); tests/train/test_ensemble.py pins ≤ 1e-5 on every logged loss.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from datadiet.errors import DatadietError, UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.train.checkpoint import METRICS_FILE, checkpoint_path, load_checkpoint, save_checkpoint
from datadiet.train.config import TrainConfig
from datadiet.train.device import cpu_threads, select_device
from datadiet.train.ensemble_model import EnsembleGPT
from datadiet.train.model import GPT, GPTConfig
from datadiet.train.trainer import (
    BatchSampler,
    TrainResult,
    _autocast,
    _check_same_run,
    autocast_dtype,
    check_inputs,
    checkpoint_state,
    eval_starts,
    is_checkpoint_step,
    is_eval_step,
    keep_freed_memory,
    lr_at,
    nonfinite_error,
    start_metrics,
    windows,
)


@dataclass
class Member:
    """One run of an ensemble: its settings, data and run folder.

    Attributes:
        train_cfg: The run's training settings; all members' must be equal but for `seed`.
        train_tokens: The run's training token array.
        val_tokens: The run's validation token array.
        out_dir: Run folder for `checkpoint.pt` and `metrics.jsonl`, as for `trainer.train`.
        resume: Continue from the checkpoint in `out_dir`.
        on_step: Called with each of this run's metrics lines.
    """

    train_cfg: TrainConfig
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    out_dir: Path
    resume: bool = False
    on_step: Callable[[dict[str, float]], None] | None = None
    # Filled in while training.
    sampler: BatchSampler | None = field(default=None, repr=False)
    rng_state: torch.Tensor | None = field(default=None, repr=False)
    start: int = 0
    elapsed_before: float = 0.0
    step_s_before: float | None = 0.0
    last: dict[str, float] = field(default_factory=dict)
    last_ckpt_step: int | None = None
    error: DatadietError | None = None

    @property
    def ckpt_file(self) -> Path:
        return checkpoint_path(self.out_dir)


def check_members(model_cfg: GPTConfig, members: Sequence[Member]) -> TrainConfig:
    """The members' shared settings (the first member's), after checking they can train together.

    Raises:
        UsageError: No members, dropout (whose masks an ensemble cannot reproduce), or settings that
            differ between members in anything but the seed.
    """
    if not members:
        raise UsageError("an ensemble needs at least one run")
    if model_cfg.dropout:
        raise UsageError("runs with dropout > 0 cannot train as an ensemble (their masks come from one RNG stream)")
    first = members[0].train_cfg.to_dict() | {"seed": None}
    for m in members:
        differ = sorted(k for k, v in (m.train_cfg.to_dict() | {"seed": None}).items() if first.get(k) != v)
        if differ:
            raise UsageError(f"ensemble members differ in {', '.join(differ)}; only the seed and data may differ")
        check_inputs(model_cfg, m.train_cfg, m.train_tokens, m.val_tokens)
    return members[0].train_cfg


def _init_members(model_cfg: GPTConfig, members: Sequence[Member]) -> tuple[list[GPT], list[dict[str, Any]]]:
    """Each member's solo model (fresh or from its checkpoint) and optimizer state (empty when fresh)."""
    models, optim_states = [], []
    for m in members:
        m.out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(m.train_cfg.seed)
        model = GPT(model_cfg)  # the solo run's initial weights: the same seed, the same draws
        m.rng_state = torch.get_rng_state()  # what a solo checkpoint records (no dropout draws follow)
        m.sampler = BatchSampler(len(m.train_tokens), m.train_cfg)
        state: dict[str, Any] = {}
        if m.resume:
            state = load_checkpoint(m.ckpt_file)
            _check_same_run(state, model_cfg, m.train_cfg, m.ckpt_file)
            model.load_state_dict(state["model"])
            m.start, m.elapsed_before, m.last = state["step"], state["elapsed_s"], dict(state["last"])
            m.step_s_before = state.get("step_s")
            m.last_ckpt_step = m.start
        start_metrics(m.out_dir / METRICS_FILE, m.ckpt_file, m.start if m.resume else None)
        models.append(model)
        optim_states.append(state.get("optimizer", {}))
    starts = {m.start for m in members}
    if len(starts) > 1:
        raise UsageError(f"ensemble members resume from different steps {sorted(starts)}; train them separately")
    return models, optim_states


def make_ensemble_optimizer(ens: EnsembleGPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """`trainer.make_optimizer` for stacked weights: decay on matrices (3-D here: E x out x in) only."""
    params = list(ens.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 3], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 3], "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused, foreach=None if fused else True
    )


def stack_optimizer_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One stacked AdamW state from the members' solo states (same param order, same step count)."""
    stacked = copy.deepcopy({"param_groups": states[0]["param_groups"], "state": {}})
    for idx, first in states[0]["state"].items():
        stacked["state"][idx] = {
            k: v.clone() if k == "step" else torch.stack([s["state"][idx][k] for s in states])
            for k, v in first.items()
        }
    return stacked


def member_optimizer_state(stacked: dict[str, Any], e: int) -> dict[str, Any]:
    """Member e's slice of a stacked AdamW state, in the format a solo run's optimizer saves."""
    return {
        "state": {
            idx: {k: v.clone() if k == "step" else v[e].clone() for k, v in st.items()}
            for idx, st in stacked["state"].items()
        },
        "param_groups": copy.deepcopy(stacked["param_groups"]),
    }


class _Ensemble:
    """The stacked model, its optimizer and the members' files while they train."""

    def __init__(self, model_cfg: GPTConfig, members: Sequence[Member], device: torch.device) -> None:
        self.model_cfg, self.members, self.device = model_cfg, list(members), device
        self.cfg = members[0].train_cfg
        self.amp = autocast_dtype(self.cfg.dtype, device)
        models, optim_states = _init_members(model_cfg, members)
        self.model = EnsembleGPT.stack(models, ce_chunk=self.cfg.ce_chunk).to(device)
        if self.cfg.compile:
            self.model.compile_trunk()
        self.optimizer = make_ensemble_optimizer(self.model, self.cfg, device)
        if all(optim_states):
            self.optimizer.load_state_dict(stack_optimizer_states(optim_states))
        self.start = members[0].start
        self.val_starts = [eval_starts(len(m.val_tokens), self.cfg.block_size, self.cfg.eval_tokens) for m in members]
        self.session_start = time.perf_counter()
        self.step_s = 0.0

    def alive(self) -> list[int]:
        return [e for e, m in enumerate(self.members) if m.error is None]

    def elapsed(self, m: Member) -> float:
        return m.elapsed_before + time.perf_counter() - self.session_start

    def _batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for m in self.members:
            assert m.sampler is not None
            x, y = windows(m.train_tokens, m.sampler.starts(micro), self.cfg.block_size)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs).to(self.device), torch.stack(ys).to(self.device)  # (E, B, T) each

    def step(self, step: int) -> tuple[list[float], float]:
        """One optimizer step of every member; returns their train losses and the learning rate."""
        cfg = self.cfg
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros(len(self.members), device=self.device)
        for micro in range(cfg.grad_accum):
            x, y = self._batch(step * cfg.grad_accum + micro)
            with _autocast(self.device, self.amp):
                losses = self.model(x, y)  # (E,)
            # The members' losses are independent, so the gradient of their sum is each member's own.
            (losses.sum() / cfg.grad_accum).backward()
            loss_sum += losses.detach()
        train_losses = (loss_sum / cfg.grad_accum).tolist()
        norms = self._clip()
        for e in self.alive():
            bad = [w for w, v in (("loss", train_losses[e]), ("gradient norm", norms[e])) if not math.isfinite(v)]
            if bad:
                m = self.members[e]
                m.error = nonfinite_error(m.train_cfg, step + 1, bad[0], lr, m.ckpt_file, m.last_ckpt_step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return train_losses, lr

    def _clip(self) -> list[float]:
        """Each member's global gradient norm, clipped to `grad_clip` as `clip_grad_norm_` clips a solo run."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        E = len(self.members)
        per_param = torch.stack([torch.linalg.vector_norm(g.reshape(E, -1), dim=1) for g in grads])  # (P, E)
        norms = torch.linalg.vector_norm(per_param, dim=0)  # (E,)
        if self.cfg.grad_clip:
            coef = torch.clamp(self.cfg.grad_clip / (norms + 1e-6), max=1.0)
            for g in grads:
                g.mul_(coef.view(E, *([1] * (g.dim() - 1))).to(g.dtype))
        return [float(n) for n in norms]

    @torch.inference_mode()
    def val_losses(self) -> list[float]:
        """Every member's mean validation loss over its windows, batched across members when they align."""
        cfg, E = self.cfg, len(self.members)
        if len({len(s) for s in self.val_starts}) > 1:  # different validation sets: one member at a time
            return [self._member_val_loss(e) for e in range(E)]
        totals = torch.zeros(E, dtype=torch.float64)
        n = len(self.val_starts[0])
        for i in range(0, n, cfg.batch_size):
            pairs = [
                windows(m.val_tokens, s[i : i + cfg.batch_size], cfg.block_size)
                for m, s in zip(self.members, self.val_starts, strict=True)
            ]
            x = torch.stack([p[0] for p in pairs]).to(self.device)
            y = torch.stack([p[1] for p in pairs]).to(self.device)
            with _autocast(self.device, self.amp):
                losses = self.model(x, y)
            totals += losses.double().cpu() * x.shape[1]
        return (totals / n).tolist()

    def _member_val_loss(self, e: int) -> float:
        from datadiet.train.trainer import evaluate

        m, cfg = self.members[e], self.cfg
        model = self.model.member_model(e)
        return evaluate(model, m.val_tokens, self.val_starts[e], cfg.block_size, cfg.batch_size, self.device, self.amp)

    def save(self, done: int) -> None:
        optim = self.optimizer.state_dict()
        for e in self.alive():
            m = self.members[e]
            assert m.rng_state is not None
            state = checkpoint_state(
                self.model.member_state(e),
                member_optimizer_state(optim, e),
                done,
                self.model_cfg,
                m.train_cfg,
                m.rng_state,
                self.elapsed(m),
                m.last,
            )
            state["step_s"] = (m.step_s_before or 0.0) + self.step_s
            save_checkpoint(m.ckpt_file, state)
            m.last_ckpt_step = done


def train_ensemble(
    model_cfg: GPTConfig, members: Sequence[Member], *, tracker: Tracker = NULL_TRACKER
) -> list[TrainResult | DatadietError]:
    """Train every member to the end of its schedule, stepping all of them together.

    Args:
        model_cfg: The members' shared model shape (dropout must be 0).
        members: The runs; each member's files are exactly those `trainer.train` would write for it.
        tracker: Progress display (one task for the ensemble).

    Returns:
        Per member, in order: its `TrainResult`, or the `DatadietError` that stopped it (a NaN loss or
        gradient; its last good checkpoint is kept, as for a solo run).

    Raises:
        UsageError: Members that cannot train together (see `check_members`), inconsistent configs,
            too little data, a checkpoint made with other settings or a fresh start into a used folder.
    """
    cfg = check_members(model_cfg, members)
    device = select_device(cfg.device)
    with cpu_threads(device, cfg.threads), keep_freed_memory(device), torch.random.fork_rng(devices=[]):
        ens = _Ensemble(model_cfg, members, device)
        with contextlib.ExitStack() as stack:
            logs = [stack.enter_context((m.out_dir / METRICS_FILE).open("a")) for m in members]
            _loop(ens, logs, tracker)
        return [_result(ens, m) for m in members]


def _loop(ens: _Ensemble, logs: Sequence[IO[str]], tracker: Tracker) -> None:
    cfg = ens.cfg
    ens.model.train()
    with tracker.task(f"Training {len(ens.members)} runs together", total=cfg.steps) as task:
        task.advance(ens.start)
        for step in range(ens.start, cfg.steps):
            if not ens.alive():
                break
            t0 = time.perf_counter()
            train_losses, lr = ens.step(step)
            dt = time.perf_counter() - t0
            ens.step_s += dt
            done = step + 1
            val = ens.val_losses() if is_eval_step(done, cfg) else None
            lines: dict[int, dict[str, float]] = {}
            for e in ens.alive():
                m = ens.members[e]
                line = lines[e] = {"step": done, "train_loss": train_losses[e], "lr": lr}
                m.last = {"train_loss": train_losses[e]}
                if val is not None:
                    line["val_loss"] = m.last["val_loss"] = val[e]
                line["tokens_per_s"] = cfg.tokens_per_step / dt
                line["elapsed_s"] = ens.elapsed(m)
                logs[e].write(json.dumps(line) + "\n")
                logs[e].flush()
            if is_checkpoint_step(done, cfg):
                ens.save(done)
            for e, line in lines.items():
                callback = ens.members[e].on_step
                if callback is not None:
                    callback(line)
            task.advance(1)


def _result(ens: _Ensemble, m: Member) -> TrainResult | DatadietError:
    if m.error is not None:
        return m.error
    cfg = m.train_cfg
    step_s = ens.step_s + (m.step_s_before or 0.0)
    timed = cfg.steps - (ens.start if m.step_s_before is None else 0)
    return TrainResult(
        train_loss=m.last.get("train_loss", math.nan),
        val_loss=m.last.get("val_loss", math.nan),
        steps=cfg.steps,
        tokens=cfg.steps * cfg.tokens_per_step,
        wall_time_s=ens.elapsed(m),
        tokens_per_s=timed * cfg.tokens_per_step / step_s if step_s else 0.0,
        params=_params(ens.model_cfg),
        checkpoint=m.ckpt_file,
    )


def _params(cfg: GPTConfig) -> int:
    with torch.device("meta"):  # shapes only, no memory or init work
        return GPT(cfg).num_params()
