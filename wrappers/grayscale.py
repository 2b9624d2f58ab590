"""RGB → single-channel luminance."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np


class GrayScale(gym.ObservationWrapper):
    """Convert ``(H, W, 3)`` uint8 RGB observations to ``(H, W)`` uint8 luminance.

    Uses OpenCV's integer BT.601 conversion (0.299 R + 0.587 G + 0.114 B), no float copy.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3 or space.shape[2] != 3:
            raise ValueError(f"GrayScale needs (H, W, 3) observations, got {space}")
        self.observation_space = gym.spaces.Box(0, 255, space.shape[:2], np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(observation, cv2.COLOR_RGB2GRAY)
