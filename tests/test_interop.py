"""mario's Gymnasium ids, and another Gymnasium-compatible library (Stable-Baselines3)
training on them through the example in ``examples/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import mario.envs
from mario.game.env import make_env
from mario.game.options import STAGES

EXAMPLE = Path(__file__).parents[1] / "examples" / "sb3_ppo.py"


def test_every_stage_has_a_stock_and_a_pixels_id() -> None:
    assert len(mario.envs.IDS) == 2 * len(STAGES) == 64
    assert mario.envs.register_all() == mario.envs.IDS  # registering again changes nothing
    stock = gym.make("mario/SuperMarioBros-1-1-v0")
    obs, info = stock.reset(seed=3)
    assert obs.shape == (240, 256, 3) and stock.action_space.n == 7 and info["x_pos"] == 40
    # the same game as make_env's, frame for frame
    same = make_env("1-1", **mario.envs.STOCK, seed=3)
    expected, _ = same.reset()
    assert np.array_equal(obs, expected)
    for action in [1, 1, 2, 2, 3] * 10:
        assert np.array_equal(stock.step(action)[0], same.step(action)[0])

    pixels = gym.make("mario/SuperMarioBros-4-2-pixels-v0", actions="right_only", sticky=0.25)
    obs, info = pixels.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and pixels.action_space.n == 5
    assert (info["world"], info["stage"]) == (4, 2)
    assert pixels.spec is not None and pixels.spec.id == mario.envs.env_id("4-2", pixels=True)


def test_stable_baselines3_trains_on_the_pixels_id(tmp_path: Path) -> None:
    out = tmp_path / "model.zip"
    args = ["--steps", "128", "--envs", "1", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),  # one thread: a few seconds of CPU
    )
    assert result.returncode == 0, result.stderr
    assert "trained 128 steps; one greedy episode reached x" in result.stdout
    from stable_baselines3 import PPO

    model = PPO.load(out)
    assert model.observation_space.shape == (4, 84, 84) and model.action_space.n == 5
