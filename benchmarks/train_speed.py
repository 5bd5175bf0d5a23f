"""Training throughput of datadiet's trainer against a plain eager float32 PyTorch loop, with MFU.

    PYTHONPATH=src .venv/bin/python benchmarks/train_speed.py [--presets paper,small] [--rounds 3]

For each preset it runs, in alternating rounds so that any other load on the machine hits every
variant alike: (1) the baseline, a straightforward nanoGPT-style loop (same `GPT`, same batch, eager,
float32, default AdamW, `torch.randint` windows), (2) `datadiet.train.trainer.train` with the preset's
defaults, and (3) the trainer with `dtype='bfloat16'` (autocast; on CPUs with AMX the matmuls run on
the bf16 tile units). Per-step times exclude the first step of each round (allocator and oneDNN warmup)
and evaluation. MFU = flops_per_token x tokens/s / the machine's matmul rate, measured in the same run
with large square matmuls in float32 and in bf16; each variant is compared to the rate of the precision
its matmuls use. Token ids are uniform random (throughput does not depend on the text). Runs in ~2-3
minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datadiet.train.config import TrainConfig, resolve_config
from datadiet.train.device import select_device
from datadiet.train.model import GPT, GPTConfig
from datadiet.train.trainer import train

VOCAB = 8192


def matmul_rate(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 8) -> float:
    """Best-of-`reps` FLOP/s of an n x n matmul (the best run is the one least disturbed by other load)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def shape_rate(model_cfg: GPTConfig, tokens_per_step: int, dtype: torch.dtype, device: torch.device) -> float:
    """FLOP/s of the model's own weight matmuls (forward, grad-input, grad-weight), best of 3 passes.

    The square-matmul rate is what MFU divides by; this is the rate the model's shapes can reach
    (M = tokens per step, K x N = each Linear), so rate / peak is the MFU ceiling of a step that
    spent no time at all outside its weight matmuls.
    """
    d, L, M = model_cfg.n_embd, model_cfg.n_layer, tokens_per_step
    shapes = [(d, 3 * d)] * L + [(d, d)] * L + [(d, 4 * d)] * L + [(4 * d, d)] * L + [(d, model_cfg.padded_vocab_size)]
    mats = [
        (
            torch.randn(M, k, device=device).to(dtype),
            torch.randn(n, k, device=device).to(dtype),
            torch.randn(M, n, device=device).to(dtype),
        )
        for k, n in shapes
    ]
    flops = sum(6 * M * k * n for k, n in shapes)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for x, w, g in mats:
            x @ w.T  # forward
            g @ w  # grad of the input
            g.T @ x  # grad of the weight
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, flops / (time.perf_counter() - t))
    return best


def baseline_times(
    model_cfg: GPTConfig, train_cfg: TrainConfig, tokens: torch.Tensor, steps: int, device: torch.device
) -> list[float]:
    """Seconds per step of a plain eager float32 loop: the obvious code a user would write first."""
    torch.manual_seed(0)
    model = GPT(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2))
    B, T = train_cfg.batch_size, train_cfg.block_size
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        ix = torch.randint(len(tokens) - T - 1, (B,))
        x = torch.stack([tokens[i : i + T] for i in ix]).to(device)
        y = torch.stack([tokens[i + 1 : i + 1 + T] for i in ix]).to(device)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the trainer syncs once per step too
        times.append(time.perf_counter() - t)
    return times


def trainer_times(model_cfg: GPTConfig, train_cfg: TrainConfig, tokens: np.ndarray, val: np.ndarray) -> list[float]:
    """Seconds per step of datadiet's `train` (from its own per-step metrics)."""
    seen: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(
            model_cfg,
            train_cfg,
            tokens,
            val,
            Path(tmp),
            on_step=lambda m: seen.append(train_cfg.tokens_per_step / m["tokens_per_s"]),
        )
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="paper,small")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", default="paper=5,small=3", help="steps per round and variant, per preset")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = select_device(args.device)
    steps_of = {k: int(v) for k, v in (kv.split("=") for kv in args.steps.split(","))}
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, size=2_000_000, dtype=np.int64).astype(np.uint16)
    val = tokens[:50_000]
    tokens_t = torch.from_numpy(tokens.astype(np.int64))

    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    peak = {"float32": matmul_rate(torch.float32, device), "bfloat16": matmul_rate(torch.bfloat16, device)}
    print(
        f"measured matmul rate: float32 {peak['float32'] / 1e9:.0f} GFLOP/s, bfloat16 {peak['bfloat16'] / 1e9:.0f} GFLOP/s"
    )

    for preset in args.presets.split(","):
        n = steps_of.get(preset, 3)
        common = {
            "steps": str(n),
            "eval_tokens": "1",
            "eval_every": "0",
            "checkpoint_every": "0",
            "device": repr(args.device),
        }
        model_cfg, fp32_cfg = resolve_config(preset, VOCAB, {**common, "dtype": "'float32'"})
        _, bf16_cfg = resolve_config(preset, VOCAB, {**common, "dtype": "'bfloat16'"})
        flops = GPT(model_cfg).flops_per_token()
        ceiling = {
            prec: shape_rate(model_cfg, fp32_cfg.tokens_per_step, getattr(torch, prec), device) / peak[prec]
            for prec in peak
        }
        runs: dict[str, list[float]] = {
            "baseline (eager fp32 loop)": [],
            "trainer float32": [],
            "trainer bfloat16": [],
        }
        for _ in range(args.rounds):
            runs["baseline (eager fp32 loop)"] += baseline_times(model_cfg, fp32_cfg, tokens_t, n, device)[1:]
            runs["trainer float32"] += trainer_times(model_cfg, fp32_cfg, tokens, val)[1:]
            runs["trainer bfloat16"] += trainer_times(model_cfg, bf16_cfg, tokens, val)[1:]
        tps = {k: fp32_cfg.tokens_per_step / statistics.median(v) for k, v in runs.items()}
        base = tps["baseline (eager fp32 loop)"]
        print(
            f"\n{preset}: {GPT(model_cfg).num_params() / 1e6:.2f}M params, {flops / 1e6:.1f} MFLOP/token, "
            f"batch {fp32_cfg.batch_size} x {fp32_cfg.block_size}, median of {len(runs['trainer float32'])} steps"
        )
        print(
            "  the model's weight-matmul shapes alone reach "
            + ", ".join(f"{c:.2f} of the {prec} rate" for prec, c in ceiling.items())
            + " (the MFU ceiling of a step with no other work)"
        )
        for name, rate in tps.items():
            prec = "bfloat16" if "bfloat16" in name else "float32"
            mfu = flops * rate / peak[prec]
            extra = f" (vs fp32 rate {flops * rate / peak['float32']:.2f})" if prec == "bfloat16" else ""
            print(
                f"  {name:28s} {rate:9.0f} tok/s  {rate / base:5.2f}x baseline  MFU {mfu:.2f} of {prec} matmul{extra}"
            )


if __name__ == "__main__":
    main()
