"""What a run will need against what the machine has, checked before anything starts.

A run that cannot fit should fail in its first second with one line naming the figures, not
after forking 10,000 emulators, at the first checkpoint (disk full) or by the kernel's OOM
killer (exit 137, no message). The estimates are deliberately simple and a little generous;
each raises :class:`~mario.config.ConfigError` (bad input: exit 2).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from mario import algos
from mario.config import MAX_ENVS_PER_CORE, ConfigError, TrainConfig

#: Host memory of the trainer process besides its replay memory (torch, the network, buffers).
TRAINER_BYTES = 1 << 30
#: Host memory of one emulator process (Python, NumPy, the emulator, its pipeline).
ENV_BYTES = 160 << 20
#: Checkpoint files besides state.pt and the replay memory (manifest, JSON, slack).
CHECKPOINT_SLACK_BYTES = 16 << 20


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, or less under a cgroup limit
    (a container's ``--memory``). None when neither can be read."""
    figures = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    figures.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text())
            figures.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(figures) if figures else None


def checkpoint_bytes(cfg: TrainConfig, n_actions: int) -> tuple[int, int]:
    """``(state.pt bytes, buffer bytes)`` of one checkpoint of this run: the network's weights
    and Adam's two moments of its trained ones, float32, and the algorithm's buffer when its
    checkpoints keep it (DQN's replay memory)."""
    spec = algos.get(cfg.algo)
    ctx = cfg.context(n_actions, torch.device("cpu"))
    params = list(spec.network(cfg.algorithm, ctx).parameters())
    weights = sum(p.numel() for p in params)
    trained = sum(p.numel() for p in params if p.requires_grad)
    state = 4 * (weights + 2 * trained) + CHECKPOINT_SLACK_BYTES
    buffer = sum(spec.buffer_bytes(cfg.algorithm, ctx)) if spec.saves_buffer(cfg.algorithm) else 0
    return state, buffer


def check_resources(cfg: TrainConfig, run_dir: Path, device: torch.device, n_actions: int) -> None:
    """Refuse a run the machine cannot hold: emulator processes against the CPUs, the
    algorithm's buffer against host (or GPU) memory, one checkpoint against the free disk."""
    cores = len(os.sched_getaffinity(0))
    num_envs = 0 if cfg.distributed else cfg.run.num_envs  # emulator processes here
    if num_envs > MAX_ENVS_PER_CORE * cores:
        raise ConfigError(
            f"bad value {num_envs} for num_envs: this machine has {cores} CPU cores, so at "
            f"most {MAX_ENVS_PER_CORE * cores} emulator processes ({MAX_ENVS_PER_CORE} per core; "
            "about one per core is fastest)"
        )
    spec = algos.get(cfg.algo)
    frames, meta = spec.buffer_bytes(cfg.algorithm, cfg.context(n_actions, device))
    option = spec.buffer_option
    what = (option, getattr(cfg.algorithm, option), "--" + option.replace("_", "-"))
    on_gpu = device.type == "cuda"
    host = TRAINER_BYTES + num_envs * ENV_BYTES + meta + (0 if on_gpu else frames)
    free = available_memory()
    if free is not None and host > free:
        raise ConfigError(
            f"bad value {what[1]} for {what[0]}: the {cfg.algo.upper()} buffer needs "
            f"{gib(frames + meta)} and the run about {gib(host)} of host "
            f"memory in all, but {gib(free)} is available; lower {what[2]} or --num-envs"
        )
    if on_gpu:
        gpu_free, _ = torch.cuda.mem_get_info(device)
        if frames > 0.9 * gpu_free:
            raise ConfigError(
                f"bad value {what[1]} for {what[0]}: its frames need {gib(frames)} of GPU "
                f"memory and {device} has {gib(gpu_free)} free; lower {what[2]}"
            )
    state, replay = checkpoint_bytes(cfg, n_actions)
    on_disk = next(p for p in (run_dir, *run_dir.parents) if p.exists())  # before it is made
    disk = shutil.disk_usage(on_disk).free
    if state + replay > disk:
        extra = f" (replay memory {gib(replay)})" if replay else ""
        raise ConfigError(
            f"run folder {run_dir} has {gib(disk)} free on its disk, and a checkpoint needs "
            f"about {gib(state + replay)}{extra}: free space, choose another --run-dir, lower "
            "--replay-size or pass --no-save-replay"
        )
