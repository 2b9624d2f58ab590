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
# (pip byte-compiles what it installs: with PYTHONDONTWRITEBYTECODE set, as on many CI and
# container hosts, --no-compile would make every process compile torch again: measured, the
# suite's CPU went from 669 s to 953 s)
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
