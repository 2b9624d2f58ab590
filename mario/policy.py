"""Choosing actions: the one acting path shared by training, evaluation and replay videos."""

from __future__ import annotations

import numpy as np
import torch

from mario.dqn import boltzmann_actions, select_actions
from mario.net import MarioNet


class Policy:
    """Actions for a batch of observations from ``net`` (or uniformly at random without one).

    ``act(obs, epsilon)``: ε-greedy over the online head's Q-values (``epsilon=0`` is
    greedy), or Boltzmann sampling when ``exploration="boltzmann"``. Observations stay uint8
    until the network converts them on its device.
    """

    def __init__(
        self,
        net: MarioNet | None,
        n_actions: int,
        *,
        seed: int = 0,
        exploration: str = "epsilon",
        temperature: float = 1.0,
    ) -> None:
        self.net = net
        self.n_actions = n_actions
        self.exploration = exploration
        self.temperature = temperature
        device = net.device if net is not None else torch.device("cpu")
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, epsilon: float = 0.0, *, greedy: bool = False
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """``(actions int64 (N,), q_values (N, A) or None)`` for ``obs`` (N, ...).

        The Q-values stay on the net's device (training discards them; the replay HUD
        reads them), so acting copies only the actions back to the host.
        """
        n = obs.shape[0]
        if self.net is None:
            actions = torch.randint(
                self.n_actions, (n,), generator=self.generator, device=self.generator.device
            )
            return actions.cpu().numpy(), None
        q = self.net(torch.from_numpy(np.ascontiguousarray(obs)))
        if greedy:
            actions = q.argmax(dim=1)
        elif self.exploration == "boltzmann":
            actions = boltzmann_actions(q, self.temperature, self.generator)
        else:
            actions = select_actions(q, epsilon, self.generator)
        return actions.cpu().numpy(), q
