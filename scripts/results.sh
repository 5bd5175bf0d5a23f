#!/usr/bin/env bash
# docs/results.md: the study's 3 × 5 grid on real TinyStories text, 3 data seeds × 2 training seeds (issue 13).
#
#   bash scripts/results.sh [STORE] [STEPS]     # default store ./results-store, 120 steps
#
# Reads ../shared/data (or $DATADIET_SHARED_DATA); never copies it into the project. 90 `paper` runs;
# `curate sweep ... --dry-run` with the same options first prints the estimate for this machine.
# The sweep's report and figures land in docs/results/; docs/results.md quotes only their numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATADIET_SHARED_DATA:-../shared/data}"
STORE="${1:-results-store}"
STEPS="${2:-120}"
CURATE="${CURATE:-.venv/bin/curate}"
export DATADIET_STORE="$STORE"

$CURATE ingest "$DATA/tinystories-train-1.txt" "$DATA/tinystories-train-2.txt" "$DATA/tinystories-train-3.txt" \
  --name ts -q
$CURATE ingest "$DATA/tinystories-valid-1.txt" --name ts-val-all -q
# 250 of the 1,000 validation stories keep the final evaluation of 90 runs within minutes.
$CURATE subset ts-val-all --docs 250 --seed 0 --name ts-val -q
# eval_tokens caps the intermediate evaluations only; the final one scores the whole validation set.
$CURATE sweep --base ts --val ts-val --dedupe --preset paper --data-seeds 0,1,2 --seeds 0,1 \
  --steps "$STEPS" --set eval_tokens=16384 --name study --out docs/results

# Every run's row beside the page, so each number in docs/results.md can be recomputed from it.
"${PY:-.venv/bin/python}" - "$STORE" <<'PYEOF'
import sys
import polars as pl
from datadiet.store import Store

sweep = Store(sys.argv[1]).resolve("study", "sweeps")
runs = pl.read_parquet(sweep.file("all_runs.parquet"))
runs.select([c for c in runs.columns if runs[c].dtype != pl.Object]).write_csv("docs/results/all_runs.csv")
print(f"wrote docs/results/all_runs.csv ({runs.height} runs) from sweep {sweep.ref}")
PYEOF
