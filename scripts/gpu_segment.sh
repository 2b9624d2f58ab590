#!/usr/bin/env bash
# One <= 9-minute segment of the 1-1 GPU run on the offline GPU host (see docs/BENCHMARKS.md).
# Each segment resumes the run in runs/fast-1-1 (git-ignored, so it survives between commands
# while the host is kept); SIGTERM at the end of the segment saves a checkpoint (a real test
# of resume). When the run reaches its total, it evaluates and renders the evidence into $OUT.
#
#   on the host:  bash scripts/gpu_segment.sh [seconds=520]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-520}
run=runs/fast-1-1
out=${OUT:-runs/evidence}
mkdir -p "$run" "$out"
export MARIO_NO_PROGRESS=1 WANDB_MODE=offline PYTHONUNBUFFERED=1
mario() { python -m mario.cli "$@"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
start=$(date +%s)
# timeout sends SIGTERM: the trainer saves and exits 0 (timeout itself then returns 124);
# any other status is a failure and stops the script
rc=0
timeout -s TERM "$seconds" python -m mario.cli train --preset fast-1-1 --run-dir "$run" \
  --resume --wandb-mode offline 2>&1 | tee -a "$run/segments.log" || rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then
  echo "training segment failed with status $rc" >&2
  exit "$rc"
fi
echo "segment wall time: $(( $(date +%s) - start )) s" | tee -a "$run/segments.log"
mario info "$run" --compact | tee "$out/info.json"
step=$(python -c "import json,sys; print(json.load(open('$out/info.json'))['step'])")
total=$(python -c "import yaml; print(yaml.safe_load(open('mario/presets/fast-1-1.yaml'))['total_steps'])")
cp "$run/curves.png" "$run/metrics.jsonl" "$out/" 2>/dev/null || true
if [ "$step" -ge "$total" ]; then
  mario eval "$run" --episodes 10 --json | tee "$out/eval.json"
  mario replay "$run" --gif --out "$out/clear-1-1.gif" --scale 1
fi
