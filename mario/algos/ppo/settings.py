"""PPO's settings section (its config keys, their defaults and checks)."""

from __future__ import annotations

from dataclasses import dataclass

from mario.errors import brief
from mario.settings import (
    MAX_NET_WIDTH,
    MIN_NET_WIDTH,
    ConfigError,
    at_least,
    positive,
    setting,
    within,
)


@dataclass
class PPOConfig:
    """PPO: clipped surrogate objective on rollouts of ``n_steps`` per env, GAE(lambda)."""

    lr: float = setting(2.5e-4, "Adam learning rate")
    anneal_lr: bool = setting(True, "decay the learning rate linearly to 0 over total_steps")
    gamma: float = setting(0.9, "discount factor")
    gae_lambda: float = setting(0.95, "GAE lambda")
    n_steps: int = setting(128, "rollout length per env between updates")
    epochs: int = setting(4, "passes over each rollout")
    minibatches: int = setting(4, "minibatches per pass")
    clip_coef: float = setting(0.1, "clip range of the probability ratio")
    clip_vloss: bool = setting(False, "clip the value loss around the rollout's values")
    vf_coef: float = setting(0.5, "value loss weight")
    ent_coef: float = setting(0.01, "entropy bonus weight")
    grad_clip: float = setting(0.5, "gradient-norm clip")
    norm_adv: bool = setting(True, "normalise advantages per minibatch")
    reward_scale: float = setting(0.1, "rewards are multiplied by this before learning")
    net_width: float = setting(
        1.0,
        "torso width: channels and hidden units times the Nature CNN's, "
        f"{MIN_NET_WIDTH} to {MAX_NET_WIDTH:g}",
    )

    def validate(self, num_envs: int, stack: int) -> None:
        """ConfigError naming the first bad value (``num_envs``, ``stack``: the run's)."""
        at_least(self, 1, "n_steps", "epochs", "minibatches")
        at_least(self, 0, "vf_coef", "ent_coef")
        within(self, 0.0, 1.0, "gamma", "gae_lambda", "clip_coef", open_low=True)
        positive(self, "lr", "grad_clip", "reward_scale")
        within(self, MIN_NET_WIDTH, MAX_NET_WIDTH, "net_width")
        if num_envs * self.n_steps < self.minibatches:
            raise ConfigError(
                f"bad value {brief(self.minibatches)} for minibatches: a rollout holds "
                f"{num_envs * self.n_steps} steps (num_envs x n_steps)"
            )
