"""Agents to play with: a trained checkpoint's policy (either algorithm), a shipped agent
(:mod:`mario.playing.pretrained`) or uniform random actions, each with the config it was
trained with (the pipeline an episode must use). Loading never runs pickled code
(``torch.load(weights_only=True)``)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from mario import algos
from mario.algos.base import ActionValues, Policy
from mario.config import TrainConfig, build_config
from mario.device import resolve_device
from mario.game.env import action_set
from mario.storage.checkpoints import (
    CheckpointError,
    acting_state,
    load_checkpoint,
    upgrade_state,
)


@dataclass
class Agent:
    """A policy with the config it was trained with (``step``/``path`` of its checkpoint)."""

    policy: Policy
    config: TrainConfig
    step: int | None = None
    path: Path | None = None
    name: str | None = None
    """A shipped agent's name (``--pretrained``), else None."""

    def act(self, obs: np.ndarray, *, explore: float = 0.0) -> np.ndarray:
        """Actions for a batch of observations ``(N, 4, 84, 84)`` (or one ``(4, 84, 84)``)."""
        batch = obs[None] if obs.ndim == 3 else obs
        actions, _ = self.policy.act(batch, explore=explore)
        return actions if obs.ndim != 3 else actions[:1]


class RandomPolicy:
    """Uniform random actions: the baseline every agent should beat."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions = n_actions
        self.rng = np.random.default_rng(seed)

    def act(
        self, obs: np.ndarray, *, explore: float = 0.0
    ) -> tuple[np.ndarray, list[ActionValues] | None]:
        return self.rng.integers(0, self.n_actions, size=(len(obs),)), None


def _policy(
    config: TrainConfig,
    weights: dict[str, torch.Tensor],
    signature: dict[str, Any],
    device: torch.device,
    seed: int,
) -> Policy:
    """The acting policy of ``weights`` (a checkpoint's network, or a shipped agent's acting
    weights) for the network the checkpoint's signature names, through the algorithm's spec."""
    n_actions = int(signature.get("n_actions", len(action_set(config.env.actions))))
    ctx = dataclasses.replace(config.context(n_actions, device), seed=seed)
    return algos.get(config.algo).load_policy(config.algorithm, weights, ctx)


def _agent(
    read: Callable[[], tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any], int]],
    device: torch.device,
    seed: int,
    *,
    path: Path | None = None,
    name: str | None = None,
    damaged: str,
) -> Agent:
    """The agent of what ``read()`` gives (flat config, network weights, network signature,
    step); CheckpointError(``damaged`` and what was wrong) if any of it does not fit."""
    import torch

    try:
        values, weights, signature, step = read()
        config = build_config(values)
        agent = Agent(_policy(config, weights, signature, device, seed), config, int(step), path)
    except (KeyError, TypeError, AttributeError, RuntimeError, ValueError) as error:
        detail = f"no {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise CheckpointError(f"{damaged} ({detail[:100]})") from None
    agent.name = name
    if device.type == "cpu":
        # one observation at a time: extra threads only add synchronisation (5x slower on a
        # busy 2-core machine)
        torch.set_num_threads(1)
    return agent


def load_agent(path: str | Path, *, device: str = "auto", seed: int = 0) -> Agent:
    """The agent of a checkpoint (or a run folder's newest complete checkpoint), either
    algorithm, loaded with ``torch.load(weights_only=True)``."""
    torch_device = resolve_device(device)  # before the (slow) load
    state, info, warnings = load_checkpoint(Path(path), fallback=True)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    state = upgrade_state(state, info.state_path)
    return _agent(
        lambda: (
            state["config"],
            acting_state(state["algorithm"]),
            state["net_signature"],
            state["counters"]["step"],
        ),
        torch_device,
        seed,
        path=info.path,
        # a state.pt that passed its checksum but is not a mario training state
        damaged=f"{info.state_path}: incompatible: not a mario checkpoint",
    )


def load_pretrained(name: str, *, device: str = "auto", seed: int = 0) -> Agent:
    """A shipped agent (:mod:`mario.playing.pretrained`), e.g. ``"1-1"``."""
    from mario.playing import pretrained

    torch_device = resolve_device(device)
    data = pretrained.read(name)
    return _agent(
        lambda: (data["config"], data["weights"], data["net_signature"], data["step"]),
        torch_device,
        seed,
        name=name,
        damaged=f"the shipped agent {name} is damaged: reinstall mario",
    )


def random_agent(actions: str = "simple", seed: int = 0) -> Agent:
    """The baseline: uniform random actions, default pipeline settings."""
    config = build_config({"actions": actions})
    return Agent(RandomPolicy(len(action_set(actions)), seed), config)
