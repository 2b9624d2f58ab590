"""A remote actor: a few emulators, a CPU copy of the policy, its own ε; batches of steps.

:class:`EnvActor` is a plain class (tests use it without Ray); the collector runs it as a Ray
actor with one CPU. It steps its ``K`` envs (one process, :func:`mario.env.make_sync_vec_env`,
the trainer's own env factory and pixel pipeline) ``actor_steps`` times per :meth:`collect`
and hands back a compressed :class:`~mario.distributed.wire.Batch`. Acting follows the
learner's DQN: random play during the burn-in and until the first weights arrive, then
ε-greedy (or Boltzmann) on the online head, ε from the run's schedule at the learner's step,
spread over all the run's envs as in Ape-X (``eps_spread``).

With PPO an actor samples from the broadcast actor-critic instead, one call is one rollout
of ``n_steps`` (the learner waits for every actor's, then updates: synchronous PPO), and the
batch carries the stacks the rollout started from (:func:`mario.distributed.wire.restack`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from mario.algos.dqn.algorithm import QPolicy
from mario.algos.dqn.exploration import EpsilonSchedule, spread_epsilons
from mario.algos.ppo.algorithm import ActorCriticPolicy
from mario.collector import EpisodeEnd
from mario.config import TrainConfig
from mario.distributed.wire import Batch, encode
from mario.models import ActorCritic, MarioNet

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
        d = cfg.dqn
        self.index = index
        self.k = cfg.dist.envs_per_actor
        self.first_env = index * self.k
        self.num_envs = cfg.run.num_envs
        self.rollouts = cfg.algo == "ppo"
        self.steps = cfg.ppo.n_steps if self.rollouts else cfg.dist.actor_steps
        self.burn_in = 0 if self.rollouts else d.burn_in
        self.spread = d.eps_spread
        self.schedule = EpsilonSchedule(
            d.eps_start, d.eps_end, d.eps_decay_steps, kind=d.eps_schedule
        )
        self.net: MarioNet | ActorCritic
        if self.rollouts:
            self.net = ActorCritic(n_actions, cfg.env.stack)
            self.sampler = ActorCriticPolicy(self.net, seed=seed)
        else:
            self.net = MarioNet(n_actions, cfg.env.stack, dueling=d.dueling, width=d.net_width)
            self.policy = QPolicy(
                self.net, seed=seed, exploration=d.exploration, temperature=d.temperature
            )
        self.net.eval()
        self.rng = np.random.default_rng(seed)
        self.version = -1  # no weights yet: random play
        self.learner_step = 0
        stages = cfg.run.stage_list()  # spread over all the run's envs, cycling
        self.stages = [stages[(self.first_env + j) % len(stages)] for j in range(self.k)]
        self.name_stages = len(stages) > 1  # episodes name their stage when there are several
        if env_fn is not None:
            self.envs = env_fn(self.k, seed)
        else:
            from mario.env import make_sync_vec_env

            self.envs = make_sync_vec_env(self.k, self.stages, seed=seed, **cfg.env.kwargs())
        self.obs, _ = self.envs.reset(seed=seed)
        self.returns = np.zeros(self.k)
        self.lengths = np.zeros(self.k, dtype=np.int64)
        self.first = True

    def set_weights(self, weights: dict[str, torch.Tensor], version: int, step: int) -> int:
        """Act with the learner's ``weights`` (update ``version``; DQN: the online head) from
        now on; ``step``: the learner's agent step (ε and the burn-in follow it)."""
        module = self.net if isinstance(self.net, ActorCritic) else self.net.online
        module.load_state_dict(weights)  # DQN: float16 -> float32 on copy
        self.version, self.learner_step = version, step
        return version

    def _act(self, obs: np.ndarray) -> np.ndarray:
        if self.version < 0 or self.learner_step < self.burn_in:
            return self.rng.integers(self.net.n_actions, size=self.k)
        if self.rollouts:
            return self.sampler.sample(self.sampler.forward(obs)[0]).numpy()
        epsilon: float | torch.Tensor = self.schedule.value(self.learner_step)
        if self.spread > 0 and self.num_envs > 1:
            envs = torch.arange(self.first_env, self.first_env + self.k)
            epsilon = spread_epsilons(float(epsilon), self.spread, envs, self.num_envs)
        actions, _ = self.policy.q_actions(obs, epsilon, sample=True)
        return actions

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
            action[t] = self._act(self.obs)
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
        end = EpisodeEnd(
            float(self.returns[i]),
            int(self.lengths[i]),
            int(final["x_pos"][i]),
            bool(final["flag_get"][i]),
            stage=self.stages[i] if self.name_stages else None,
        )
        self.returns[i], self.lengths[i] = 0.0, 0
        return end

    def close(self) -> None:
        self.envs.close()
