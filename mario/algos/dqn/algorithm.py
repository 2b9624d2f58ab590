"""Double DQN as one algorithm: ε-greedy acting, the replay memory, the learner.

Acting is random during the burn-in, then ε-greedy (or Boltzmann) on the online head.
Every vector step goes into the replay memory; :meth:`DQN.learn` does the updates that
``replay_ratio`` makes due (one per ``1 / replay_ratio`` agent steps after the burn-in).
Prioritized replay anneals β linearly to 1 over ``per_beta_steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mario.algos.base import Explained, Transition, check_finite
from mario.algos.dqn.exploration import (
    EpsilonSchedule,
    boltzmann_actions,
    select_actions,
    spread_epsilons,
)
from mario.algos.dqn.learner import Learner
from mario.algos.dqn.replay import ReplayMemory
from mario.config import TrainConfig
from mario.models import MarioNet


class QPolicy:
    """Actions from a Q network's online head: greedy, ε-greedy, or Boltzmann sampling.

    ``act(obs, explore=ε)`` is the one acting path of training, evaluation and replay videos;
    observations stay uint8 until the network converts them on its device.
    """

    def __init__(
        self,
        net: MarioNet,
        *,
        seed: int = 0,
        exploration: str = "epsilon",
        temperature: float = 1.0,
    ) -> None:
        self.net = net
        self.n_actions = net.n_actions
        self.exploration = exploration
        self.temperature = temperature
        self.generator = torch.Generator(device=net.device)
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def q_actions(
        self, obs: np.ndarray, epsilon: float | torch.Tensor, *, sample: bool = False
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Actions (N,) and the Q-values (N, A), left on the net's device: ε-greedy, or with
        ``sample`` and Boltzmann exploration, sampled from softmax(Q / temperature)."""
        q = self.net(torch.from_numpy(np.ascontiguousarray(obs)))
        if self.exploration == "boltzmann" and sample:
            actions = boltzmann_actions(q, self.temperature, self.generator)
        else:
            actions = select_actions(q, epsilon, self.generator)
        return actions.cpu().numpy(), q

    def act(
        self, obs: np.ndarray, *, explore: float = 0.0
    ) -> tuple[np.ndarray, list[Explained] | None]:
        actions, q = self.q_actions(obs, explore, sample=explore > 0)
        rows = q.float().cpu().tolist()
        return actions, [Explained("Q", row) for row in rows]


