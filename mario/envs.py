"""Gymnasium ids for every stage, so any Gymnasium-compatible library can train on the game.

``import mario.envs`` registers, for each of the 32 stages ``W-S``:

* ``mario/SuperMarioBros-W-S-v0``: the stock game, one NES frame per step, the full-colour
  ``(240, 256, 3)`` screen, the ``simple`` buttons (7 actions);
* ``mario/SuperMarioBros-W-S-pixels-v0``: the pixel pipeline mario's own agents see: 4
  frames per step, grayscale, 84×84, a stack of 4: ``(4, 84, 84)`` uint8.

Keyword arguments of :func:`gymnasium.make` go to :func:`mario.game.env.make_env` (e.g.
``actions="right_only"``, ``sticky=0.25``, ``max_episode_steps=2000``)::

    import gymnasium as gym
    import mario.envs  # noqa: F401 (registers the ids)

    env = gym.make("mario/SuperMarioBros-1-1-pixels-v0", actions="right_only")

``gym.make("mario.envs:mario/SuperMarioBros-1-1-v0")`` imports this module itself.
"""

from __future__ import annotations

import gymnasium as gym

from mario.game.options import STAGES

NAMESPACE = "mario"
STOCK = {"frame_skip": 1, "grayscale": False, "resize": None, "stack": 1}
"""make_env's arguments for the stock game (no pipeline)."""


def env_id(stage: str, pixels: bool = False) -> str:
    """The Gymnasium id of ``stage`` (``"1-1"``), with or without the pixel pipeline."""
    return f"{NAMESPACE}/SuperMarioBros-{stage}{'-pixels' if pixels else ''}-v0"


def register_all() -> list[str]:
    """Register both ids of every stage (again: a no-op); the ids."""
    ids = []
    for stage in STAGES:
        for pixels in (False, True):
            name = env_id(stage, pixels)
            if name not in gym.registry:
                gym.register(
                    id=name,
                    entry_point="mario.game.env:make_env",
                    kwargs={"stage": stage, **({} if pixels else STOCK)},
                )
            ids.append(name)
    return ids


IDS = register_all()
