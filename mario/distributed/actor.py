"""A remote actor: a few emulators, a CPU copy of the policy; batches of steps.

:class:`EnvActor` is a plain class (tests use it without Ray); the collector runs it as a Ray
actor with one CPU. It steps its ``K`` envs (one process,
:func:`mario.game.env.make_sync_vec_env`, the trainer's own env factory and pixel pipeline)
and hands back a compressed :class:`~mario.distributed.wire.Batch` per :meth:`collect`. It
acts with what the algorithm's spec gives it (:attr:`~mario.algos.spec.AlgorithmSpec.actor`),
the learner's broadcast weights and step: DQN's exploration as the learner's own loop would
act, PPO's sampling. An off-policy algorithm's batch is ``actor_steps`` steps; an on-policy
one's is one rollout (the learner waits for every actor's, then updates: synchronous), which
carries the stacks it started from (:func:`mario.distributed.wire.restack`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from mario import algos
from mario.config import TrainConfig
from mario.distributed.wire import Batch, encode, unpack_weights
from mario.training.collector import EpisodeEnd

#: ``env_fn(num_envs, seed)``: a vector env that auto-resets in the same step (tests: a toy).
EnvFn = Callable[[int, int], VectorEnv]


class EnvActor:
    """Actor ``index`` of a run: envs ``index * K`` … ``index * K + K - 1`` of all of them."""

    def __init__(
        self,
        cfg: TrainConfig,
        n_actions: int,
        index: int,
        seed: int,
        env_fn: EnvFn | None = None,
    ) -> None:
        torch.set_num_threads(1)  # one CPU: the emulators need it more than the net
        spec = algos.get(cfg.algo)
        self.index = index
        self.k = cfg.dist.envs_per_actor
        self.first_env = index * self.k
        rollout = spec.rollout_steps(cfg.algorithm)
        self.rollouts = rollout is not None
        self.steps = rollout if rollout is not None else cfg.dist.actor_steps
        ctx = dataclasses.replace(
            cfg.context(n_actions, torch.device("cpu")), num_envs=self.k, seed=seed
        )
        self.policy = spec.actor(cfg.algorithm, ctx, self.first_env, cfg.run.num_envs)
        self.version = -1  # no weights yet: random play
        stages = cfg.run.stage_list()  # spread over all the run's envs, cycling
        self.stages = [stages[(self.first_env + j) % len(stages)] for j in range(self.k)]
        self.name_stages = len(stages) > 1  # episodes name their stage when there are several
        if env_fn is not None:
            self.envs = env_fn(self.k, seed)
        else:
            from mario.game.env import make_sync_vec_env

            self.envs = make_sync_vec_env(self.k, self.stages, seed=seed, **cfg.env.train_kwargs())
        self.obs, _ = self.envs.reset(seed=seed)
        self.returns = np.zeros(self.k)
        self.lengths = np.zeros(self.k, dtype=np.int64)
        self.first = True

    def set_weights(self, weights: bytes, version: int, step: int) -> int:
        """Act with the learner's ``weights`` (update ``version``, packed by
        :func:`~mario.distributed.wire.pack_weights`) from now on; ``step``: the learner's agent
        step (exploration schedules follow it)."""
        self.policy.set_weights(unpack_weights(weights), version, step)
        self.version = version
        return version

    def collect(self) -> Batch:
        """Step the envs ``actor_steps`` times (PPO: ``n_steps``); the steps as one compressed
        batch."""
        t_max, k = self.steps, self.k
        head = self.obs.copy() if self.rollouts else None
        h, w = self.obs.shape[-2:]
        frames = np.empty((t_max + 1, k, h, w), np.uint8)
        action = np.empty((t_max, k), np.int64)
        reward = np.empty((t_max, k), np.float32)
        terminated = np.empty((t_max, k), bool)
        truncated = np.empty((t_max, k), bool)
        finals: list[np.ndarray] = []
        episodes: list[EpisodeEnd] = []
        version = self.version
        for t in range(t_max):
            frames[t] = self.obs[:, -1]
            action[t] = self.policy.act(self.obs)
            self.obs, reward[t], terminated[t], truncated[t], info = self.envs.step(action[t])
            self.returns += reward[t]
            self.lengths += 1
            for i in np.flatnonzero(terminated[t] | truncated[t]):
                finals.append(info["final_obs"][i][-1])
                episodes.append(self._episode_end(int(i), info["final_info"]))
        frames[t_max] = self.obs[:, -1]
        first, self.first = self.first, False
        return encode(
            self.index,
            self.first_env,
            version,
            frames,
            np.stack(finals) if finals else np.empty((0, h, w), np.uint8),
            action,
            reward,
            terminated,
            truncated,
            episodes,
            first=first,
            head=head,
        )

    def _episode_end(self, i: int, final: dict[str, Any]) -> EpisodeEnd:
        stage = self.stages[i] if self.name_stages else None
        end = EpisodeEnd.from_final(final, i, self.returns[i], self.lengths[i], stage)
        self.returns[i], self.lengths[i] = 0.0, 0
        return end

    def close(self) -> None:
        self.envs.close()
