"""Aggregate training throughput of a 6-run `paper` grid: the grid paths against today's trainer run by run.

    PYTHONPATH=src .venv/bin/python benchmarks/grid_speed.py [--runs 6] [--steps 8] [--bf16] [--device cpu]

Six runs of the `paper` preset (4 x 4 x 128, vocabulary 8,192, 4,096 tokens a step), each with its
own seed and its own training tokens (as the cells of a sweep have), trained by:

1. **baseline** - today's trainer before this work, one run after another (`trainer.train` with
   `ce_chunk=0`: the full 4,096 x 8,192 logits materialised, as the trainer always did);
2. **sequential** - the current trainer one run after another (chunked fused cross-entropy);
3. **processes** - the current trainer in 2 processes of 1 thread each, runs split between them;
4. **ensemble** - all runs stepped together as one `EnsembleGPT` (`train.ensemble.train_ensemble`);
5. with `--bf16`, the ensemble under bf16 autocast (a different result: not a default on CPU).

Aggregate tokens/s = (runs x tokens per step) / the wall time of the optimizer steps, from each run's
`metrics.jsonl` (median step, the first step of each run left out as allocator warmup; evaluation and
checkpoints excluded). The ratio of each path to the baseline is printed, and the per-run maximum
relative difference of the logged train losses between the ensemble and the same runs trained alone
by the current trainer (the equivalence the ensemble promises: <= 1e-5 in float32). Token ids come
from a seeded random phrase per run, tiled (throughput does not depend on the text). The machine's
load average is printed with the figures: on a shared machine, compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datadiet.train.config import TrainConfig, resolve_config
from datadiet.train.ensemble import Member, train_ensemble
from datadiet.train.model import GPTConfig
from datadiet.train.trainer import train

VOCAB = 8192


def configs(steps: int, seed: int, **extra: str) -> tuple[GPTConfig, TrainConfig]:
    # No evaluation or checkpoints inside the timed steps; a small final evaluation only.
    return resolve_config(
        "paper",
        VOCAB,
        {"steps": str(steps), "eval_every": "0", "checkpoint_every": "0", "eval_tokens": "4096", "seed": str(seed)}
        | extra,
    )


def tokens(seed: int, n: int = 400_000) -> np.ndarray:
    phrase = np.random.default_rng(seed).integers(0, VOCAB, size=5_000)
    return np.tile(phrase, n // 5_000).astype(np.uint16)


def step_times(out: Path) -> list[float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [4096 / line["tokens_per_s"] for line in lines]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def median_step(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


def solo(root: Path, runs: int, steps: int, **extra: str) -> float:
    """Seconds per run-step (median) training the runs one after another."""
    times = []
    for seed in range(runs):
        model_cfg, cfg = configs(steps, seed, **extra)
        train(model_cfg, cfg, tokens(seed), tokens(1000)[:40_000], root / f"run{seed}")
        times.append(median_step(step_times(root / f"run{seed}")))
    return statistics.mean(times)


def processes(root: Path, runs: int, steps: int) -> float:
    """Seconds per run-step with the runs split over 2 single-threaded processes running at once."""
    script = Path(__file__).resolve()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                "--worker",
                str(root / f"p{p}"),
                "--seeds",
                ",".join(map(str, range(p, runs, 2))),
                "--steps",
                str(steps),
            ],
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        for p in range(2)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a worker process failed")
    per_step = [median_step(step_times(d)) for p in range(2) for d in sorted((root / f"p{p}").iterdir())]
    # Two steps run at once, so the grid advances two run-steps per (median) step time.
    return statistics.mean(per_step) / 2


def worker(root: Path, seeds: list[int], steps: int) -> None:
    for seed in seeds:
        model_cfg, cfg = configs(steps, seed, threads="1")
        train(model_cfg, cfg, tokens(seed), tokens(1000)[:40_000], root / f"run{seed}")


def ensemble(root: Path, runs: int, steps: int, **extra: str) -> float:
    """Seconds per run-step (median ensemble step / runs) training all runs as one ensemble."""
    model_cfg = configs(steps, 0, **extra)[0]
    members = [
        Member(configs(steps, s, **extra)[1], tokens(s), tokens(1000)[:40_000], root / f"run{s}") for s in range(runs)
    ]
    train_ensemble(model_cfg, members)
    return median_step(step_times(root / "run0")) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="also time the ensemble under bf16 autocast")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seeds", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, [int(s) for s in args.seeds.split(",") if s], args.steps)
        return
    dev = {"device": args.device}
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{args.runs} paper runs x {args.steps} steps; load average before: {os.getloadavg()}")
    tok = 4096
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [
            (
                "baseline: today's trainer, one run after another (ce_chunk=0)",
                solo(root / "b", args.runs, args.steps, ce_chunk="0", **dev),
            )
        ]
        rows.append(("current trainer, one run after another", solo(root / "s", args.runs, args.steps, **dev)))
        if args.device == "cpu":
            rows.append(("current trainer, 2 processes x 1 thread", processes(root / "p", args.runs, args.steps)))
        rows.append((f"ensemble of {args.runs}", ensemble(root / "e", args.runs, args.steps, **dev)))
        if args.bf16:
            rows.append(
                (
                    f"ensemble of {args.runs}, bf16 autocast",
                    ensemble(root / "h", args.runs, args.steps, dtype="'bfloat16'", **dev),
                )
            )
        diffs = [
            max(
                abs(a - b) / abs(b)
                for a, b in zip(losses(root / "e" / f"run{s}"), losses(root / "s" / f"run{s}"), strict=True)
            )
            for s in range(args.runs)
        ]
        base = rows[0][1]
        for label, per in rows:
            print(f"{label:<62} {tok / per:>9,.0f} tok/s aggregate  {base / per:5.2f}x baseline")
        print(
            f"ensemble vs the same runs alone: max relative train-loss difference per run {[f'{d:.1e}' for d in diffs]}"
        )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
