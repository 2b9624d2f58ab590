"""Another library trains on mario's Gymnasium ids: Stable-Baselines3's PPO on 1-1's pixels.

    pip install "mario[sb3]"
    python examples/sb3_ppo.py --steps 4096

mario registers ``mario/SuperMarioBros-W-S-v0`` (the stock game) and
``mario/SuperMarioBros-W-S-pixels-v0`` (4 frames per step, grayscale 84×84, a stack of 4) for
every stage when ``mario.envs`` is imported; SB3 takes them as any Gymnasium env. A few
thousand steps show the plumbing works, not a clear: mario's own presets need ~300k steps.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import mario.envs  # registers the ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="1-1", help="stage W-S (default 1-1)")
    parser.add_argument("--steps", type=int, default=4096, help="agent steps (default 4096)")
    parser.add_argument("--envs", type=int, default=2, help="environments (default 2)")
    parser.add_argument("--out", default="sb3-ppo-mario.zip", help="where the model goes")
    args = parser.parse_args()

    gym.register_envs(mario.envs)
    envs = make_vec_env(
        mario.envs.env_id(args.stage, pixels=True),
        n_envs=args.envs,
        seed=0,
        env_kwargs={"actions": "right_only", "max_episode_steps": 1000},
    )
    model = PPO("CnnPolicy", envs, n_steps=128, batch_size=64, n_epochs=2, seed=0, verbose=0)
    model.learn(total_timesteps=args.steps)
    model.save(args.out)

    env = gym.make(mario.envs.env_id(args.stage, pixels=True), actions="right_only")
    obs, info = env.reset(seed=1)
    for _ in range(200):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            break
    print(f"trained {model.num_timesteps} steps; one greedy episode reached x {info['x_pos']}")


if __name__ == "__main__":
    main()
