#!/usr/bin/env bash
# The study's grid at its exact budget on one GPU, as one job, and the MFU of `base` in bf16.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # from the repository root, on a machine with one CUDA GPU
#
# 1. Records the card (nvidia-smi), torch and CUDA versions.
# 2. Builds the built-in corpus (20,000 stories) in a fresh store and runs `curate sweep` with the study's
#    grid: sizes 0.25,0.5,1 x rates 0,0.25,0.5,0.75,1 = 15 cells, one seed, preset `paper` (1,000 steps,
#    4,096 tokens a step), vocabulary 8,192, `--parallel auto` (on CUDA: the 15 runs as one ensemble
#    sized to memory, bf16 autocast as `dtype=auto` gives on CUDA), evaluation and report included.
#    Records the wall time of the whole job and of its training, and the runs' tokens/s.
# 3. Trains `base` (12 x 12 x 768, context 1024, batch 32) for 30 steps in bf16 (fused AdamW, compile on)
#    and reports tokens/s and MFU against the card's measured bf16 matmul rate (best of 8 8192^3 matmuls)
#    and against the vendor's dense bf16 peak where the card is known.
#
# Everything lands in OUT_DIR (default: gpu_check_out/): gpu_check.json and the logs. It needs the package's
# dependencies importable by $PYTHON (default: .venv/bin/python if present, else python3) with a CUDA torch;
# it installs nothing. It fails fast, with one line, when no CUDA device is visible. Not part of CI.
set -euo pipefail

OUT="${1:-gpu_check_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=true

"$PY" - <<'EOF' || { echo "gpu_check: no CUDA device visible to torch; run this on a GPU machine" >&2; exit 2; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
EOF

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/card.txt" 2>/dev/null || true
STORE="$OUT/store"
rm -rf "$STORE"
CURATE=("$PY" -c "import sys; from datadiet.cli import app; sys.argv[0] = 'curate'; app()")
"$PY" -c "import datadiet.cli" 2>/dev/null || { echo "gpu_check: datadiet is not importable by $PY" >&2; exit 2; }

start=$(date +%s.%N)
"${CURATE[@]}" corpus --stories 20000 --store "$STORE" --json > "$OUT/corpus.json"
TRAIN=$("$PY" -c "import json; print(json.load(open('$OUT/corpus.json'))['train']['ref'])")
VAL=$("$PY" -c "import json; print(json.load(open('$OUT/corpus.json'))['val']['ref'])")
sweep_start=$(date +%s.%N)
"${CURATE[@]}" sweep --base "$TRAIN" --val "$VAL" --sizes 0.25,0.5,1 --rates 0,0.25,0.5,0.75,1 --seeds 0 \
  --preset paper --steps 1000 --vocab 8192 --parallel auto --name gpucheck --store "$STORE" --json \
  > "$OUT/sweep.json" 2> "$OUT/sweep.log"
end=$(date +%s.%N)

"$PY" - "$OUT" "$start" "$sweep_start" "$end" <<'EOF'
import json, math, sys, time
from pathlib import Path

import torch

from datadiet.store import Store
from datadiet.train.config import resolve_config
from datadiet.train.model import GPT

out, start, sweep_start, end = Path(sys.argv[1]), *map(float, sys.argv[2:])
store = Store(out / "store")
runs = [d for d in store.all("runs") if d.name.startswith("gpucheck")]
rates = [float(d.manifest.stats["train"]["tokens_per_s"]) for d in runs]
train_s = [float(d.manifest.stats["train"]["wall_time_s"]) for d in runs]

# MFU of `base` in bf16: 30 steps of the trainer's own step (compile, fused AdamW), median of the last 20.
dev = torch.device("cuda")
n = 8192
a, b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
for _ in range(3):
    a @ b
peak = 0.0
for _ in range(8):
    torch.cuda.synchronize(); t = time.perf_counter(); a @ b; torch.cuda.synchronize()
    peak = max(peak, 2 * n**3 / (time.perf_counter() - t))
model_cfg, cfg = resolve_config("base", 8192, {"steps": "30", "dtype": "'bfloat16'", "compile": "True"})
model = GPT(model_cfg).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
step = torch.compile(model)
times = []
for i in range(cfg.steps):
    x = torch.randint(0, 8192, (cfg.batch_size, cfg.block_size), device=dev)
    torch.cuda.synchronize(); t = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = step(x, x)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize(); times.append(time.perf_counter() - t)
tok_s = cfg.batch_size * cfg.block_size / sorted(times[10:])[len(times[10:]) // 2]
flops = model.flops_per_token() * tok_s
name = torch.cuda.get_device_name()
VENDOR_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "L40S": 362e12}
vendor = next((v for k, v in VENDOR_BF16.items() if k in name), None)
result = {
    "card": name,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "study_grid": {
        "cells": 15, "steps": 1000, "preset": "paper", "runs_published": len(runs),
        "wall_s_total_including_corpus": end - start, "wall_s_sweep": end - sweep_start,
        "tokens_per_s_per_run_median": sorted(rates)[len(rates) // 2] if rates else None,
        "tokens_per_s_aggregate": 15 * 1000 * 4096 / max(train_s) if train_s else None,
    },
    "base_bf16": {
        "tokens_per_s": tok_s, "measured_bf16_matmul_flops": peak, "mfu_vs_measured": flops / peak,
        "vendor_bf16_peak": vendor, "mfu_vs_vendor": flops / vendor if vendor else None,
    },
}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
EOF
