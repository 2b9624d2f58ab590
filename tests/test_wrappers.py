"""The pipeline wrappers on a small fake pixel env (they know nothing about Mario)."""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest

from wrappers import FrameStack, GrayScale, PreviousAction, Resize, SkipFrame


class CountingEnv(gym.Env):
    """RGB frames whose pixels encode the frame counter; reward = frame number.

    Terminates after ``length`` frames. Optionally offers the SkipFrame fast path.
    """

    def __init__(self, length: int = 10, shape: tuple[int, int] = (24, 32)) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0, 255, (*shape, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.t = 0
        self.step_calls = 0
        self.actions: list[int] = []

    def frame(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, np.uint8)
        obs[..., 0] = self.t
        obs[self.t % obs.shape[0], :, 1] = 200  # a moving line, for max-pooling
        obs[..., 2] = 7
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.frame(), {"t": 0}

    def _tick(self, action: int) -> tuple[float, bool]:
        self.t += 1
        self.actions.append(int(action))
        return float(self.t), self.t >= self.length

    def step(self, action: int):
        self.step_calls += 1
        reward, done = self._tick(action)
        return self.frame(), reward, done, False, {"t": self.t}


class FastCountingEnv(CountingEnv):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.advance_calls = 0

    def advance(self, action: int) -> tuple[float, bool, bool]:
        self.advance_calls += 1
        reward, done = self._tick(action)
        return reward, done, False

    def observe(self):
        return self.frame(), {"t": self.t}


@pytest.mark.parametrize("env_cls", [CountingEnv, FastCountingEnv])
def test_skip_frame_sums_rewards_and_repeats_action(env_cls: type[CountingEnv]) -> None:
    base = env_cls(length=100)
    env = SkipFrame(base, 4)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(2)
    assert reward == 1 + 2 + 3 + 4
    assert base.actions == [2, 2, 2, 2]
    assert info["t"] == 4 and obs[0, 0, 0] == 4
    assert not terminated and not truncated


def test_skip_frame_uses_fast_path_for_unobserved_frames() -> None:
    base = FastCountingEnv(length=100)
    env = SkipFrame(base, 4)
    env.reset()
    env.step(0)
    assert base.advance_calls == 3 and base.step_calls == 1
    pooled = FastCountingEnv(length=100)
    env = SkipFrame(pooled, 4, max_pool=True)
    env.reset()
    env.step(0)
    assert pooled.advance_calls == 2 and pooled.step_calls == 2


@pytest.mark.parametrize("env_cls", [CountingEnv, FastCountingEnv])
def test_skip_frame_stops_at_termination(env_cls: type[CountingEnv]) -> None:
    base = env_cls(length=6)
    env = SkipFrame(base, 4)
    env.reset()
    env.step(1)
    obs, reward, terminated, _, info = env.step(1)
    assert terminated
    assert reward == 5 + 6  # frames 5 and 6 only: frame 7 was never played
    assert base.t == 6 and len(base.actions) == 6
    assert info["t"] == 6 and obs[0, 0, 0] == 6


@pytest.mark.parametrize("env_cls", [CountingEnv, FastCountingEnv])
def test_skip_frame_max_pools_last_two_frames(env_cls: type[CountingEnv]) -> None:
    base = env_cls(length=100)
    env = SkipFrame(base, 4, max_pool=True)
    env.reset()
    obs, *_ = env.step(0)
    # frames 3 and 4 each draw a line at their own row: the pooled frame has both
    assert obs[3, 0, 1] == 200 and obs[4, 0, 1] == 200
    assert obs[5, 0, 1] == 0 and obs[0, 0, 0] == 4


def test_skip_frame_rejects_bad_skip() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="frame_skip"):
            SkipFrame(CountingEnv(), bad)  # type: ignore[arg-type]


def test_grayscale_matches_bt601_luminance() -> None:
    env = GrayScale(CountingEnv())
    obs, _ = env.reset()
    frame = CountingEnv().frame()
    expected = 0.299 * frame[..., 0] + 0.587 * frame[..., 1] + 0.114 * frame[..., 2]
    assert obs.shape == (24, 32) and obs.dtype == np.uint8
    assert np.abs(obs.astype(float) - expected).max() <= 1.0
    assert env.observation_space.shape == (24, 32)
    with pytest.raises(ValueError, match="GrayScale"):
        GrayScale(env)  # already single channel


def test_resize_uses_area_interpolation() -> None:
    env = Resize(GrayScale(CountingEnv(shape=(24, 32))), (12, 16))
    obs, _ = env.reset()
    assert obs.shape == (12, 16) and obs.dtype == np.uint8
    source = cv2.cvtColor(CountingEnv(shape=(24, 32)).frame(), cv2.COLOR_RGB2GRAY)
    block_means = source.reshape(12, 2, 16, 2).mean(axis=(1, 3))
    assert np.abs(obs.astype(float) - block_means).max() <= 1.0
    colour = Resize(CountingEnv(), 8)
    assert colour.reset()[0].shape == (8, 8, 3) == colour.observation_space.shape
    for bad in (0, -4, (0, 5)):
        with pytest.raises(ValueError, match="resize"):
            Resize(CountingEnv(), bad)


def test_frame_stack_order_padding_and_independent_copies() -> None:
    env = FrameStack(GrayScale(CountingEnv(length=100)), 4)
    first, _ = env.reset()
    assert first.shape == (4, 24, 32) and first.dtype == np.uint8
    assert all(np.array_equal(first[i], first[0]) for i in range(4))
    kept = [first]
    for _ in range(5):
        obs, *_ = env.step(0)
        kept.append(obs)
    # newest last; the stack slides by one frame per step
    for t in range(1, 6):
        assert np.array_equal(kept[t][:-1], kept[t - 1][1:])
    assert not np.shares_memory(kept[-1], kept[-2])
    assert np.array_equal(kept[1][:3], np.repeat(first[:1], 3, axis=0))
    # reset pads again with the new first frame
    again, _ = env.reset()
    assert np.array_equal(again, first)
    with pytest.raises(ValueError, match="stack"):
        FrameStack(CountingEnv(), 0)


def test_previous_action_is_a_one_hot_band_that_the_stack_keeps() -> None:
    base = CountingEnv(length=100)
    env = FrameStack(PreviousAction(GrayScale(base), rows=2), 3)
    obs, _ = env.reset()
    assert not obs[:, :2].any()  # no action yet: the band is empty
    obs, *_ = env.step(1)
    game = cv2.cvtColor(base.frame(), cv2.COLOR_RGB2GRAY)
    band = obs[-1, :2]
    cell = 32 // 3
    assert (band[:, cell : 2 * cell] == 255).all() and band.sum() == 255 * 2 * cell
    assert (obs[-1, 2:] == game[2:]).all()  # below the band, the game's frame
    obs, *_ = env.step(2)
    # the stack holds the actions that led to each frame: none, 1, 2
    assert [int(frame[0].argmax() // cell) if frame[0].any() else None for frame in obs] == [
        None,
        1,
        2,
    ]


def test_previous_action_needs_room_and_discrete_actions() -> None:
    with pytest.raises(ValueError, match="no room"):
        PreviousAction(Resize(CountingEnv(), (24, 2)))
    with pytest.raises(ValueError, match="Discrete"):
        PreviousAction(gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -1, 1))
