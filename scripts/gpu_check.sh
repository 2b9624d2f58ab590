#!/usr/bin/env bash
# The GPU check: one ~9-minute call on a GPU host (offline or not; see docs/BENCHMARKS.md, "GPU").
# Proves and times the CUDA path; every result lands in $OUT (8 files at most come back).
#
#   a host that reaches the package index:  bash scripts/setup.sh && PATH=.venv/bin:$PATH \
#                                           bash scripts/gpu_check.sh
#   an offline host: here, once:  bash scripts/offline_wheels.sh   (wheels into .whl/)
#                    on the host: bash scripts/gpu_check.sh   (carrying .whl)
#
# Stages, each under its own time limit, in order of value; a failing stage is recorded
# (rc in summary.txt) and the next one still runs:
#   setup     nvidia-smi, the carried wheels, imports and versions
#   graph     scripts/cuda_graph_check.py: the CUDA-graphed update learns as the eager one
#   learner   mario bench learner (bf16 on/off, CUDA graph on/off), batch 32..512
#   train     mario bench train --preset fast-1-1 --num-envs 14: steps/s per phase, the
#             ratio to 14 x raw frames/s / frame skip, and the bottleneck of each phase
#   segment1  mario train --preset fast-1-1, stopped by SIGTERM (the trainer saves)
#   resume    scripts/resume_check.py: CUDA RNG, optimizer, counters, replay restored
#   segment2  mario train --resume RUN on the GPU, stopped by SIGTERM again
#   eval      mario eval RUN --episodes 10 --json, mario info RUN
#   compile   mario bench learner --compile on (last: compilation time is unknown)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu-check}
run=runs/gpu-fast-1-1
budget=${GPU_CHECK_SECONDS:-540}
seg1=${SEGMENT1_SECONDS:-150}
seg2=${SEGMENT2_SECONDS:-45}
skip=" ${GPU_CHECK_SKIP:-} "  # stage names to leave out, e.g. GPU_CHECK_SKIP="compile"
device=${GPU_CHECK_DEVICE:-cuda}  # cpu: a dry run of this script on a machine without a GPU
envs=${GPU_CHECK_ENVS:-14}
mkdir -p "$out" runs
rm -rf "$run"
start=$(date +%s)
exec > >(tee -a "$out/gpu.log") 2>&1
export MARIO_NO_PROGRESS=1 WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mario() { python3 -m mario.cli "$@"; }

# stage NAME LIMIT CMD...: run CMD under LIMIT seconds (SIGTERM, then SIGKILL 20 s later),
# never past the whole budget; record its status and time.
stage() {
  local name=$1 limit=$2 left t0 rc
  shift 2
  if [[ $skip == *" $name "* ]]; then
    echo "$name rc=skipped-by-request" >>"$out/summary.txt"
    return 0
  fi
  left=$((budget - ($(date +%s) - start) - 15))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "=== $name: skipped, no time left"
    echo "$name rc=skipped" >>"$out/summary.txt"
    return 1
  fi
  echo "=== $name (limit ${limit} s) at $(($(date +%s) - start)) s"
  t0=$(date +%s)
  timeout -k 20 -s TERM "$limit" "$@"
  rc=$?
  echo "=== $name: rc=$rc in $(($(date +%s) - t0)) s"
  echo "$name rc=$rc seconds=$(($(date +%s) - t0))" >>"$out/summary.txt"
  return $rc
}

setup() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  fi
  python3 - <<'PY'
import importlib, json, platform
import torch
out = {"python": platform.python_version(), "torch": torch.__version__,
       "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
for name in ("numpy", "gymnasium", "nes_py", "gym_super_mario_bros", "wandb",
             "av", "cv2", "mario"):
    module = importlib.import_module(name)
    out[name] = getattr(module, "__version__", "ok")
print(json.dumps(out))
PY
}

learner() {
  mario bench learner --device $device --compile off --batch-sizes ${BATCH_SIZES:-32 64 128 256 512} --json \
    >"$out/learner.json" && python3 -m json.tool "$out/learner.json"
}

train_bench() {
  mario bench train --device $device --preset fast-1-1 --num-envs $envs --seconds 8 --repeats 3 \
    --json >"$out/bench_train.json" && python3 - "$out/bench_train.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keys = ("raw_frames_per_s", "vector_steps_per_s", "env_limit_steps_per_s", "env_limit_ratio",
        "collect_steps_per_s", "act_steps_per_s", "train_steps_per_s", "updates_per_s",
        "learner_limit_steps_per_s", "bottleneck")
print(json.dumps({k: r.get(k) for k in keys}, indent=1))
for name, phase in r["phases"].items():
    print(name, phase["steps_per_s"], phase["bottleneck"], phase["share"])
PY
}

segment() {  # segment SECONDS ARGS...: train, then SIGTERM after SECONDS (the trainer saves)
  local seconds=$1 rc
  shift
  # timeout signals the trainer's whole process group: only the trainer saves
  timeout -s TERM "$seconds" python3 -m mario.cli train "$@" --wandb-mode offline 2>&1 |
    tee -a "$run.log"
  rc=${PIPESTATUS[0]}
  echo "train exit status $rc (124: stopped by the timeout's SIGTERM, as planned)"
  mario info "$run" --compact | tee -a "$out/info.jsonl"
  [ "$rc" = 124 ] || [ "$rc" = 0 ]
}

evaluate() {
  mario eval "$run" --episodes 10 --max-steps 1000 --seed 1000 --json | tee "$out/eval.json"
}

compile_bench() {
  mario bench learner --device $device --compile on --batch-sizes 64 256 --json \
    >"$out/learner_compile.json" && python3 -m json.tool "$out/learner_compile.json"
}

pack() {  # the run's small files and the logs, in one archive (8 files come back at most)
  cp "$run/curves.png" "$out/" 2>/dev/null
  python3 -m json.tool "$out/learner_compile.json" >/dev/null 2>&1 &&
    python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
a, b = (json.load(open(f"{out}/{n}.json")) for n in ("learner", "learner_compile"))
a["rows"] += b["rows"]
json.dump(a, open(f"{out}/learner.json", "w"))
PY
  rm -f "$out/learner_compile.json"
  tar -czf "$out/run.tar.gz" --exclude=checkpoints --exclude=wandb "$run" "$run.log" \
    "$out/resume_check.json" "$out/graph_check.json" 2>/dev/null
  rm -f "$out/resume_check.json" "$out/graph_check.json"
  ls -la "$out"
}

export PYTHONPATH=/tmp/site:$PWD out run device envs
export -f mario setup learner train_bench segment evaluate compile_bench
stage setup 90 bash -c setup || { echo "setup failed: nothing else can run"; exit 1; }
stage graph 60 python3 scripts/cuda_graph_check.py --json "$out/graph_check.json"
stage learner 90 bash -c learner
stage train 100 bash -c train_bench
stage segment1 $((seg1 + 40)) bash -c "segment $seg1 --preset fast-1-1 --run-dir $run --device $device"
stage resume 60 python3 scripts/resume_check.py "$run" --json "$out/resume_check.json"
stage segment2 $((seg2 + 40)) bash -c "segment $seg2 --resume $run"
stage eval 75 bash -c evaluate
stage compile 150 bash -c compile_bench
pack
cat "$out/summary.txt"
echo "gpu_check took $(($(date +%s) - start)) s"
