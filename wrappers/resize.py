"""Downscale image observations with area interpolation."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np


class Resize(gym.ObservationWrapper):
    """Resize ``(H, W)`` or ``(H, W, C)`` uint8 observations to ``size`` (an int for square).

    Area interpolation averages the source pixels under each target pixel: the right filter
    for shrinking, with no aliasing of thin sprites.
    """

    def __init__(self, env: gym.Env, size: int | tuple[int, int] = 84) -> None:
        height, width = (size, size) if isinstance(size, int | np.integer) else size
        if height <= 0 or width <= 0:
            raise ValueError(f"resize must be a positive size, got {size!r}")
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
            raise ValueError(f"Resize needs (H, W) or (H, W, C) observations, got {space}")
        self.size = (int(height), int(width))
        self.observation_space = gym.spaces.Box(0, 255, self.size + space.shape[2:], np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        height, width = self.size
        return cv2.resize(observation, (width, height), interpolation=cv2.INTER_AREA)
