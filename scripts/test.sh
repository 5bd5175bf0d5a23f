#!/usr/bin/env bash
# The whole test suite, from a clean checkout: makes .venv if needed, installs the CPU torch pin
# first (an unpinned torch would pull a multi-GB CUDA build), then lint, type check and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,ray,hf,tensorboard,transformers]'
echo "== ruff"
.venv/bin/ruff check src tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -q "$@"
