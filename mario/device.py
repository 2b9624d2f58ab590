"""Which torch device a run, an evaluation or a benchmark uses."""

from __future__ import annotations

import re

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises ValueError naming the device when it is not one of those or does not exist here.
    """
    if not (name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name)):
        raise ValueError(f"unknown device {name!r}: valid devices are auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {name!r} asked for, but no CUDA device is available: use cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {name!r} asked for, but there are {count} CUDA devices "
                f"(valid: cuda:0..cuda:{count - 1}, cpu)"
            )
    return device
