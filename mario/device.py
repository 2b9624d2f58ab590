"""Which torch device a run, an evaluation or a benchmark uses."""

from __future__ import annotations

import re

import torch

from mario.config import ConfigError
from mario.errors import brief


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises :class:`~mario.config.ConfigError` (a ValueError) naming the device when it is not
    one of those or does not exist here.
    """
    if not isinstance(name, str) or not (
        name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name)
    ):
        raise ConfigError(
            f"unknown device {brief(name)}: valid devices are auto, cpu, cuda, cuda:N"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(
                f"device {name!r} asked for, but no CUDA device is available: use cpu"
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {name!r} asked for, but there are {count} CUDA devices "
                f"(valid: cuda:0..cuda:{count - 1}, cpu)"
            )
    return device
