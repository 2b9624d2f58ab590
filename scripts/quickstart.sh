#!/usr/bin/env bash
# The main job, from a fresh clone: set up, train a short run on 1-1 (CPU is fine), then
# render the trained agent's replay video, and one of the shipped 1-1 agent clearing the stage
# (trained for 44 minutes with --preset clear-1-1) to compare. Outputs land in
# checkpoints/quickstart-<time>/.
# Extra args go to `mario train` (e.g. --total-steps 20000 --num-envs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
run="checkpoints/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/mario train --preset quickstart --run-dir "$run" --wandb-mode "${WANDB_MODE:-auto}" "$@"
.venv/bin/mario eval "$run" --episodes 3 --max-steps 1000
.venv/bin/mario replay "$run" --overlay --max-steps 1000
.venv/bin/mario replay --pretrained 1-1 --overlay --max-steps 1000 \
  --out "$run/videos/pretrained-1-1.mp4"
echo "run folder: $run"
echo "what to expect: 5,000 agent steps teach walking right; this agent stops at the first pipe"
echo "or goomba. Clearing 1-1 takes ~300k steps (mario train --preset clear-1-1, ~45 min on 2 cores),"
echo "as the shipped agent did: $run/videos/pretrained-1-1.mp4"
