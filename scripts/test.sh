#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the checks: ruff lint + format check, the type checker
# (mypy, over the package), then the whole pytest suite, slow tests included (about 10 minutes
# on 2 cores). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# .venv is this script's own: Python may cache the bytecode of what the tests import there
# (scripts/setup.sh then skips compiling all of torch, Ray and W&B at install: 30 s of CPU)
unset PYTHONDONTWRITEBYTECODE
bash scripts/setup.sh
export WANDB_MODE=offline WANDB_SILENT=true MPLBACKEND=Agg
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
