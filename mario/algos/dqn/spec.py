"""Double DQN as mario sees it: its :class:`~mario.algos.spec.AlgorithmSpec`.

Light on purpose (no torch): the functions import the algorithm when they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mario.algos.dqn.settings import DQNConfig
from mario.algos.spec import AlgorithmSpec, Context

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mario.algos.dqn.algorithm import DQN, QPolicy, RemoteActing


def _make(settings: DQNConfig, ctx: Context) -> DQN:
    from mario.algos.dqn.algorithm import DQN

    return DQN(settings, ctx)


def _load_policy(settings: DQNConfig, weights: dict[str, torch.Tensor], ctx: Context) -> QPolicy:
    from mario.algos.dqn.algorithm import load_policy

    return load_policy(settings, weights, ctx)


def _acting_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    from mario.algos.dqn.algorithm import acting_weights

    return acting_weights(net)


def _actor(settings: DQNConfig, ctx: Context, first_env: int, run_envs: int) -> RemoteActing:
    from mario.algos.dqn.algorithm import RemoteActing

    return RemoteActing(settings, ctx, first_env, run_envs)


def _network(settings: DQNConfig, ctx: Context) -> nn.Module:
    from mario.algos.dqn.algorithm import network

    return network(settings, ctx)


def _buffer_bytes(settings: DQNConfig, ctx: Context) -> tuple[int, int]:
    from mario.algos.dqn.replay import ReplayMemory

    frame = (ctx.frame_size, ctx.frame_size)
    return ReplayMemory.planned_bytes(
        settings.replay_size, ctx.num_envs, frame, prioritized=settings.prioritized
    )


def _notes(settings: DQNConfig, ctx: Context) -> list[str]:
    if settings.burn_in < ctx.total_steps:
        return []
    return [
        f"warning: burn_in ({settings.burn_in}) >= total_steps ({ctx.total_steps}): this run "
        "only collects random play and never learns; lower --burn-in"
    ]


def _rollout_steps(settings: Any) -> None:
    return None  # off-policy: actors stream batches into the replay memory


SPEC = AlgorithmSpec(
    name="dqn",
    title="Double DQN",
    settings=DQNConfig,
    make=_make,
    load_policy=_load_policy,
    acting_weights=_acting_weights,
    actor=_actor,
    network=_network,
    buffer_bytes=_buffer_bytes,
    buffer_option="replay_size",
    saves_buffer=lambda settings: bool(settings.save_replay),
    rollout_steps=_rollout_steps,
    honours_explore_floor=True,
    notes=_notes,
)
