"""Train a grid of runs at once: the sweep's runs packed onto the machine's cores or GPU.

    plan = plan_runs(store, specs)                        # what each run still needs, tokens prepared
    packing = choose_packing(parallel, device, n_runs)    # processes x threads x ensemble size
    pretrain(plan, packing, tracker)                      # every run trained to its last step

`pretrain` only trains: each run ends with its final checkpoint and `metrics.jsonl` in its private
work folder (`work/runs/<name>-<version>/`), exactly as `trainer.train` would leave them. Publishing
stays with `pipeline.train_run`, which the sweep calls next for every run as before: it finds the
finished checkpoint, resumes at the last step (no step to take), evaluates and commits. So a run's
id, files and metrics are what training it alone gives (ensembles: within float rounding, see
`train.ensemble`), an interruption resumes per run, and a run the packing could not take (dropout,
DDP) simply trains alone inside `train_run`.

Packings (docs/benchmarks.md, "Grid speed", has the measurements behind the defaults):

- **CPU**: one process per core, one thread each, each process training its share of the runs one
  after another. On the 2-core dev machine this beat one 2-thread process running the runs one
  after another and a 6-run ensemble (small matmuls scale badly over threads, and a busy machine
  stalls multi-threaded kernels at every barrier).
- **CUDA**: one process stepping an ensemble of as many runs as fit in ~80% of free memory (at most
  64): a `paper` run uses a sliver of a GPU, so stacking runs is how the card gets busy.
- `--parallel N` asks for N runs in flight: N processes on CPU (cores shared out), an ensemble of N
  on CUDA. `--parallel 1` trains the runs one at a time, as before this module.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Task, Tracker, step_status
from datadiet.runtime import tie_to_parent
from datadiet.store import Store
from datadiet.train.pipeline import (
    TOKENS_FILE,
    RunSpec,
    resolve_run_config,
    resolve_tokenizer,
    run_identity,
    tokens_version,
)

# Ensembles larger than this gain nothing on any device we measured and make one failure cost more.
MAX_ENSEMBLE = 64
# Share of free GPU memory an ensemble may plan to use (the rest: allocator slack, evaluation).
GPU_MEMORY_SHARE = 0.8
POLL_S = 0.2
# Auto packing on CPU starts worker processes only for a grid of at least this many training FLOPs
# (about a minute of 2-core compute): a spawned worker pays 3-10 s importing torch, which made the
# 12-run, 8-step demo grid slower in two processes (80 s) than in one (59 s) on the loaded dev machine.
MIN_PROCESS_FLOPS = 1e13


@dataclass(frozen=True)
class PlannedRun:
    """A run that still has steps to take, with everything a worker process needs to train it.

    Attributes:
        name: The run's name (for progress lines).
        model_cfg: Its model shape (`GPTConfig`).
        train_cfg: Its training settings (`TrainConfig`).
        train_tokens: (path, dtype) of its training token file.
        val_tokens: (path, dtype) of its validation token file.
        work: Its private work folder (checkpoint and metrics).
        resume: Whether a checkpoint exists to continue from.
        start: The step it starts (or resumes) from.
        tokenizer: Its tokenizer's `tokenizer.json` (for the final evaluation's bits per byte).
    """

    name: str
    model_cfg: Any
    train_cfg: Any
    train_tokens: tuple[str, str]
    val_tokens: tuple[str, str]
    work: Path
    resume: bool
    start: int
    tokenizer: str = ""


@dataclass(frozen=True)
class Packing:
    """How the runs share the machine: `processes` x `threads` each, `ensemble` runs stepped together."""

    processes: int
    threads: int
    ensemble: int

    def describe(self) -> str:
        if self.ensemble > 1:
            return f"ensembles of up to {self.ensemble} runs in {self.processes} process(es)"
        threads = f"{self.threads} thread(s)" if self.threads else "all cores"
        return f"{self.processes} process(es) x {threads}, runs one after another in each"


def run_work_dir(store: Store, name: str, version: str) -> Path:
    """The private work folder of run NAME@VERSION (the one `pipeline.train_run` uses)."""
    return store.root / "work" / "runs" / f"{name}-{version}"


def plan_runs(store: Store, specs: Sequence[RunSpec], tracker: Tracker = NULL_TRACKER) -> list[PlannedRun]:
    """The runs of SPECS that are neither published nor finished in their work folder, tokens prepared."""
    from datadiet.train.checkpoint import checkpoint_path, load_checkpoint

    planned = []
    for spec in specs:
        name, params, parents = run_identity(store, spec)
        version = store.version_id(operation="train", params=params, parents=parents, kind="runs")
        try:
            store.resolve(f"{name}@{version}", "runs")
            continue  # published already
        except UsageError:
            pass
        tok = resolve_tokenizer(store, spec.tokenizer)
        model_cfg, train_cfg = resolve_run_config(spec, tok.vocab_size)
        work = run_work_dir(store, name, version)
        ckpt = checkpoint_path(work)
        start = int(load_checkpoint(ckpt)["step"]) if ckpt.exists() else 0
        if start >= train_cfg.steps:
            continue
        files = []
        for ref in (spec.train_ref, spec.val_ref):
            ds = tokens_version(store, store.resolve(ref), tok, tracker)
            files.append((str(ds.file(TOKENS_FILE)), str(ds.manifest.stats["dtype"])))
        planned.append(
            PlannedRun(name, model_cfg, train_cfg, files[0], files[1], work, ckpt.exists(), start, str(tok.path))
        )
    return planned


def choose_packing(
    parallel: int | None, device: str, n_runs: int, model_cfg: Any = None, train_cfg: Any = None, cores: int = 0
) -> Packing:
    """The packing for N_RUNS runs of one shape on DEVICE ("cpu" or "cuda"); PARALLEL None means auto.

    On CUDA, auto sizes the ensemble to ~80% of free memory from `run_bytes(model_cfg, train_cfg)`.

    Raises:
        UsageError: PARALLEL below 1.
    """
    if parallel is not None and parallel < 1:
        raise UsageError(f"--parallel must be 'auto' or a whole number >= 1, not {parallel}")
    n = max(1, n_runs)
    if device == "cuda":
        size = parallel or _gpu_ensemble_size(model_cfg, train_cfg)
        return Packing(processes=1, threads=0, ensemble=max(1, min(size, n, MAX_ENSEMBLE)))
    cores = cores or _cores()
    if parallel is None and model_cfg is not None and train_cfg is not None:
        flops = _flops_per_token(model_cfg) * train_cfg.tokens_per_step * train_cfg.steps * n
        if flops < MIN_PROCESS_FLOPS:
            return Packing(processes=1, threads=0, ensemble=1)
    procs = max(1, min(parallel or cores, n))
    return Packing(processes=procs, threads=max(1, cores // procs), ensemble=1)


def _flops_per_token(model_cfg: Any) -> int:
    import torch

    from datadiet.train.model import GPT

    with torch.device("meta"):
        return GPT(model_cfg).flops_per_token()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _gpu_ensemble_size(model_cfg: Any, train_cfg: Any) -> int:
    import torch

    if model_cfg is None or train_cfg is None:
        return 1
    free, _ = torch.cuda.mem_get_info()
    return max(1, int(GPU_MEMORY_SHARE * free // run_bytes(model_cfg, train_cfg)))


def run_bytes(model_cfg: Any, train_cfg: Any) -> int:
    """Rough training memory of one run: weights, gradients and AdamW moments in fp32 plus activations.

    Activations: ~16 saved (B, T, C)-sized tensors per layer plus attention's (B, H, T, T) scores
    in fp32, and one chunk of logits (the chunked loss never holds all of them).
    """
    import torch

    from datadiet.train.model import GPT

    with torch.device("meta"):
        n = sum(p.numel() for p in GPT(model_cfg).parameters())
    B, T, C = train_cfg.batch_size, train_cfg.block_size, model_cfg.n_embd
    acts = model_cfg.n_layer * (16 * B * T * C + 2 * B * model_cfg.n_head * T * T) + 4 * B * T * C
    logits = min(B * T, train_cfg.ce_chunk or B * T) * model_cfg.padded_vocab_size * 3
    return 4 * (4 * n + acts + logits)


def shares(runs: Sequence[PlannedRun], packing: Packing) -> list[list[list[PlannedRun]]]:
    """Per process, its groups of runs: runs that can step together (same settings but the seed,
    same start step, no dropout) in groups of at most `packing.ensemble`; every other run alone."""
    groups: dict[Any, list[PlannedRun]] = {}
    for run in runs:
        key = (run.model_cfg, dataclasses.replace(run.train_cfg, seed=0), run.start)
        solo = packing.ensemble == 1 or run.model_cfg.dropout > 0
        groups.setdefault(("solo", id(run)) if solo else key, []).append(run)
    batches = [g[i : i + packing.ensemble] for g in groups.values() for i in range(0, len(g), packing.ensemble)]
    per_proc: list[list[list[PlannedRun]]] = [[] for _ in range(packing.processes)]
    # Largest first onto the least loaded process, so processes finish at about the same time.
    load = [0.0] * packing.processes
    for batch in sorted(batches, key=lambda b: -sum(r.train_cfg.steps - r.start for r in b)):
        p = load.index(min(load))
        per_proc[p].append(batch)
        load[p] += sum(r.train_cfg.steps - r.start for r in batch) / len(batch) * (1 + 0.1 * (len(batch) - 1))
    return [p for p in per_proc if p]


def pretrain(runs: Sequence[PlannedRun], packing: Packing, tracker: Tracker = NULL_TRACKER) -> dict[str, str]:
    """Train every run of RUNS to its last step in its work folder, packed as PACKING says.

    One task per run on TRACKER shows its step, loss, tokens/s and ETA. A run that fails (a NaN loss,
    a crash of its process) is left with its last checkpoint: `pipeline.train_run` then resumes it
    alone and reports the failure the way a solo run does.

    Returns:
        Run name -> error message, for the runs that did not finish.
    """
    work = shares(runs, packing)
    if not work:
        return {}
    if len(work) == 1:
        failures: dict[str, str] = {}
        _progress = TaskBoard(tracker, runs)
        with _progress:
            for batch in work[0]:
                failures |= train_batch(batch, packing.threads, _progress.line)
        return failures
    ctx = mp.get_context("spawn")  # no fork: torch's thread pools do not survive it
    lines: Any = ctx.Queue()
    me = os.getpid()
    procs = [ctx.Process(target=_worker, args=(share, packing.threads, lines, me), daemon=True) for share in work]
    failures = {}
    with TaskBoard(tracker, runs) as board:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs) or not lines.empty():
            try:
                kind, name, payload = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "line":
                board.line(name, payload)
            else:
                failures[name] = payload
        for p in procs:
            p.join()
            if p.exitcode:
                failures.setdefault(f"process {p.pid}", f"exited with code {p.exitcode}")
    return failures


def _worker(share: list[list[PlannedRun]], threads: int, lines: Any, parent_pid: int) -> None:
    tie_to_parent(parent_pid)  # daemon=True ends workers only at a clean exit; a kill -9 runs none
    for batch in share:
        for name, message in train_batch(batch, threads, lambda n, line: lines.put(("line", n, line))).items():
            lines.put(("error", name, message))


def train_batch(
    batch: list[PlannedRun], threads: int, on_line: Callable[[str, dict[str, float]], None]
) -> dict[str, str]:
    """Train one group (an ensemble, or a single run with the solo trainer); returns failures by name."""
    from datadiet.errors import DatadietError
    from datadiet.train.checkpoint import CHECKPOINT_FILE
    from datadiet.train.data import load_tokens
    from datadiet.train.ensemble import Member, train_ensemble
    from datadiet.train.trainer import train

    def tokens(spec: tuple[str, str]) -> np.ndarray:
        return load_tokens(Path(spec[0]), spec[1])

    def cfg(run: PlannedRun) -> Any:
        return dataclasses.replace(run.train_cfg, threads=threads) if threads else run.train_cfg

    # Resume from whatever checkpoint exists now: a retried task continues where its dead worker stopped.
    batch = [dataclasses.replace(r, resume=(r.work / CHECKPOINT_FILE).exists()) for r in batch]

    try:
        if len(batch) == 1:
            run = batch[0]
            train(
                run.model_cfg,
                cfg(run),
                tokens(run.train_tokens),
                tokens(run.val_tokens),
                run.work,
                resume=run.resume,
                on_step=lambda line: on_line(run.name, line),
            )
            return {}
        members = [
            Member(
                cfg(r),
                tokens(r.train_tokens),
                tokens(r.val_tokens),
                r.work,
                resume=r.resume,
                on_step=lambda line, n=r.name: on_line(n, line),  # type: ignore[misc]
            )
            for r in batch
        ]
        results = train_ensemble(batch[0].model_cfg, members)
        failed = {r.name: str(res) for r, res in zip(batch, results, strict=True) if isinstance(res, DatadietError)}
        evaluate_together([r for r in batch if r.name not in failed], cfg(batch[0]))
        return failed
    except DatadietError as exc:
        return {r.name: str(exc) for r in batch}


def evaluate_together(runs: list[PlannedRun], train_cfg: Any) -> None:
    """The final evaluation of RUNS, which trained together, as one batched pass over all of them.

    Each run's metrics are left in its work folder (`train.final_eval`), where `pipeline.train_run`
    publishes them when their key matches; runs of different tokenizers, or a failure here, leave
    the evaluation to `train_run` (run by run), so nothing is lost but the batching.
    """
    from datadiet.errors import DatadietError
    from datadiet.train.checkpoint import checkpoint_path
    from datadiet.train.data import load_tokens
    from datadiet.train.final_eval import evaluate_final, final_eval_key, save_final_eval
    from datadiet.train.metrics import token_byte_lengths
    from datadiet.train.tokenizer import load_tokenizer

    if len(runs) < 2 or len({r.tokenizer for r in runs}) > 1 or not runs[0].tokenizer:
        return
    token_bytes = token_byte_lengths(load_tokenizer(Path(runs[0].tokenizer)))
    ckpts = [checkpoint_path(r.work) for r in runs]
    vals = [load_tokens(Path(r.val_tokens[0]), r.val_tokens[1]) for r in runs]
    try:
        metrics, seconds = evaluate_final(runs[0].model_cfg, train_cfg, ckpts, vals, token_bytes)
    except (DatadietError, RuntimeError):  # e.g. out of memory: train_run evaluates each run alone, and reports
        return
    for run, ckpt, m, s in zip(runs, ckpts, metrics, seconds, strict=True):
        key = final_eval_key(run.model_cfg, run.train_cfg, ckpt, run.val_tokens[0], token_bytes)
        save_final_eval(run.work, key, m, s)


class TaskBoard:
    """One progress task per run, updated from the runs' metrics lines (step, loss, tok/s; ETA by the display)."""

    def __init__(self, tracker: Tracker, runs: Sequence[PlannedRun]) -> None:
        self.tracker, self.runs = tracker, runs
        self.tasks: dict[str, Task] = {}
        self.started = time.perf_counter()

    def __enter__(self) -> TaskBoard:
        for run in self.runs:
            task = self.tracker.task(run.name, total=run.train_cfg.steps)
            task.__enter__()
            task.advance(run.start)
            self.tasks[run.name] = task
        return self

    def line(self, name: str, line: dict[str, float]) -> None:
        task = self.tasks.get(name)
        if task is not None:
            task.advance(1)
            task.update(description=f"{name} · {step_status(line)}")

    def finish(self, name: str) -> None:
        """Mark run NAME trained to its end (displays that get no per-step lines, e.g. Ray tasks)."""
        task = self.tasks.get(name)
        run = next((r for r in self.runs if r.name == name), None)
        if task is not None and run is not None:
            task.advance(run.train_cfg.steps - run.start)

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            task.__exit__(None, None, None)


