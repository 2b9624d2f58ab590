#!/usr/bin/env bash
# CI's Python 3.13 leg: the game on the maintained backend (nes-py 9 / gym-super-mario-bros 9,
# which need Python >= 3.13). Builds .venv-py313 WITHOUT torch (for cp313 the index's torch
# is the ~4 GB CUDA build, and these tests don't use it): mario itself with --no-deps, then
# only the game's dependencies as pyproject.toml declares them (markers and all), binary
# wheels only, with every C/C++ compiler on the PATH replaced by a shim that records being
# called: the install must call none. Then runs the torch-free tests: env, wrappers, parity,
# and the archive's env-level tests (save-state starts, which use nes-py 9's snapshots).
# PYTHON313 chooses the interpreter (default: python3.13, else pyenv's 3.13.0). Extra args go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON313:-}
if [ -z "$PY" ]; then
  for candidate in python3.13 "$HOME/.pyenv/versions/3.13.0/bin/python3"; do
    if "$candidate" -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null; then
      PY=$candidate
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "test_py313.sh: no Python 3.13 found (install one, or set PYTHON313)" >&2
  exit 1
fi
VENV=.venv-py313
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi

shims=$(mktemp -d)
trap 'rm -rf "$shims"' EXIT
for cc in cc gcc g++ c++ clang clang++; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/called"\nexit 1\n' "$cc" "$shims" > "$shims/$cc"
  chmod +x "$shims/$cc"
done
# The game's requirements and the test runner's, read from pyproject.toml.
"$VENV/bin/python" - > "$shims/requirements.txt" <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = {"gym-super-mario-bros", "nes-py", "gymnasium", "numpy", "opencv-python-headless",
          "pyyaml", "pytest", "pytest-timeout"}
for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
    if re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0] in wanted:
        print(requirement)
PY
export PATH="$shims:$PATH" CC="$shims/cc" CXX="$shims/c++"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --only-binary=:all: -r "$shims/requirements.txt"
"$VENV/bin/python" -m pip install -q --no-deps -e .
if [ -s "$shims/called" ]; then
  echo "test_py313.sh: the install called a compiler:" >&2
  cat "$shims/called" >&2
  exit 1
fi
echo "python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'):" \
  "installed without a compiler; $("$VENV/bin/mario" --version)"
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "test_py313.sh: torch is installed in $VENV; this leg must run without it" >&2
  exit 1
fi
export WANDB_MODE=offline WANDB_SILENT=true MPLBACKEND=Agg
"$VENV/bin/python" -m pytest tests/test_env.py tests/test_wrappers.py tests/test_parity.py \
  tests/test_archive.py -k "not training_with_the_archive and not options_are_validated" "$@"
