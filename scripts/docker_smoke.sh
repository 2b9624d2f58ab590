#!/usr/bin/env bash
# Smoke test of the Docker image, for CI and for a development machine without a Docker engine:
# builds it with rootful podman against a local Debian base image and a CPU torch wheel, then
# checks what a long GPU training job relies on:
#   - the container runs as a non-root user (also an arbitrary host uid) and writes its files
#     into the bind-mounted host folder with that uid;
#   - `stop` delivers SIGTERM to the trainer, which saves a complete checkpoint and exits 0
#     within the grace period (not 137 = killed);
#   - starting again on the same folder resumes the run (step counter continues, same W&B run);
#   - a restart on a finished run writes nothing and waits for the stop (--idle-when-done)
#     instead of exiting, so `restart: unless-stopped` does not loop;
#   - `mario replay` writes an MP4 to the host folder that decodes.
# Prints PASS/FAIL per check and a timing summary; exits non-zero when a check fails.
#
#   sudo scripts/docker_smoke.sh            # as root (podman rootful, debootstrap)
#
# Environment (all optional):
#   SMOKE_IMAGE        image tag to build and test (localhost/mario:ci)
#   SMOKE_SUITE        Debian release of the base: bookworm (Python 3.11, the classic game
#                      backend, nes-py compiled; the default: the machines hold a CPU torch
#                      wheel for cp311) or trixie (Python 3.13, nes-py 9 wheels, no compiler:
#                      the image's default base; no cp313 CPU torch wheel here, so this needs
#                      SMOKE_TORCH_WHEEL or SMOKE_TORCH_INDEX=1)
#   SMOKE_BASE         local base image tag, made by scripts/docker_base_image.sh when missing
#                      (localhost/mario-debian:$SMOKE_SUITE; kept between runs)
#   SMOKE_TORCH_WHEEL  the CPU torch wheel to build with (default: found in pip's find-links)
#   SMOKE_TORCH_INDEX=1  without a wheel, take torch from the package index (its CUDA build,
#                      several GB)
#   SMOKE_UID/GID      host uid/gid the containers run as (4321, not in the image's passwd)
#   SMOKE_KEEP=1       keep the temporary folder (run folder, logs) after the test
#   SMOKE_NO_INSTALL=1 do not apt-get install podman/runc/debootstrap when they are missing
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

IMAGE="${SMOKE_IMAGE:-localhost/mario:ci}"
SUITE="${SMOKE_SUITE:-bookworm}"
BASE="${SMOKE_BASE:-localhost/mario-debian:$SUITE}"
case "$SUITE" in
    bookworm) PYTAG=cp311 BACKEND=classic ;;
    trixie) PYTAG=cp313 BACKEND=upstream ;;
    *) echo "SMOKE_SUITE must be bookworm or trixie, got $SUITE" >&2; exit 2 ;;
esac
RUN_UID="${SMOKE_UID:-4321}"
RUN_GID="${SMOKE_GID:-$RUN_UID}"
STOP_TIMEOUT=10    # podman stop -t: SIGTERM, then SIGKILL after this many seconds
WAIT_LIMIT=300     # seconds to wait for a checkpoint before giving up
# Small budgets: a run that checkpoints every 500 steps and never finishes during the test.
TRAIN_ARGS=(train --run-dir /app/checkpoints/run --resume --preset quickstart --total-steps 3000
    --burn-in 500 --checkpoint-every 500 --num-envs 2 --wandb-mode offline --device cpu)

T0=$EPOCHREALTIME
failures=0
passes=0
timings=()
ID="$$"
CONTAINERS=("mario-smoke-sig-$ID" "mario-smoke-train1-$ID" "mario-smoke-train2-$ID"
    "mario-smoke-done-$ID")
WORK="$(mktemp -d /tmp/mario-docker-smoke.XXXXXX)"
OUT="$WORK/checkpoints"   # bind-mounted as /app/checkpoints

