"""DQN's exploration: ε-greedy with a decaying ε, or Boltzmann sampling over the Q-values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

ScheduleKind = Literal["linear", "exponential"]


@dataclass(frozen=True)
class EpsilonSchedule:
    """Exploration rate that decays from ``start`` to ``end`` over ``decay_steps`` steps.

    ``linear``: straight line, then flat at ``end``. ``exponential``:
    ``start * (end / start) ** (step / decay_steps)`` floored at ``end`` (reaches ``end`` at
    ``decay_steps``; needs ``end > 0``).
    """

    start: float = 1.0
    end: float = 0.05
    decay_steps: int = 1_000_000
    kind: ScheduleKind = "linear"

    def __post_init__(self) -> None:
        if not 0.0 <= self.end <= self.start <= 1.0:
            raise ValueError(
                f"need 0 <= end <= start <= 1, got start={self.start!r}, end={self.end!r}"
            )
        if (
            isinstance(self.decay_steps, bool)
            or not isinstance(self.decay_steps, int)
            or (self.decay_steps < 1)
        ):
            raise ValueError(f"decay_steps must be an int >= 1, got {self.decay_steps!r}")
        if self.kind not in ("linear", "exponential"):
            raise ValueError(f"kind must be one of ('linear', 'exponential'), got {self.kind!r}")
        if self.kind == "exponential" and self.end <= 0.0:
            raise ValueError(f"exponential schedule needs end > 0, got end={self.end!r}")

    def value(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step!r}")
        fraction = step / self.decay_steps
        if self.kind == "linear":
            return self.start + (self.end - self.start) * min(fraction, 1.0)
        return max(self.end, self.start * (self.end / self.start) ** fraction)


def spread_epsilons(
    epsilon: float, spread: float, envs: torch.Tensor, num_envs: int
) -> torch.Tensor:
    """Ape-X's per-env exploration: env ``i`` of ``num_envs`` explores with
    ``epsilon ** (1 + spread * i / (num_envs - 1))``; env 0 with the schedule's ε, the last
    nearly greedily, so the greedy policy's failure modes get practice. ``envs``: the env
    indices (a remote actor's share of all the run's envs)."""
    powers = 1 + spread * envs.to(torch.float32) / max(1, num_envs - 1)
    return torch.as_tensor(float(epsilon)) ** powers


def _check_q(q_values: torch.Tensor) -> None:
    if q_values.dim() != 2 or q_values.shape[1] < 1:
        raise ValueError(f"q_values must be (N, A) with A >= 1, got {tuple(q_values.shape)}")


def _rng_device(q_values: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    # Random numbers are drawn where the generator lives, then moved next to the Q-values.
    return generator.device if generator is not None else q_values.device


def select_actions(
    q_values: torch.Tensor,
    epsilon: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ε-greedy action per row of ``q_values`` (N, A) -> int64 (N,).

    With probability ε a row takes an action uniform over all A actions (the greedy one
    included), else argmax. ``epsilon`` is a float or a (N,) tensor (one ε per env).
    Random numbers are always drawn (2 per row), so the generator advances the same way
    whatever ε is.
    """
    _check_q(q_values)
    n, n_actions = q_values.shape
    eps: float | torch.Tensor
    if isinstance(epsilon, torch.Tensor):
        if epsilon.shape != (n,):
            raise ValueError(f"epsilon tensor must be (N,) = ({n},), got {tuple(epsilon.shape)}")
        eps = epsilon.to(q_values.device)
    elif not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    else:
        eps = epsilon
    rng_device = _rng_device(q_values, generator)
    uniform = torch.rand(n, generator=generator, device=rng_device).to(q_values.device)
    random_actions = torch.randint(n_actions, (n,), generator=generator, device=rng_device).to(
        q_values.device
    )
    return torch.where(uniform < eps, random_actions, q_values.argmax(dim=1))


def boltzmann_actions(
    q_values: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample one action per row from softmax(Q / temperature) -> int64 (N,)."""
    _check_q(q_values)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    probs = torch.softmax(q_values.float() / temperature, dim=1)
    rng_device = _rng_device(q_values, generator)
    actions = torch.multinomial(probs.to(rng_device), 1, generator=generator)
    return actions.squeeze(1).to(q_values.device)
