"""``mario bench replay``: the replay memory's bytes per transition and its add/sample costs."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from mario.algos.dqn.replay import ReplayMemory


def bench_replay(
    capacity: int = 100_000,
    num_envs: int = 8,
    batch_size: int = 32,
    device: str = "cpu",
    *,
    prioritized: bool = False,
    n_step: int = 1,
    adds: int = 1000,
    samples: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    """Time :class:`ReplayMemory` at 4x84x84: median add (per vector step) and sample cost.

    Fills the memory to capacity first (episodes of ~200 steps) and warms up, so both costs are
    the steady state after wrap-around. With ``prioritized``, ``update_priority_us`` is
    reported too. ``bytes_per_transition`` is :meth:`ReplayMemory.bytes_per_transition`.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    memory = ReplayMemory(capacity, num_envs, n_step=n_step, device=device, prioritized=prioritized)
    pool = [rng.integers(0, 256, size=(num_envs, 4, 84, 84), dtype=np.uint8) for _ in range(8)]
    actions = rng.integers(0, 7, size=(adds + memory.capacity_per_env, num_envs))
    rewards = rng.normal(size=actions.shape).astype(np.float32)
    ends = rng.random(actions.shape) < 1 / 200
    terminated = ends & (rng.random(actions.shape) < 0.5)
    truncated = ends & ~terminated
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def add(i: int) -> None:
        memory.add(
            pool[i % 8], actions[i], rewards[i], terminated[i], truncated[i], pool[(i + 1) % 8]
        )

    start = time.perf_counter()
    for i in range(memory.capacity_per_env):
        add(i)
    fill_s = time.perf_counter() - start

    for _ in range(20):  # warm-up: the allocator settles on reusing the batch buffers
        memory.sample(batch_size)
    add_ns = []
    for i in range(memory.capacity_per_env, memory.capacity_per_env + adds):
        t0 = time.perf_counter_ns()
        add(i)
        sync()
        add_ns.append(time.perf_counter_ns() - t0)
    sample_ns, update_ns = [], []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        batch = memory.sample(batch_size)
        sync()
        sample_ns.append(time.perf_counter_ns() - t0)
        if prioritized:
            priority = torch.rand(batch_size, device=memory.device)
            t0 = time.perf_counter_ns()
            memory.update_priority(batch["index"], priority)
            update_ns.append(time.perf_counter_ns() - t0)
    result: dict[str, Any] = {
        "capacity": memory.capacity,
        "num_envs": num_envs,
        "batch_size": batch_size,
        "device": str(memory.device),
        "prioritized": prioritized,
        "n_step": n_step,
        "fill_s": fill_s,
        "add_us": statistics.median(add_ns) / 1e3,
        "sample_us": statistics.median(sample_ns) / 1e3,
        "bytes_per_transition": memory.bytes_per_transition(),
        "nbytes": memory.nbytes(),
    }
    if prioritized:
        result["update_priority_us"] = statistics.median(update_ns) / 1e3
    return result