# ---------------------------------------------------------------------------------- helpers
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
phase_start() { PHASE_T=$(now); echo; echo "== $1"; }
phase_end() { timings+=("$(printf '%-28s %7ss' "$1" "$(elapsed "$PHASE_T")")"); }
pass() { passes=$((passes + 1)); echo "PASS: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }
check() { # check "description" command...   (PASS when the command succeeds)
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
die() {
    fail "$*"
    exit 1
}

cleanup() {
    local rc=$?
    for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
    if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    echo
    echo "== timings"
    printf '%s\n' "${timings[@]}"
    printf '%-28s %7ss\n' "total" "$(elapsed "$T0")"
    echo "== $passes passed, $failures failed"
    if ((failures > 0)) || ((rc != 0)); then
        echo "DOCKER SMOKE: FAIL"
        exit 1
    fi
    echo "DOCKER SMOKE: PASS"
}
trap cleanup EXIT

# `mario` in a throwaway container with the run folder mounted, as the test uid.
mario_in() { podman run --rm --user "$RUN_UID:$RUN_GID" -v "$OUT:/app/checkpoints" "$IMAGE" "$@"; }
# Python in the image (json/yaml parsing without relying on the host's Python packages).
py_in() { podman run --rm --user "$RUN_UID:$RUN_GID" -v "$OUT:/app/checkpoints" --entrypoint python "$IMAGE" "$@"; }
# info_fields: `mario info` of the run as "STEP WANDB_RUN_ID".
info_fields() {
    mario_in info /app/checkpoints/run --compact >"$WORK/info.json" || return 1
    podman run --rm -i --entrypoint python "$IMAGE" \
        -c 'import json, sys; d = json.load(sys.stdin); print(d["step"], d["wandb_run_id"])' \
        <"$WORK/info.json"
}
# Steps of the complete checkpoints (MANIFEST.json present) in the run folder, ascending.
complete_steps() {
    local m
    for m in "$OUT"/run/checkpoints/step-*/MANIFEST.json; do
        [[ -f "$m" ]] || continue
        m="${m%/MANIFEST.json}"
        echo $((10#${m##*step-}))
    done | sort -n
}
newest_step() { complete_steps | tail -n 1; }
running() { [[ "$(podman inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }
# wait_for_checkpoint CONTAINER MIN_STEP: until a complete checkpoint with step > MIN_STEP exists.
wait_for_checkpoint() {
    local c="$1" min="$2" t
    t=$(now)
    while :; do
        local s
        s="$(newest_step)"
        if [[ -n "$s" ]] && ((s > min)); then return 0; fi
        if ! running "$c"; then
            echo "container $c exited ($(podman inspect --format '{{.State.ExitCode}}' "$c")):"
            podman logs "$c" 2>&1 | tail -n 30
            return 1
        fi
        if (($(awk -v a="$t" -v b="$(now)" 'BEGIN { print int(b - a) }') > WAIT_LIMIT)); then
            echo "no checkpoint after step $min within ${WAIT_LIMIT}s; log tail:"
            podman logs "$c" 2>&1 | tail -n 30
            return 1
        fi
        sleep 1
    done
}
# stop_and_check CONTAINER LABEL: SIGTERM via podman stop; exit 0, in time, new checkpoint.
stop_and_check() {
    local c="$1" label="$2" before t took code after saved
    before="$(newest_step)"
    touch "$WORK/stop-mark"
    sleep 0.1 # file times: anything written after the mark is newer than it
    t=$(now)
    podman stop -t "$STOP_TIMEOUT" "$c" >/dev/null
    took="$(elapsed "$t")"
    code="$(podman inspect --format '{{.State.ExitCode}}' "$c")"
    after="$(newest_step)"
    saved="$(find "$OUT/run/checkpoints" -name MANIFEST.json -newer "$WORK/stop-mark" | sort | tail -n 1)"
    echo "$label: stopped in ${took}s, exit code $code, newest checkpoint $before -> $after"
    check "$label: trainer exited 0 on SIGTERM (not killed: 137)" test "$code" = 0
    check "$label: stopped within the ${STOP_TIMEOUT}s grace period (${took}s)" \
        awk -v x="$took" -v l="$STOP_TIMEOUT" 'BEGIN { exit !(x < l) }'
    check "$label: a complete checkpoint was saved on SIGTERM (${saved#"$OUT"/})" \
        test -n "$saved" -a "${after:-0}" -ge "${before:-0}"
    if [[ "$code" != 0 ]]; then podman logs "$c" 2>&1 | tail -n 30; fi
}

# ------------------------------------------------------------------------------------ setup
phase_start "setup"
[[ $(id -u) == 0 ]] || die "run as root (rootful podman, debootstrap)"
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    [[ "${SMOKE_NO_INSTALL:-0}" != 1 ]] || die "missing: ${missing[*]}"
    echo "installing podman runc debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq podman runc debootstrap >/dev/null
fi
# crun fails here ("cgroups in hybrid mode"); the default rlimits are refused: use runc and the
# machine's own limits, without editing files under /etc.
if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited ]] && nofile=1048576
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$WORK/containers.conf"
fi
podman --version
phase_end "setup (install, config)"

# ------------------------------------------------------------------------------- base image
phase_start "base image $BASE"
SUITE="$SUITE" "$ROOT/scripts/docker_base_image.sh" "$BASE" || die "base image"
phase_end "base image"

# ------------------------------------------------------------------------------------ build
phase_start "build $IMAGE"
torch_version="$(sed -nE 's/^[[:space:]]*torch[[:space:]]*==[[:space:]]*([^[:space:];#]+).*/\1/p' constraints.txt | head -n 1)"
torch_version="${torch_version:-2.13.0}"
wheel="${SMOKE_TORCH_WHEEL:-}"
if [[ -z "$wheel" ]]; then
    links="${PIP_FIND_LINKS:-} $(pip config get global.find-links 2>/dev/null || true) /opt/wheels"
    for d in $links; do
        d="${d#file://}"
        for w in "$d"/torch-"$torch_version"+cpu-$PYTAG-*.whl "$d"/torch-"$torch_version"-$PYTAG-*.whl; do
            [[ -f "$w" ]] && wheel="$w" && break 2
        done
    done
fi
if [[ -n "$wheel" && -f "$wheel" ]]; then
    echo "torch wheel: $wheel"
    # docker/wheels/ is bind-mounted into the torch install step (git-ignored); a hard link is free.
    find docker/wheels -maxdepth 1 -name 'torch-*.whl' ! -name "$(basename "$wheel")" -delete
    [[ -f "docker/wheels/$(basename "$wheel")" ]] ||
        ln -f "$wheel" docker/wheels/ 2>/dev/null || cp "$wheel" docker/wheels/
elif [[ "${SMOKE_TORCH_INDEX:-0}" == 1 ]]; then
    echo "torch: torch==$torch_version from the package index (no $PYTAG wheel here)"
    find docker/wheels -maxdepth 1 -name 'torch-*.whl' -delete
else
    die "no CPU wheel torch-$torch_version ($PYTAG) in pip's find-links; set SMOKE_TORCH_WHEEL or SMOKE_TORCH_INDEX=1"
fi
if ! podman build --format docker -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_SPEC="torch==$torch_version" \
    . >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log"
    die "podman build (log above)"
fi
pass "image builds"
version="$(podman run --rm "$IMAGE" --version)"
check "the image runs the $BACKEND game backend ($version)" grep -q "game backend $BACKEND" <<<"$version"
if [[ "$SUITE" == trixie ]]; then
    check "built without a compiler (no g++ installed in any stage)" \
        bash -c '! grep -qE "Setting up g\+\+|Unpacking g\+\+|Building wheel for nes" "$1"' _ "$WORK/build.log"
fi
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
echo "image size: $(numfmt --to=iec "$size") ($size bytes)"
phase_end "build"

# ----------------------------------------------------------------------------- image config
phase_start "image configuration"
cfg() { podman image inspect --format "$1" "$IMAGE"; }
user="$(cfg '{{.Config.User}}')"
check "image USER is non-root ($user)" test -n "$user" -a "${user%%:*}" != 0 -a "${user%%:*}" != root
check "ENTRYPOINT is exec form with mario ($(cfg '{{json .Config.Entrypoint}}'))" \
    grep -q '"mario"' <<<"$(cfg '{{json .Config.Entrypoint}}')"
check "default CMD trains with --resume --idle-when-done ($(cfg '{{json .Config.Cmd}}'))" \
    grep -q -- '"--resume", *"--idle-when-done"' <<<"$(cfg '{{json .Config.Cmd}}')"
check "STOPSIGNAL is SIGTERM" test "$(cfg '{{.Config.StopSignal}}')" = SIGTERM
check "no W&B key baked into the image" \
    test -z "$(cfg '{{range .Config.Env}}{{println .}}{{end}}' | grep -i '^WANDB_API_KEY=' || true)"
check "/app/checkpoints is a volume" grep -q /app/checkpoints <<<"$(cfg '{{json .Config.Volumes}}')"
check "default user inside is uid $(podman run --rm --entrypoint id "$IMAGE" -u) (not 0)" \
    test "$(podman run --rm --entrypoint id "$IMAGE" -u)" != 0
check "mario --help runs in the container" podman run --rm "$IMAGE" --help >/dev/null
# docker-compose.yml: parsed with the image's PyYAML, the settings long runs depend on.
check "docker-compose.yml: train service (GPU, volume, resume, restart, grace), replay tool" \
    podman run --rm -v "$ROOT/docker-compose.yml:/compose.yml:ro" --entrypoint python "$IMAGE" -c '
import yaml
c = yaml.safe_load(open("/compose.yml"))
t, r = c["services"]["train"], c["services"]["replay"]
dev = t["deploy"]["resources"]["reservations"]["devices"][0]
assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"], dev
assert any(str(v).endswith(":/app/checkpoints") for v in t["volumes"]), t["volumes"]
assert "--resume" in t["command"] and "--idle-when-done" in t["command"], t["command"]
assert t["restart"] == "unless-stopped" and t["stop_grace_period"], t
assert "WANDB_API_KEY" in t["environment"], t["environment"]
assert "tools" in r["profiles"] and r["command"][0] == "replay", r
'
phase_end "image checks"

# ----------------------------------------------------------------------- signal delivery
# A command without its own SIGTERM handler must still stop at once (tini is PID 1, not Python,
# which as PID 1 would ignore SIGTERM and be SIGKILLed after the timeout).
phase_start "signal delivery (mario bench env)"
c="${CONTAINERS[0]}"
podman run -d --name "$c" "$IMAGE" bench env --seconds 120 >/dev/null
sleep 4
t=$(now)
podman stop -t "$STOP_TIMEOUT" "$c" >/dev/null
took="$(elapsed "$t")"
code="$(podman inspect --format '{{.State.ExitCode}}' "$c")"
check "bench stopped by SIGTERM in ${took}s, exit $code (not 137 after the timeout)" \
    awk -v x="$took" -v code="$code" 'BEGIN { exit !(x < 5 && code != 137) }'
podman rm -f "$c" >/dev/null
phase_end "signal delivery"

# ------------------------------------------------------------------- train, stop (SIGTERM)
phase_start "train until the first checkpoint, then stop"
mkdir -p "$OUT"
chown "$RUN_UID:$RUN_GID" "$OUT"
c="${CONTAINERS[1]}"
podman run -d --name "$c" --user "$RUN_UID:$RUN_GID" -v "$OUT:/app/checkpoints" "$IMAGE" \
    "${TRAIN_ARGS[@]}" >/dev/null
uid_inside="$(podman exec "$c" id -u 2>&1)" || uid_inside="? ($uid_inside)"
check "training container runs as uid $uid_inside (the host uid $RUN_UID, not 0)" \
    test "$uid_inside" = "$RUN_UID"
wait_for_checkpoint "$c" 0 || die "first checkpoint"
echo "first checkpoint: step $(newest_step) after $(elapsed "$PHASE_T")s"
sleep 2 # mid-interval: the SIGTERM checkpoint then differs from the periodic one
stop_and_check "$c" "first stop"
info="$(info_fields)" || die "mario info after the first stop"
read -r step1 wandb1 <<<"$info"
echo "after the first stop: step $step1, W&B run $wandb1"
phase_end "train + stop 1"

# -------------------------------------------------------------------------- restart: resume
phase_start "start again on the same folder (resume), stop"
c2="${CONTAINERS[2]}"
steps_before="$(complete_steps | tr '\n' ' ')"
podman run -d --name "$c2" --user "$RUN_UID:$RUN_GID" -v "$OUT:/app/checkpoints" "$IMAGE" \
    "${TRAIN_ARGS[@]}" >/dev/null
wait_for_checkpoint "$c2" "$step1" || die "checkpoint after resuming"
sleep 2
stop_and_check "$c2" "second stop"
info="$(info_fields)" || die "mario info after the second stop"
read -r step2 wandb2 <<<"$info"
echo "after the second stop: step $step2, W&B run $wandb2"
check "resumed: step counter continued ($step1 -> $step2)" test "$step2" -gt "$step1"
new_steps="$(comm -13 <(tr ' ' '\n' <<<"$steps_before" | sort) <(complete_steps | sort) | sort -n | tr '\n' ' ')"
check "resumed, not restarted: every new checkpoint is past step $step1 ($new_steps)" \
    awk -v min="$step1" -v s="$new_steps" 'BEGIN { n = split(s, a, " "); if (!n) exit 1;
        for (i = 1; i <= n; i++) if (a[i] + 0 <= min) exit 1 }'
check "the second start's log says it resumed from step $step1" \
    grep -qiE "resum.* $step1\b" <<<"$(podman logs "$c2" 2>&1)"
check "same W&B run id after resuming ($wandb1 = $wandb2)" \
    test -n "$wandb1" -a "$wandb1" = "$wandb2"
offline_dirs=("$OUT"/run/wandb/offline-run-*)
other="$(printf '%s\n' "${offline_dirs[@]}" | grep -v -- "-$wandb1\$" || true)"
check "W&B offline folders (${#offline_dirs[@]}, one per start) all belong to run $wandb1" \
    test "${#offline_dirs[@]}" -ge 2 -a -z "$other"
phase_end "resume + stop 2"

# ---------------------------------------------------------------- restart of a finished run
phase_start "restart of a finished run (--idle-when-done)"
c3="${CONTAINERS[3]}"
tree() { find "$OUT/run" -type f ! -name .lock -printf '%P %s %T@\n' | sort | md5sum; }
before_tree="$(tree)"
podman run -d --name "$c3" --user "$RUN_UID:$RUN_GID" -v "$OUT:/app/checkpoints" "$IMAGE" \
    train --run-dir /app/checkpoints/run --resume --idle-when-done --total-steps "$step2" >/dev/null
t=$(now)
until grep -q "waiting for a stop signal" <<<"$(podman logs "$c3" 2>&1)" || ! running "$c3" ||
    (($(awk -v a="$t" -v b="$(now)" 'BEGIN { print int(b - a) }') > 60)); do sleep 0.5; done
sleep 2
check "a finished run is recognised ($(podman logs "$c3" 2>&1 | grep -m1 'already complete'))" \
    grep -q "run already complete: step $step2" <<<"$(podman logs "$c3" 2>&1)"
check "and the container waits instead of exiting (nothing for the restart policy to loop on)" \
    running "$c3"
check "nothing in the run folder was written" test "$(tree)" = "$before_tree"
t=$(now)
podman stop -t "$STOP_TIMEOUT" "$c3" >/dev/null
took="$(elapsed "$t")"
code="$(podman inspect --format '{{.State.ExitCode}}' "$c3")"
check "stop ends it at once (${took}s) with exit 0" \
    awk -v x="$took" -v code="$code" 'BEGIN { exit !(x < 5 && code == 0) }'
phase_end "finished-run restart"

# ---------------------------------------------------------------------------------- replay
phase_start "replay video"
replay_out="$(mario_in replay /app/checkpoints/run --episodes 1 --max-steps 100)" || die "mario replay"
echo "$replay_out"
video="$(grep -E '^/app/checkpoints/.*\.mp4$' <<<"$replay_out" | tail -n 1)" ||
    die "mario replay printed no /app/checkpoints/...mp4 path"
host_video="$OUT/${video#/app/checkpoints/}"
echo "replay: $video -> $host_video"
check "MP4 on the host, non-empty ($(stat -c %s "$host_video" 2>/dev/null || echo 0) bytes)" \
    test -s "$host_video"
frames="$(py_in -c '
import sys, av
with av.open(sys.argv[1]) as container:
    print(sum(1 for _ in container.decode(video=0)))
' "$video" 2>&1 | tail -n 1)"
check "MP4 decodes ($frames frames)" test "${frames:-0}" -gt 0 2>/dev/null
phase_end "replay"

# ------------------------------------------------------------------------------- ownership
wrong="$(find "$OUT" -mindepth 1 \( ! -uid "$RUN_UID" -o ! -gid "$RUN_GID" \) -printf '%u:%g %p\n' | head)"
check "every file in the host folder belongs to $RUN_UID:$RUN_GID${wrong:+ ($wrong)}" test -z "$wrong"
