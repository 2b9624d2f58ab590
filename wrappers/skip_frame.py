"""Repeat an action for several frames and sum the rewards."""

from __future__ import annotations

from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class FrameAdvancer(Protocol):
    """Optional fast path an env may offer to :class:`SkipFrame`.

    ``advance`` runs one frame without building an observation or an info dict, and
    ``observe`` returns them for the current frame. Frames that nobody looks at then cost
    only what the simulator needs. Envs without these methods are stepped normally.
    """

    def advance(self, action: Any) -> tuple[float, bool, bool]: ...

    def observe(self) -> tuple[np.ndarray, dict[str, Any]]: ...


class SkipFrame(gym.Wrapper):
    """Repeat each action ``skip`` frames; return the last frame and the summed reward.

    Stops early when a frame ends the episode (terminated or truncated). With
    ``max_pool=True`` the observation is the pixel-wise maximum of the last two frames,
    which removes the flicker of sprites drawn on alternate frames.
    """

    def __init__(self, env: gym.Env, skip: int = 4, *, max_pool: bool = False) -> None:
        if not isinstance(skip, int | np.integer) or skip < 1:
            raise ValueError(f"frame_skip must be an integer >= 1, got {skip!r}")
        super().__init__(env)
        self.skip = int(skip)
        self.max_pool = bool(max_pool) and self.skip > 1
        inner = env
        self._fast: FrameAdvancer | None = inner if isinstance(inner, FrameAdvancer) else None

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        # frames before the ones we observe: the fast path if the env has one
        observed = 2 if self.max_pool else 1
        for _ in range(self.skip - observed):
            if self._fast is not None:
                reward, terminated, truncated = self._fast.advance(action)
                total += float(reward)
                if terminated or truncated:
                    obs, info = self._fast.observe()
                    return obs, total, terminated, truncated, info
            else:
                obs, step_reward, terminated, truncated, info = self.env.step(action)
                total += float(step_reward)
                if terminated or truncated:
                    return obs, total, terminated, truncated, info
        previous: np.ndarray | None = None
        for i in range(observed):
            obs, step_reward, terminated, truncated, info = self.env.step(action)
            total += float(step_reward)
            if terminated or truncated:
                break
            if i == 0 and observed == 2:
                previous = obs
        else:
            if previous is not None:
                np.maximum(previous, obs, out=obs)
        return obs, total, terminated, truncated, info
