"""``mario bench env``: raw emulator frames/s, the pixel pipeline's agent steps/s, and how a
vector env of one process per env scales; on nes-py 9 also its native vector emulator.

``scripts/bench_backends.py`` runs this on both game backends side by side."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from mario.bench.measure import machine
from mario.bench.measure import rate as median_rate
from mario.game.env import MarioEnv, make_env, make_vec_env


def _actions(n: int, count: int = 4096, seed: int = 0) -> np.ndarray:
    # a fixed random action sequence, the same for every variant
    return np.random.default_rng(seed).integers(0, n, count)


def _n_actions(space: gym.spaces.Space[Any]) -> int:
    assert isinstance(space, gym.spaces.Discrete)
    return int(space.n)


def _raw_frames(emulator_only: bool) -> Callable[[float], int]:
    env = MarioEnv("1-1", "simple")
    env.reset()
    nes = env._nes
    codes = [env._bytes[a] for a in _actions(_n_actions(env.action_space))]

    def run(seconds: float) -> int:
        frames, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for code in codes[:256]:
                if emulator_only:
                    nes._frame_advance(code)  # the emulator alone: no reward, no info
                    if nes._is_dying or nes._is_dead or nes._flag_get:
                        nes.reset()
                else:
                    # nes-py's own step, as the stock env runs (8.x: 4-tuple, 9.x: 5-tuple)
                    if nes.step(code)[2]:
                        nes.reset()
            frames += 256
        return frames

    return run


def _pipeline_steps(frame_skip: int) -> Callable[[float], int]:
    env = make_env("1-1", frame_skip=frame_skip)
    env.reset(seed=0)
    actions = _actions(_n_actions(env.action_space)).tolist()

    def run(seconds: float) -> int:
        steps, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for action in actions[:64]:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
            steps += 64
        return steps

    return run


def _vector_steps(num_envs: int, frame_skip: int) -> tuple[Callable[[float], int], Any]:
    envs = make_vec_env(num_envs, "1-1", seed=0, frame_skip=frame_skip)
    envs.reset()
    actions = _actions(_n_actions(envs.single_action_space), 4096 * num_envs).reshape(-1, num_envs)

    def run(seconds: float) -> int:
        steps, i, deadline = 0, 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            envs.step(actions[i % len(actions)])
            i += 1
            steps += num_envs
        return steps

    return run, envs


def _rate_and_cpu(run: Callable[[float], int], seconds: float, repeats: int) -> tuple[float, float]:
    """Median rate (counts per wall second) and median CPU seconds of this process per count
    over ``repeats`` runs."""
    rates, costs = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = run(seconds)
        rates.append(count / (time.perf_counter() - wall))
        costs.append((time.process_time() - cpu) / count)
    return statistics.median(rates), statistics.median(costs)


def _native_vector_frames(num_envs: int) -> tuple[Callable[[float], int], Any] | None:
    """nes-py 9's ``VectorNESEmulator``: ``num_envs`` emulators stepped by one call (in one
    thread), frame advances only: no game rules, no observations, so an upper bound of what
    a vector env built on it could do. ``None`` on the classic backend (it has none)."""
    try:
        from nes_py import VectorNESEmulator
    except ImportError:
        return None
    probe = MarioEnv("1-1", "simple")
    rom, codes = probe._nes._rom_path, probe._bytes
    probe.close()
    vector = VectorNESEmulator(rom, num_envs)
    vector.reset()
    picks = _actions(len(codes), 4096 * num_envs).reshape(-1, num_envs)
    actions = np.asarray(codes, dtype=np.uint8)[picks]

    def run(seconds: float) -> int:
        frames, i, deadline = 0, 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for row in actions[i : i + 64]:
                vector.step(row)
            i = (i + 64) % len(actions)
            frames += 64 * num_envs
        return frames

    return run, vector


def bench_env(
    *, seconds: float = 3.0, repeats: int = 3, frame_skip: int = 4, max_envs: int | None = None
) -> dict[str, Any]:
    """Raw emulator frames/s, pipeline agent steps/s and their ratio, vector scaling."""
    emulator, emulator_cpu = _rate_and_cpu(_raw_frames(emulator_only=True), seconds, repeats)
    raw, raw_cpu = _rate_and_cpu(_raw_frames(emulator_only=False), seconds, repeats)
    pipeline, pipeline_cpu = _rate_and_cpu(_pipeline_steps(frame_skip), seconds, repeats)
    result: dict[str, Any] = {
        "machine": machine(),
        "frame_skip": frame_skip,
        "emulator_frames_per_s": round(emulator, 1),
        "raw_frames_per_s": round(raw, 1),
        "pipeline_steps_per_s": round(pipeline, 1),
        "pipeline_frames_per_s": round(pipeline * frame_skip, 1),
        # ≥ 0.95 means the wrappers cost ≤ 5% over the raw emulator
        "pipeline_ratio": round(pipeline / (raw / frame_skip), 3),
        "pipeline_ratio_vs_emulator_only": round(pipeline / (emulator / frame_skip), 3),
        # CPU time of this process per emulator frame: what other processes on a shared
        # machine barely move, unlike the rates above
        "cpu_us_per_frame": {
            "emulator_only": round(emulator_cpu * 1e6, 1),
            "raw": round(raw_cpu * 1e6, 1),
            "pipeline": round(pipeline_cpu / frame_skip * 1e6, 1),
        },
        "pipeline_cpu_ratio_vs_emulator_only": round(emulator_cpu / (pipeline_cpu / frame_skip), 3),
        "vector": [],
    }
    cores = len(os.sched_getaffinity(0))
    counts = sorted({1, *range(2, (max_envs or cores) + 1)})
    native = _native_vector_frames(counts[-1])
    if native is not None:
        run, vector = native
        try:
            rate = median_rate(run, seconds, repeats)
        finally:
            vector.close()
        result["native_vector"] = {
            "num_envs": counts[-1],
            "frames_per_s": round(rate, 1),
            # frame advances alone, in one thread: vs the same envs as processes, full pipeline
            "vs_emulator_only_x_envs": round(rate / (counts[-1] * emulator), 3),
        }
    single = None
    for n in counts:
        run, envs = _vector_steps(n, frame_skip)
        try:
            rate = median_rate(run, seconds, repeats)
        finally:
            envs.close()
        single = single or rate
        result["vector"].append(
            {
                "num_envs": n,
                "steps_per_s": round(rate, 1),
                "frames_per_s": round(rate * frame_skip, 1),
                # against n × the single-process pipeline rate (the target: ≥ 0.85)
                "scaling_vs_pipeline": round(rate / (n * pipeline), 3),
                "scaling_vs_1_env": round(rate / (n * single), 3),
            }
        )
    return result


def format_env(result: dict[str, Any]) -> str:
    """A short human-readable table of :func:`bench_env`'s result."""
    lines = [
        f"machine: {result['machine']}",
        f"emulator only (frame advance)    : {result['emulator_frames_per_s']:8.1f} frames/s",
        f"raw env (nes-py step)            : {result['raw_frames_per_s']:8.1f} frames/s",
        f"pipeline (skip {result['frame_skip']}, gray, 84, stack): "
        f"{result['pipeline_steps_per_s']:8.1f} steps/s = "
        f"{result['pipeline_frames_per_s']:.1f} frames/s",
        f"pipeline ratio to raw/frame_skip : {result['pipeline_ratio']:.3f} "
        f"(vs emulator only {result['pipeline_ratio_vs_emulator_only']:.3f})",
        f"CPU µs per frame (this process)  : {result['cpu_us_per_frame']}, pipeline ratio to "
        f"emulator only {result['pipeline_cpu_ratio_vs_emulator_only']:.3f}",
        "vector env (AsyncVectorEnv, one process per env):",
    ]
    native = result.get("native_vector")
    for row in result["vector"]:
        lines.append(
            f"  {row['num_envs']:3d} envs: {row['steps_per_s']:8.1f} steps/s  "
            f"scaling vs n x pipeline {row['scaling_vs_pipeline']:.3f}  "
            f"vs n x 1-env vector {row['scaling_vs_1_env']:.3f}"
        )
    if native:
        lines.append(
            f"nes-py 9 VectorNESEmulator, {native['num_envs']} envs, frame advances only: "
            f"{native['frames_per_s']:.1f} frames/s "
            f"({native['vs_emulator_only_x_envs']:.3f} x n x emulator only)"
        )
    return "\n".join(lines)
