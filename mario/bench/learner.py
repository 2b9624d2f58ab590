"""Learner throughput: Double-DQN updates per second for a range of batch sizes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from mario.algos.dqn.algorithm import dqn_loss
from mario.algos.dqn.learner import GRAPH_WARMUP, Learner
from mario.models import FRAME_SIZE, MarioNet


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_learner(
    batch_sizes: Sequence[int] = (32, 64, 128, 256),
    device: str | torch.device = "cpu",
    steps: int | None = None,
    *,
    repeats: int = 3,
    warmup: int = 3,
    n_actions: int = 7,
    in_channels: int = 4,
    dueling: bool = False,
    amp: bool = False,
    compile: bool = False,
    cuda_graph: bool = False,
    seed: int = 0,
) -> list[dict[str, float | int | str | bool]]:
    """Time ``steps`` learner updates per repeat on a random uint8 batch already on ``device``.

    Updates run as the training loop runs them (``update(sync=False)``: on a GPU they queue
    without waiting for each other), with one device sync before and after each repeat.
    ``steps`` defaults to 200 on CUDA and 20 elsewhere. Returns one row per batch size:
    ``updates_per_s`` and ``samples_per_s`` are medians over ``repeats``;
    ``amp``/``compiled``/``cuda_graph`` report what the learner really used (all CUDA only);
    ``warmup_s`` is the time of the warm-up updates (with ``compile`` or ``cuda_graph``, mostly
    compiling or capturing). Measures the learner alone: sampling from replay and the
    host-to-device copy are excluded.
    """
    dev = torch.device(device)
    if steps is None:
        steps = 200 if dev.type == "cuda" else 20
    if not batch_sizes or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batch_sizes
    ):
        raise ValueError(f"batch_sizes must be a non-empty list of ints >= 1, got {batch_sizes!r}")
    for name, value, low in (("steps", steps, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    generator = torch.Generator(device=dev).manual_seed(seed)
    rows: list[dict[str, float | int | str | bool]] = []
    for batch_size in batch_sizes:
        torch.manual_seed(seed)
        if compile and dev.type == "cuda":
            # each batch size compiles afresh: without a reset the recompiles of earlier
            # sizes count against dynamo's cache limit and later sizes silently run eager
            torch._dynamo.reset()
        net = MarioNet(n_actions, in_channels, dueling=dueling).to(dev)
        learner = Learner(
            net,
            loss_fn=dqn_loss,
            amp=amp,
            compile=compile,
            cuda_graph=cuda_graph,
            target_update_every=1_000,
        )
        frames = (batch_size, in_channels, FRAME_SIZE, FRAME_SIZE)
        batch = {
            "obs": torch.randint(
                0, 256, frames, dtype=torch.uint8, device=dev, generator=generator
            ),
            "next_obs": torch.randint(
                0, 256, frames, dtype=torch.uint8, device=dev, generator=generator
            ),
            "action": torch.randint(0, n_actions, (batch_size,), device=dev, generator=generator),
            "reward": torch.rand(batch_size, device=dev, generator=generator),
            "discount": torch.full((batch_size,), 0.9**3, device=dev),
            "weight": torch.ones(batch_size, device=dev),
        }
        _synchronize(dev)
        t0 = time.perf_counter()
        # a graphed learner runs GRAPH_WARMUP eager updates, then captures: keep both untimed
        for _ in range(max(warmup, GRAPH_WARMUP + 2) if learner.cuda_graph else warmup):
            learner.update(batch, sync=False)
        _synchronize(dev)
        warmup_s = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            _synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                learner.update(batch, sync=False)
            _synchronize(dev)
            times.append(time.perf_counter() - t0)
        updates_per_s = steps / statistics.median(times)
        rows.append(
            {
                "batch_size": batch_size,
                "updates_per_s": updates_per_s,
                "samples_per_s": updates_per_s * batch_size,
                "ms_per_update": 1e3 / updates_per_s,
                "device": str(dev),
                "steps": steps,
                "repeats": repeats,
                "amp": learner.amp,
                "compiled": learner.compiled,
                "cuda_graph": learner.cuda_graph,
                "warmup_s": round(warmup_s, 3),
            }
        )
    return rows
