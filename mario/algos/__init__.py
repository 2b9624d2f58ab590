"""The learning algorithms: one protocol (:mod:`mario.algos.base`), DQN and PPO behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mario.algos.base import Algorithm, Policy
    from mario.config import TrainConfig


def make_algorithm(cfg: TrainConfig, n_actions: int, device: torch.device) -> Algorithm:
    """The configured algorithm (``cfg.algo``), its network on ``device``."""
    if cfg.algo == "ppo":
        from mario.algos.ppo import PPO

        return PPO(cfg, n_actions, device)
    from mario.algos.dqn import DQN

    return DQN(cfg, n_actions, device)


def load_policy(state: dict[str, Any], device: torch.device, seed: int = 0) -> Policy:
    """The acting policy of a checkpoint's state (either algorithm)."""
    if state.get("algo", "dqn") == "ppo":
        from mario.algos.ppo import PPO

        return PPO.load_policy(state, device, seed)
    from mario.algos.dqn import DQN

    return DQN.load_policy(state, device, seed)
