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
# pip byte-compiles every module it installs (torch, Ray, W&B: 51 s of CPU in all, 21 s
# without). Where Python writes its own bytecode, the modules a process imports are compiled
# once, on first import, and the rest never: --no-compile. With PYTHONDONTWRITEBYTECODE set,
# as on many CI and container hosts, nothing would be cached and every process would compile
# torch again (measured: the suite's CPU went from 669 s to 953 s): compile at install.
compile=--no-compile
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
  compile=--compile
fi
.venv/bin/python -m pip install -q "$compile" -c constraints.txt -e ".[dev]"
