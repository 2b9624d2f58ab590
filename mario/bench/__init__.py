"""Benchmarks behind ``mario bench env|replay|learner|train|distributed``: numbers for the docs.

Every figure is the median of ``repeats`` timed runs; ratios come from runs made side by
side in the same process, since the machines are shared and noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from mario import backend


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "game_backend": backend.describe(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def rate(run: Callable[[float], int], seconds: float, repeats: int) -> float:
    """Median of ``repeats`` runs of ``run(seconds) -> count``, in counts per second."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = run(seconds)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run(args: Any) -> dict[str, Any]:
    """Dispatch ``mario bench WHAT`` (``args`` from the CLI)."""
    if args.what == "env":
        from mario.bench.env import bench_env

        return bench_env(seconds=args.seconds, repeats=args.repeats, max_envs=args.max_envs)
    from mario.device import resolve_device  # torch: not needed by the env benchmark

    device = str(resolve_device(args.device))
    if args.what == "replay":
        from mario.bench.replay import bench_replay

        return {"machine": machine(), **bench_replay(device=device)}
    if args.what == "learner":
        from mario.bench.learner import bench_learner

        cuda = device.startswith("cuda")
        rows = []
        # bf16 autocast and torch.compile exist only on CUDA: "auto" tries both ways there
        for compile in _switch(args.compile, cuda):
            # the learner captures no CUDA graph when it compiles
            for graph in (False,) if compile else _switch(args.cuda_graph, cuda):
                for amp in _switch(args.amp, cuda):
                    rows += bench_learner(
                        batch_sizes=args.batch_sizes or (32, 64, 128, 256),
                        device=device,
                        steps=args.steps,
                        repeats=args.repeats,
                        amp=amp,
                        compile=compile,
                        cuda_graph=graph,
                    )
        return {"machine": machine(), "rows": rows}
    if args.what == "distributed":
        from mario.bench.distributed import bench_distributed

        return bench_distributed(
            seconds=args.seconds,
            num_actors=args.num_actors,
            envs_per_actor=args.envs_per_actor,
            device=device,
            repeats=args.repeats,
            ray_address=args.ray_address,
        )
    from mario.bench.train import bench_train, preset_overrides

    overrides = preset_overrides(args.preset) if args.preset else {}
    if args.algo:
        overrides["algo"] = args.algo
    return bench_train(
        seconds=args.seconds,
        num_envs=args.num_envs,
        device=device,
        repeats=args.repeats,
        overrides=overrides,
    )


def _switch(choice: str, cuda: bool) -> tuple[bool, ...]:
    """``--amp``/``--compile``/``--cuda-graph``: off, on, both, or auto (both on CUDA, else off)."""
    if choice == "auto":
        choice = "both" if cuda else "off"
    return {"off": (False,), "on": (True,), "both": (False, True)}[choice]


def format_result(what: str, result: dict[str, Any]) -> str:
    if what == "env":
        from mario.bench.env import format_env

        return format_env(result)
    if what == "train":
        from mario.bench.train import format_train

        return format_train(result)
    if what == "distributed":
        from mario.bench.distributed import format_distributed

        return format_distributed(result)
    lines = [f"machine: {result.get('machine')}"]
    for key, value in result.items():
        if key == "machine":
            continue
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  {row}" for row in value)
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
