"""`paper` training throughput and loss: float32 vs bf16 autocast, eager vs `torch.compile`, one process.

    PYTHONPATH=src .venv/bin/python benchmarks/precision_speed.py [--steps 60] [--threads 0] [--device cpu]

One `paper` run (4 x 4 x 128, vocabulary 8,192, 4,096 tokens a step), trained by the trainer users
run (`trainer.train`, chunked loss as by default) for the same steps on the same tokens from the same
seed, in four variants: fp32 eager (the baseline), fp32 compiled, bf16 eager, bf16 compiled
(`TrainConfig.dtype` and `.compile`, exactly what `--set dtype=bfloat16 --set compile=true` give).
A fifth run, fp32 eager with another seed, gives the scale of loss differences that do not matter
(seed to seed), against which bf16's difference from fp32 is judged.

Printed per variant: tokens/s from the median step time (the first 3 steps left out: allocator warmup
and, compiled, the compilation, whose seconds are printed apart), its ratio to fp32 eager, and the
train loss after the last step (mean of the last 5 steps, to damp batch noise) and the final
validation loss, with bf16's difference from fp32 beside the seed-to-seed one. Then the final
evaluation (`metrics.evaluate`, 65,536 tokens) of the fp32 run's weights in fp32 and under bf16
autocast: seconds and the loss gap (the evaluation keeps bf16 only where the gap is ≤ 1e-4 nats).
Before the runs, the machine's measured matmul rate (4,096² fp32 and bf16 `torch.mm`, the same
threads), and after them the model's FLOPs per token, so tokens/s can be read as a share of what the
cores can do.
Token ids: a seeded random phrase of 5,000 tokens, tiled (learnable, so the loss moves; throughput
does not depend on the text). Load average is printed before and after: compare only quiet runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadiet.train.config import resolve_config
from datadiet.train.device import cpu_threads
from datadiet.train.metrics import evaluate
from datadiet.train.model import GPT
from datadiet.train.trainer import train

VOCAB = 8192
WARM = 3  # steps left out of the median: allocator warmup, and the compilation when compiled


def tokens(seed: int, n: int = 2_000_000) -> np.ndarray:
    phrase = np.random.default_rng(seed).integers(0, VOCAB, size=5_000)
    return np.tile(phrase, n // 5_000).astype(np.uint16)


def run(root: Path, name: str, steps: int, threads: int, device: str, **extra: str) -> dict[str, Any]:
    settings = {
        "steps": str(steps),
        "warmup": str(max(1, steps // 10)),
        "eval_every": "0",
        "checkpoint_every": "0",
        "eval_tokens": "16384",
        "threads": str(threads),
        "device": device,
        "seed": "0",
    }
    model_cfg, cfg = resolve_config("paper", VOCAB, settings | extra)
    out = root / name
    started = time.perf_counter()
    try:
        result = train(model_cfg, cfg, tokens(0), tokens(1000)[:200_000], out)
    except Exception as exc:  # e.g. no C++ compiler for torch.compile: report it as a row, go on
        return {"name": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    times = [cfg.tokens_per_step / x["tokens_per_s"] for x in lines]
    median = statistics.median(times[WARM:])
    return {
        "name": name,
        "tok_s": cfg.tokens_per_step / median,
        "first_s": sum(times[:WARM]) - WARM * median,  # compile (and warmup) seconds beyond steady steps
        "train_loss": statistics.mean(x["train_loss"] for x in lines[-5:]),
        "val_loss": result.val_loss,
        "wall_s": time.perf_counter() - started,
        "checkpoint": out / "checkpoint.pt",
        "model_cfg": model_cfg,
    }


def eval_gap(row: dict[str, Any], threads: int, device: str) -> list[str]:
    """The final evaluation of the fp32 run's weights in fp32 and under bf16 autocast."""
    import datadiet.train.metrics as M
    from datadiet.train.checkpoint import load_checkpoint

    model = GPT(row["model_cfg"])
    model.load_state_dict(load_checkpoint(row["checkpoint"])["model"])
    val = tokens(1000)[:200_000]
    out = []
    tol, M.EVAL_PRECISION_TOL = M.EVAL_PRECISION_TOL, float("inf")  # measure the gap, do not act on it
    try:
        with cpu_threads(torch.device(device), threads):
            res = {}
            for label, amp in (("fp32", None), ("bf16", torch.bfloat16)):
                t0 = time.perf_counter()
                res[label] = evaluate(model, val, block_size=128, max_tokens=65_536, device=device, amp=amp)
                out.append(
                    f"  final eval {label}: {time.perf_counter() - t0:6.2f} s, val_loss {res[label]['val_loss']:.6f}"
                )
    finally:
        M.EVAL_PRECISION_TOL = tol
    gap = abs(res["bf16"]["val_loss"] - res["fp32"]["val_loss"])
    first = res["bf16"]["eval_precision_gap"]
    out.append(
        f"  bf16 - fp32 eval loss: {gap:.2e} nats over 65,536 tokens ({first:.2e} on the first pass; kept if <= {tol:g})"
    )
    return out


def matmul_rate(threads: int, device: str) -> list[str]:
    """Measured GFLOP/s of a 4,096^2 matmul in fp32 and bf16 with THREADS threads (best of 5)."""
    out = []
    n = 4096
    with cpu_threads(torch.device(device), threads):
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            torch.mm(a, b)
            best = min(_timed(lambda a=a, b=b: torch.mm(a, b)) for _ in range(5))
            out.append(f"  torch.mm {n}x{n} {str(dtype).removeprefix('torch.')}: {2 * n**3 / best / 1e9:7.1f} GFLOP/s")
    return out


def row_line(label: str, row: dict[str, Any], base: dict[str, Any]) -> str:
    if "error" in row or "error" in base:
        return f"{label:<42} failed: {row.get('error') or base.get('error')}"
    d_train = row["train_loss"] - base["train_loss"]
    d_val = row["val_loss"] - base["val_loss"]
    return (
        f"{label:<42} {row['tok_s']:>8,.0f} tok/s {row['tok_s'] / base['tok_s']:5.2f}x  "
        f"first {WARM} steps +{row['first_s']:6.1f} s  train loss {row['train_loss']:.4f} ({d_train:+.4f})  "
        f"val loss {row['val_loss']:.4f} ({d_val:+.4f})"
    )


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: every core, as the trainer's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"paper x {args.steps} steps, threads {args.threads or 'all'}; load average before: {os.getloadavg()}")
    print("\n".join(matmul_rate(args.threads, args.device)), flush=True)
    variants = [
        ("fp32 eager (baseline)", {}),
        ("fp32 compiled", {"compile": "True"}),
        ("bf16 autocast eager", {"dtype": "'bfloat16'"}),
        ("bf16 autocast compiled", {"dtype": "'bfloat16'", "compile": "True"}),
        ("fp32 eager, seed 1 (seed-to-seed scale)", {"seed": "1"}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for i, (label, extra) in enumerate(variants):  # each row printed as it lands
            rows.append(run(Path(tmp), f"v{i}", args.steps, args.threads, args.device, **extra))
            print(row_line(label, rows[-1], rows[0]), flush=True)
        print("\n".join(eval_gap(rows[0], args.threads, args.device)))
    flops = GPT(rows[0]["model_cfg"]).flops_per_token() if "model_cfg" in rows[0] else 0
    print(
        f"model: {flops / 1e6:.2f} MFLOP per training token (6N + 12LdT); fp32 eager = "
        f"{rows[0].get('tok_s', 0) * flops / 1e9:.1f} GFLOP/s"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
