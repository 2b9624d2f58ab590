"""PPO as mario sees it: its :class:`~mario.algos.spec.AlgorithmSpec`.

Light on purpose (no torch): the functions import the algorithm when they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mario.algos.ppo.settings import PPOConfig
from mario.algos.spec import AlgorithmSpec, Context

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mario.algos.ppo.algorithm import PPO, ActorCriticPolicy, RemoteSampling


def _make(settings: PPOConfig, ctx: Context) -> PPO:
    from mario.algos.ppo.algorithm import PPO

    return PPO(settings, ctx)


def _load_policy(
    settings: PPOConfig, weights: dict[str, torch.Tensor], ctx: Context
) -> ActorCriticPolicy:
    from mario.algos.ppo.algorithm import load_policy

    return load_policy(settings, weights, ctx)


def _acting_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    from mario.algos.ppo.algorithm import acting_weights

    return acting_weights(net)


def _actor(settings: PPOConfig, ctx: Context, first_env: int, run_envs: int) -> RemoteSampling:
    from mario.algos.ppo.algorithm import RemoteSampling

    return RemoteSampling(settings, ctx)


def _network(settings: PPOConfig, ctx: Context) -> nn.Module:
    from mario.algos.ppo.algorithm import network

    return network(settings, ctx)


def _buffer_bytes(settings: PPOConfig, ctx: Context) -> tuple[int, int]:
    """A rollout of stacked observations, plus action, log-prob, value, reward and done."""
    frames = ctx.stack * ctx.frame_size**2
    return settings.n_steps * ctx.num_envs * (frames + 24), 0


SPEC = AlgorithmSpec(
    name="ppo",
    title="PPO",
    settings=PPOConfig,
    make=_make,
    load_policy=_load_policy,
    acting_weights=_acting_weights,
    actor=_actor,
    network=_network,
    buffer_bytes=_buffer_bytes,
    buffer_option="n_steps",
    saves_buffer=lambda settings: False,
    rollout_steps=lambda settings: int(settings.n_steps),
)
