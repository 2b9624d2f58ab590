"""Stack the last k observations along a new leading axis."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class FrameStack(gym.Wrapper):
    """Observations become ``(k, *shape)``: the last ``k`` frames, newest last.

    After a reset every slot holds the first frame (so an episode never sees another's
    frames). Each observation is a fresh array: callers may keep it.
    """

    def __init__(self, env: gym.Env, k: int = 4) -> None:
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"stack must be an integer >= 1, got {k!r}")
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"FrameStack needs Box observations, got {space}")
        self.k = int(k)
        self.observation_space = gym.spaces.Box(0, 255, (self.k, *space.shape), space.dtype)
        self._frames = np.zeros(self.observation_space.shape, space.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._frames[:] = obs
        return self._frames.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames[:-1] = self._frames[1:]
        self._frames[-1] = obs
        return self._frames.copy(), reward, terminated, truncated, info
