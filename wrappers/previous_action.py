"""Show the agent its own previous action, painted into the observation as a one-hot band."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

#: Rows of the top of the frame that hold the band (4 of 84: the sky above Mario's HUD).
BAND_ROWS = 4


class PreviousAction(gym.Wrapper):
    """Overwrite the top ``rows`` rows of each ``(H, W)`` or ``(H, W, C)`` uint8 frame with a
    one-hot of the action that led to it: ``n`` cells side by side (``W // n`` pixels wide),
    the chosen one 255, the others 0; after a reset all are 0 (no action yet).

    Why: a game may act on a change of the buttons, not on the buttons (Mario jumps on a fresh
    press of A only), so what the agent held is part of the state the pixels do not show.
    R2D2, IMPALA and Agent57 feed the previous action beside the pixels; painting it into the
    frame does the same through the network's first layer, and every part of the pipeline
    after it (frame stack: the last ``stack`` actions, replay memory, actors, videos of the
    agent's view) carries it with no change. Sits before the frame stack."""

    def __init__(self, env: gym.Env, rows: int = BAND_ROWS) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"PreviousAction needs Discrete actions, got {env.action_space}")
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
            raise ValueError(f"PreviousAction needs (H, W) or (H, W, C) frames, got {space}")
        self.n = int(env.action_space.n)
        height, width = space.shape[:2]
        if not 1 <= rows <= height or width // self.n < 1:
            raise ValueError(
                f"a {height}x{width} frame has no room for a {rows}-row band of {self.n} cells"
            )
        self.rows, self.cell = int(rows), width // self.n

    def _paint(self, frame: np.ndarray, action: int | None) -> np.ndarray:
        if frame.base is not None or not frame.flags.writeable:  # a view of the emulator's screen
            frame = frame.copy()
        frame[: self.rows] = 0
        if action is not None:
            left = action * self.cell
            frame[: self.rows, left : left + self.cell] = 255
        return frame

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._paint(obs, None), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._paint(obs, int(action)), reward, terminated, truncated, info