class DQN:
    """Double DQN behind :class:`mario.algos.base.Algorithm`."""

    name: ClassVar[str] = "dqn"

    def __init__(self, cfg: TrainConfig, n_actions: int, device: torch.device) -> None:
        d = cfg.dqn
        self.cfg = d
        self.num_envs = cfg.run.num_envs
        self.total_steps = cfg.run.total_steps
        self.net = MarioNet(n_actions, cfg.env.stack, dueling=d.dueling, width=d.net_width)
        self.net.to(device)
        self.learner = Learner(
            self.net,
            d.lr,
            grad_clip=d.grad_clip,
            target_sync=d.target_sync,
            target_update_every=d.target_update_every,
            tau=d.tau,
            amp=d.amp,
            compile=d.compile,
            cuda_graph=d.cuda_graph,
        )
        self.replay = ReplayMemory(
            d.replay_size,
            cfg.run.num_envs,
            frame_shape=(cfg.env.resize, cfg.env.resize),
            stack=cfg.env.stack,
            n_step=d.n_step,
            gamma=d.gamma,
            device=device,
            prioritized=d.prioritized,
            alpha=d.per_alpha,
            beta=d.per_beta,
        )
        self.schedule = EpsilonSchedule(
            d.eps_start, d.eps_end, d.eps_decay_steps, kind=d.eps_schedule
        )
        self._policy = QPolicy(
            self.net, seed=cfg.run.seed, exploration=d.exploration, temperature=d.temperature
        )
        self._stats: list[torch.Tensor] = []  # [loss, q_mean, grad_norm] per update, on device

    # -- acting ------------------------------------------------------------------------------
    def epsilon(self, step: int) -> float:
        """Exploration rate at ``step``: 1 during the random burn-in, then the schedule."""
        return 1.0 if step < self.cfg.burn_in else self.schedule.value(step)

    def act(self, obs: np.ndarray, step: int, archived: np.ndarray | None = None) -> np.ndarray:
        if step < self.cfg.burn_in:
            return np.asarray(np.random.randint(self.net.n_actions, size=obs.shape[0]))
        epsilon: float | torch.Tensor = self.epsilon(step)
        if self.cfg.eps_spread > 0 and obs.shape[0] > 1:
            n = obs.shape[0]
            epsilon = spread_epsilons(float(epsilon), self.cfg.eps_spread, torch.arange(n), n)
        if self.cfg.archive_eps > 0 and archived is not None and archived.any():
            # Go-Explore's "explore" after "return": near the frontier the greedy policy is
            # what keeps dying, so episodes started from the archive explore more
            floor = torch.where(torch.as_tensor(archived), self.cfg.archive_eps, 0.0)
            epsilon = torch.maximum(torch.as_tensor(epsilon, dtype=torch.float32), floor)
        actions, _ = self._policy.q_actions(obs, epsilon, sample=True)
        return actions

    def policy(self) -> QPolicy:
        return self._policy

    # -- learning ----------------------------------------------------------------------------
    def observe(self, t: Transition, step: int) -> None:
        if t.cut and t.streams is not None:
            self.replay.cut(t.streams)
        store = self.replay.extend if t.action.ndim == 2 else self.replay.add  # T steps at once
        store(t.obs, t.action, t.reward, t.terminated, t.truncated, t.next_obs, streams=t.streams)

    def learn(self, step: int) -> None:
        """The updates due by ``step``: ``replay_ratio`` per agent step after the burn-in."""
        d = self.cfg
        due = int(max(0, step - d.burn_in) * d.replay_ratio)
        if self.learner.updates >= due or len(self.replay) < d.batch_size:
            return
        if d.prioritized:
            horizon = d.per_beta_steps or self.total_steps
            self.replay.beta = min(1.0, d.per_beta + (1.0 - d.per_beta) * step / horizon)
        while self.learner.updates < due:
            batch = self.replay.sample(d.batch_size)
            out = self.learner.update(batch, sync=False)  # no wait for the GPU
            if d.prioritized:
                self.replay.update_priority(batch["index"], out["td_abs"])
            self._stats.append(out["stats"])

    @property
    def updates(self) -> int:
        return self.learner.updates

    def stats(self) -> dict[str, float]:
        stats, self._stats = self._stats, []
        check_finite(self.net.online, stats)
        if not stats:
            return {}
        loss, q_mean, grad_norm = torch.stack(stats).mean(0).tolist()  # one device sync
        out = {"loss": loss, "q_mean": q_mean, "grad_norm": grad_norm}
        if self.cfg.prioritized:
            out["per_beta"] = self.replay.beta
        return out

    def status(self, step: int) -> dict[str, float]:
        return {"epsilon": round(self.epsilon(step), 5), "replay_size": len(self.replay)}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "learner": self.learner.state_dict(),
            "policy_rng": self._policy.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.learner.load_state_dict(state["learner"])
        self._policy.generator.set_state(state["policy_rng"])

    def replay_writer(self) -> Callable[[Path], None] | None:
        return self.replay.save if self.cfg.save_replay else None

    def load_replay(self, folder: Path | None) -> str | None:
        if folder is None or not (folder / "replay.json").is_file():
            return "no saved replay memory: refilling it from scratch"
        try:
            self.replay.load(folder)
        except ValueError as error:
            return f"the saved replay memory does not fit ({error}): refilling it from scratch"
        return f"replay memory restored: {len(self.replay)} transitions"

    @staticmethod
    def load_policy(state: dict[str, Any], device: torch.device, seed: int = 0) -> QPolicy:
        """The acting policy of a checkpoint's weights (evaluation, replay videos)."""
        config = state["config"]
        signature = state["net_signature"]
        net = MarioNet(
            int(signature["n_actions"]),
            int(signature["in_channels"]),
            dueling=bool(signature["dueling"]),
            width=float(signature.get("width", 1.0)),
        )
        net.load_state_dict(state["algorithm"]["net"])
        net.to(device).eval()
        return QPolicy(
            net,
            seed=seed,
            exploration=str(config.get("exploration", "epsilon")),
            temperature=float(config.get("temperature", 1.0)),
        )
