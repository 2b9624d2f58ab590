#!/usr/bin/env bash
# Create .venv (if missing) and install mario with its dev tools into it.
# torch is pinned by constraints.txt (2.13.0): the CPU wheel where the machine has one,
# the CUDA build of the same release elsewhere. Set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# --no-compile: Python compiles only the modules it imports, on first import (pip would
# byte-compile every file of torch & co.: half the install's CPU time)
.venv/bin/python -m pip install -q --no-compile -c constraints.txt -e ".[dev]"
