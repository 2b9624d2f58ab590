"""What every benchmark shares: the machine a figure was measured on, and the median rate of
repeated timed runs."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from mario.game import backends


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
        "game_backend": backends.describe(),
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
