#!/usr/bin/env bash
# Gather, into ./.whl, the wheels that the project needs on an offline GPU host whose image
# already has Python 3.12, torch, numpy, opencv-python-headless and the other packages listed
# in offline_host_packages.txt beside this script, and which reaches no package index.
# Run from the project root on a machine that reaches the index; then copy `.whl` over.
#
#   bash scripts/offline_wheels.sh            # resolve `.` (the project) for cp312
#   bash scripts/offline_wheels.sh -r req.txt # or a requirements file
#   SKIP="imageio-ffmpeg av" bash scripts/offline_wheels.sh   # leave some out (size limit 64 MiB)
#
# On the GPU host, install them before running the project:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-.}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py312=${PY312:-}
pyenv_py=$(command -v pyenv >/dev/null && ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || true)
for c in python3.12 "$pyenv_py"; do
  [ -z "$py312" ] && [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && py312=$c
done
[ -n "$py312" ] || { echo "no Python 3.12 found: set PY312=/path/to/python3.12"; exit 2; }
"$py312" -m venv "$work/venv"
pip="$work/venv/bin/pip"
# what a fresh Python 3.12 would install for the target
if [ "$target" = "-r" ]; then spec=(-r "$2"); else spec=("$target"); fi
"$pip" install -q --dry-run --ignore-installed --report "$work/report.json" "${spec[@]}" 2>/dev/null
# drop what the GPU image already has (names normalised), and the project itself
"$work/venv/bin/python" - "$work/report.json" "$here/offline_host_packages.txt" > "$work/need.txt" <<'PY'
import json, os, re, sys
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
have = {norm(l.strip()) for l in open(sys.argv[2]) if l.strip()}
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]; name = norm(meta["name"])
    skip = {norm(x) for x in os.environ.get("SKIP", "").split()}
    if name in have or name in skip or name.startswith("nvidia-") or item.get("is_direct"):
        continue
    print(f'{meta["name"]}=={meta["version"]}')
PY
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
while read -r req; do
  name=${req%%==*}
  if ! "$pip" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$req" 2>/dev/null; then
    # no wheel on the index (nes-py ships only a source archive): build one here for cp312
    "$pip" wheel -q --no-deps -w .whl "$req"
  fi
  echo "  $req"
done < "$work/need.txt"
du -sh .whl