def probe_tokens_per_s(model_cfg: Any, train_cfg: Any, packing: Packing, steps: int = 3) -> float:
    """Aggregate training tokens/s of PACKING on this machine, from a few steps on random tokens.

    Used by `curate sweep --dry-run` when the store holds no earlier run of the preset to measure
    from: a one-process probe of `steps` steps (after one warm-up step) with the packing's threads,
    times the processes (or the ensemble size) that run at once.
    """
    import json
    import tempfile

    import torch

    from datadiet.train.ensemble import Member, train_ensemble
    from datadiet.train.trainer import train

    n = max(steps + 1, 2)
    cfg = dataclasses.replace(
        train_cfg, steps=n, eval_every=0, checkpoint_every=0, eval_tokens=train_cfg.block_size, threads=packing.threads
    )
    rng = np.random.default_rng(0)
    toks = rng.integers(0, model_cfg.vocab_size, size=cfg.tokens_per_step * 4 + cfg.block_size + 1).astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        out = Path(tmp) / "0"
        if packing.ensemble > 1:
            seeds = range(packing.ensemble)
            train_ensemble(
                model_cfg, [Member(dataclasses.replace(cfg, seed=s), toks, toks, out.with_name(str(s))) for s in seeds]
            )
        else:
            train(model_cfg, cfg, toks, toks, out)
        rates = [json.loads(x)["tokens_per_s"] for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    per_run = float(np.median(rates))
    return per_run * max(packing.ensemble, packing.processes) if math.isfinite(per_run) else 0.0
