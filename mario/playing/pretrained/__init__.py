"""Agents shipped inside the package, so a newcomer can watch one clear a stage at once.

Each agent is ``NAME.pt`` beside this module: the network's acting weights (float16, a few
MB), the config it was trained with and where it came from (the preset command, run, seed,
minutes, evaluation), loaded like checkpoints with ``torch.load(weights_only=True)``.
``scripts/export_pretrained.py`` makes one from a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mario.errors import brief, first_line
from mario.storage.run_folders import CheckpointError

_HERE = Path(__file__).parent
FORMAT = 1


class UnknownAgent(ValueError):
    """No shipped agent by that name; the message lists the ones there are."""


def names() -> list[str]:
    """The shipped agents' names (e.g. ``1-1``)."""
    return sorted(p.stem for p in _HERE.glob("*.pt"))


def path_of(name: str) -> Path:
    """The file of the shipped agent ``name``: a name from :func:`names`, never a path."""
    if name not in names():
        shipped = ", ".join(names()) or "none"
        raise UnknownAgent(f"unknown pretrained agent {brief(name)}: shipped agents are {shipped}")
    return _HERE / f"{name}.pt"


def read(name: str) -> dict[str, Any]:
    """The stored agent (weights, config, provenance), safely loaded;
    :class:`~mario.storage.run_folders.CheckpointError` if its file is damaged."""
    import torch

    path = path_of(name)
    damaged = f"the shipped agent {name} ({path}) is damaged: reinstall mario"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError; IndexError on noise
        raise CheckpointError(f"{damaged} ({first_line(error)[:100]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{damaged} (not a mario pretrained agent of format {FORMAT})")
    return data


def export(state: dict[str, Any], provenance: dict[str, Any], out: Path) -> Path:
    """Write a checkpoint's acting weights (float16) with its config and ``provenance``."""
    import torch

    from mario import algos
    from mario.config import build_config

    config = build_config(state["config"])
    spec = algos.get(config.algo)
    n_actions = int(state["net_signature"]["n_actions"])
    net = spec.network(config.algorithm, config.context(n_actions, torch.device("cpu")))
    net.load_state_dict(state["algorithm"]["net"])
    if state["algorithm"].get("acting"):  # the weights it plays, where they are its own
        net.load_state_dict(state["algorithm"]["acting"], strict=False)  # keys: net's, fewer
    weights = spec.acting_weights(net)  # e.g. DQN's online head: the target is for learning
    data = {
        "format": FORMAT,
        "algo": state["algo"],
        "net_signature": state["net_signature"],
        "config": state["config"],
        "step": int(state["counters"]["step"]),
        "weights": {
            k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()
        },
        "provenance": provenance,
    }
    torch.save(data, out)
    return out
