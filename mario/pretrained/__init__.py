"""Agents shipped inside the package, so a newcomer can watch one clear a stage at once.

Each agent is ``NAME.pt`` beside this module: the network's acting weights (float16, a few
MB), the config it was trained with and where it came from (the preset command, run, seed,
minutes, evaluation), loaded like checkpoints with ``torch.load(weights_only=True)``.
``scripts/export_pretrained.py`` makes one from a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
FORMAT = 1


class UnknownAgent(ValueError):
    """No shipped agent by that name; the message lists the ones there are."""


def names() -> list[str]:
    """The shipped agents' names (e.g. ``1-1``)."""
    return sorted(p.stem for p in _HERE.glob("*.pt"))


def path_of(name: str) -> Path:
    path = _HERE / f"{name}.pt"
    if not path.is_file():
        shipped = ", ".join(names()) or "none"
        raise UnknownAgent(f"unknown pretrained agent {name!r}: shipped agents are {shipped}")
    return path


def read(name: str) -> dict[str, Any]:
    """The stored agent (weights, config, provenance), safely loaded."""
    import torch

    path = path_of(name)
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UnknownAgent(f"{path}: not a mario pretrained agent of format {FORMAT}")
    return data


def export(state: dict[str, Any], provenance: dict[str, Any], out: Path) -> Path:
    """Write a checkpoint's acting weights (float16) with its config and ``provenance``."""
    import torch

    weights = state["algorithm"]["net"]
    if state["algo"] == "dqn":  # the online head acts; the target head is for learning
        weights = {k: v for k, v in weights.items() if k.startswith("online.")}
    data = {
        "format": FORMAT,
        "algo": state["algo"],
        "net_signature": state["net_signature"],
        "config": state["config"],
        "step": int(state["counters"]["step"]),
        "weights": {k: v.to(torch.float16) for k, v in weights.items()},
        "provenance": provenance,
    }
    torch.save(data, out)
    return out
