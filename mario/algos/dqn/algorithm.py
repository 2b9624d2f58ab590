"""Double DQN on a page: the target, the loss, acting; then the algorithm that stores every
step in the replay memory and learns from it.

* Target (:func:`double_dqn_target_from_q`): the online head picks the next action, the target
  head rates it (van Hasselt et al. 2016), from n-step returns.
* Loss (:func:`dqn_loss`): Huber between Q_online(s, a) and the target, importance-weighted
  under prioritized replay.
* Acting (:class:`QPolicy`, :class:`Exploration`): random during the burn-in, then ε-greedy
  (or Boltzmann) on the online head, ε from the schedule, spread over the run's envs as in
  Ape-X, raised where the start archive asks; the same code acts in a Ray actor.
* :class:`DQN`: the updates that ``replay_ratio`` makes due, one per ``1 / replay_ratio``
  agent steps after the burn-in; prioritized replay anneals β linearly to 1.

The update machinery (Adam, clipping, the target's sync, bf16, CUDA graphs) is
:mod:`mario.algos.dqn.learner`; the replay memory :mod:`mario.algos.dqn.replay`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mario.algos.base import ActionValues, Transition, check_finite
from mario.algos.dqn.augment import random_shift
from mario.algos.dqn.exploration import (
    EpsilonSchedule,
    boltzmann_actions,
    select_actions,
    spread_epsilons,
)
from mario.algos.dqn.learner import BATCH_KEYS, Learner, column
from mario.algos.dqn.replay import ReplayMemory
from mario.algos.dqn.settings import DQNConfig
from mario.algos.spec import Context
from mario.models import MarioNet

# --------------------------------------------------------------------------- target and loss


def double_dqn_target_from_q(
    reward: torch.Tensor,
    discount: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
) -> torch.Tensor:
    """Double-DQN target from the two heads' Q-values at s' (shapes (N,), (N,), (N, A), (N, A)).

    The online head chooses the action and the target head rates it, which removes the
    max-operator's overestimation of vanilla DQN (van Hasselt et al. 2016):

        a*  = argmax_a Q_online(s', a)
        y   = r + discount * Q_target(s', a*)

    ``reward`` is the n-step discounted return and ``discount`` is gamma**n, or 0 when the
    episode terminated within those n steps (a truncated episode still bootstraps).
    """
    n = reward.shape[0]
    if next_q_online.shape != next_q_target.shape or next_q_online.dim() != 2:
        raise ValueError(
            "next_q_online and next_q_target must both be (N, A), got "
            f"{tuple(next_q_online.shape)} and {tuple(next_q_target.shape)}"
        )
    if reward.shape != (n,) or discount.shape != (n,) or next_q_online.shape[0] != n:
        raise ValueError(
            f"reward and discount must be (N,) with N = {next_q_online.shape[0]}, "
            f"got {tuple(reward.shape)} and {tuple(discount.shape)}"
        )
    best = next_q_online.argmax(dim=1, keepdim=True)
    next_value = next_q_target.gather(1, best).squeeze(1).float()
    return reward.float() + discount.float() * next_value


def double_dqn_target(
    reward: torch.Tensor, discount: torch.Tensor, next_obs: torch.Tensor, net: MarioNet
) -> torch.Tensor:
    """Double-DQN target y (N,) for uint8 ``next_obs``; no gradient flows into it."""
    with torch.no_grad():
        return double_dqn_target_from_q(
            reward, discount, net(next_obs, model="online"), net(next_obs, model="target")
        )


def dqn_loss(
    batch: Mapping[str, Any], net: MarioNet, *, huber_delta: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Importance-weighted Huber loss between Q_online(s, a) and the Double-DQN target.

    ``batch`` (a dict of tensors) holds ``obs`` and ``next_obs`` uint8 (N, C, 84, 84),
    ``action`` int64, ``reward``, ``discount`` and optionally ``weight`` (PER importance
    weights; all ones when absent), each (N,) or (N, 1). The loss is ``mean(w * huber(td))``
    as in the PER paper. ``info`` holds ``td_abs`` (N,) detached, for new priorities, and
    ``q_mean``, the mean Q(s, a) for logging, both tensors on the net's device (no host sync).
    """
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"batch is missing {missing}; it needs {list(BATCH_KEYS)} (+ 'weight')")
    if huber_delta <= 0:
        raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
    obs = batch["obs"]
    n = obs.shape[0]
    device = net.device
    action = column(batch["action"], "action", n).to(device, non_blocking=True)
    if action.dtype != torch.int64:
        raise ValueError(f"batch['action'] must be int64, got {action.dtype}")
    f32 = torch.float32  # replay may hand float64 (NumPy) rewards; the loss stays float32
    reward = column(batch["reward"], "reward", n).to(device, f32, non_blocking=True)
    discount = column(batch["discount"], "discount", n).to(device, f32, non_blocking=True)

    q_sa = net(obs, model="online").gather(1, action.unsqueeze(1)).squeeze(1).float()
    target = double_dqn_target(reward, discount, batch["next_obs"], net)
    elementwise = F.huber_loss(q_sa, target, reduction="none", delta=huber_delta)
    weight = batch.get("weight", None)
    if weight is not None:
        elementwise = elementwise * column(weight, "weight", n).to(device, f32, non_blocking=True)
    loss = elementwise.mean()
    q_detached = q_sa.detach()
    return loss, {"td_abs": (q_detached - target).abs(), "q_mean": q_detached.mean()}


# --------------------------------------------------------------------------- acting


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
    ) -> tuple[np.ndarray, list[ActionValues] | None]:
        actions, q = self.q_actions(obs, explore, sample=explore > 0)
        rows = q.float().cpu().tolist()
        return actions, [ActionValues("Q", row) for row in rows]


class Exploration:
    """How much a training step explores, env by env: random play during the burn-in, then
    ε from the schedule at the agent step, spread over the run's ``num_envs`` envs as in
    Ape-X (env i of N: ε^(1 + spread·i/(N-1))), and never below a per-env floor (the start
    archive's episodes explore more: near the frontier the greedy policy is what keeps
    dying). The learner's loop and a Ray actor act through it alike."""

    def __init__(self, settings: DQNConfig, num_envs: int) -> None:
        self.burn_in = settings.burn_in
        self.spread = settings.eps_spread
        self.num_envs = num_envs
        self.schedule = EpsilonSchedule(
            settings.eps_start,
            settings.eps_end,
            settings.eps_decay_steps,
            kind=settings.eps_schedule,
        )

    def epsilon(self, step: int) -> float:
        """The schedule's ε at ``step`` (1 during the burn-in)."""
        return 1.0 if step < self.burn_in else self.schedule.value(step)

    def actions(
        self,
        policy: QPolicy,
        obs: np.ndarray,
        step: int,
        *,
        envs: torch.Tensor,
        random: Callable[[int], np.ndarray],
        floor: np.ndarray | None = None,
    ) -> np.ndarray:
        """Training actions for ``obs`` of the run's envs ``envs``; ``random(n)`` gives n
        uniform random actions (the burn-in needs no network); ``floor`` (per env) the
        least ε each env gets."""
        if step < self.burn_in:
            return random(len(obs))
        epsilon: float | torch.Tensor = self.epsilon(step)
        if self.spread > 0 and self.num_envs > 1:
            epsilon = spread_epsilons(float(epsilon), self.spread, envs, self.num_envs)
        if floor is not None and floor.any():
            low = torch.as_tensor(floor, dtype=torch.float32)
            epsilon = torch.maximum(torch.as_tensor(epsilon, dtype=torch.float32), low)
        actions, _ = policy.q_actions(obs, epsilon, sample=True)
        return actions


class RemoteActing:
    """What a Ray actor acts with (:class:`~mario.algos.spec.ActorPolicy`): the learner's
    online head, broadcast in float16, and :class:`Exploration` at the learner's step."""

    def __init__(self, settings: DQNConfig, ctx: Context, first_env: int, num_envs: int) -> None:
        self.net = network(settings, ctx)
        self.net.eval()
        self.policy = QPolicy(
            self.net,
            seed=ctx.seed,
            exploration=settings.exploration,
            temperature=settings.temperature,
        )
        self.exploration = Exploration(settings, num_envs)
        self.envs = torch.arange(first_env, first_env + ctx.num_envs)
        self.rng = np.random.default_rng(ctx.seed)
        self.version, self.step = -1, 0

    def set_weights(self, weights: dict[str, torch.Tensor], version: int, step: int) -> None:
        online = {name.removeprefix("online."): value for name, value in weights.items()}
        self.net.online.load_state_dict(online)  # float16 -> float32 on copy
        self.version, self.step = version, step

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.version < 0:  # no weights yet
            return self.rng.integers(self.net.n_actions, size=len(obs))
        return self.exploration.actions(
            self.policy,
            obs,
            self.step,
            envs=self.envs,
            random=lambda n: self.rng.integers(self.net.n_actions, size=n),
        )


def network(settings: DQNConfig, ctx: Context) -> MarioNet:
    """The Q network (online and target heads) for these settings, on the CPU."""
    return MarioNet(ctx.n_actions, ctx.stack, dueling=settings.dueling, width=settings.net_width)


def acting_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """The online head's weights (``online.*``, the network's own names) in float16 on the
    CPU: half the bytes of a broadcast or a shipped agent; acting keeps the Q-values to
    float16 precision."""
    assert isinstance(net, MarioNet)
    return {
        f"online.{name}": value.detach().to(
            "cpu", torch.float16 if value.is_floating_point() else None
        )
        for name, value in net.online.state_dict().items()
    }


def mean_weights(sets: list[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The float32 mean of weight sets with the same names and shapes (``policy_average``'s
    agent; ``scripts/average_checkpoints.py`` makes the same from checkpoints)."""
    return {k: torch.stack([w[k].float() for w in sets]).mean(0) for k in sets[0]}


def load_policy(settings: DQNConfig, weights: dict[str, torch.Tensor], ctx: Context) -> QPolicy:
    """The acting policy of a checkpoint's weights, or of the online head's alone (a shipped
    agent: the target head starts as a copy)."""
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    if not any(k.startswith("target.") for k in weights):
        weights |= {"target." + k[len("online.") :]: v for k, v in weights.items()}
    net = network(settings, ctx)
    net.load_state_dict(weights)
    net.to(ctx.device).eval()
    return QPolicy(
        net, seed=ctx.seed, exploration=settings.exploration, temperature=settings.temperature
    )


# --------------------------------------------------------------------------- the algorithm


class DQN:
    """Double DQN behind :class:`mario.algos.base.Algorithm`."""

    name: ClassVar[str] = "dqn"

    def __init__(self, settings: DQNConfig, ctx: Context) -> None:
        d = self.cfg = settings
        self.num_envs = ctx.num_envs
        self.total_steps = ctx.total_steps
        self.net = network(settings, ctx).to(ctx.device)
        self.learner = Learner(
            self.net,
            d.lr,
            loss_fn=dqn_loss,
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
            ctx.num_envs,
            frame_shape=(ctx.frame_size, ctx.frame_size),
            stack=ctx.stack,
            n_step=d.lookahead,
            gamma=d.gamma,
            device=ctx.device,
            prioritized=d.prioritized,
            alpha=d.per_alpha,
            beta=d.per_beta,
        )
        self.replay.set_horizon(*self.horizon(0))
        self.exploration = Exploration(d, ctx.num_envs)
        self._policy = QPolicy(
            self.net, seed=ctx.seed, exploration=d.exploration, temperature=d.temperature
        )
        # the averaged weights evaluations play (``policy_ema`` or ``policy_average``); training
        # explores with the online head, as the averaged policy's data would lag behind what
        # the learner knows
        self.average: MarioNet | None = None
        self._played = self._policy
        # policy_average: the online head's weights at the last multiples of
        # policy_average_every (newest last) and how many multiples have passed (None: unknown)
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.snapshot_count: int | None = 0
        if d.policy_ema > 0 or d.policy_average > 1:
            # a copy, not a new network: initialising one would draw from torch's global
            # stream, which the replay samples from, and so change what the run learns
            self.average = copy.deepcopy(self.net).eval().requires_grad_(False)
            self._played = QPolicy(
                self.average,
                seed=ctx.seed,
                exploration=d.exploration,
                temperature=d.temperature,
            )
        self._envs = torch.arange(ctx.num_envs)
        self._ctx = ctx  # a reset's fresh initialisation is built from it
        self.resets: int | None = 0  # shrink-and-perturb resets so far (None: not yet known)
        self._band_rows = ctx.band_rows
        self._shifts = torch.Generator().manual_seed(ctx.seed)  # DrQ's random shifts
        self._stats: list[torch.Tensor] = []  # [loss, q_mean, grad_norm] per update, on device

    # -- acting ------------------------------------------------------------------------------
    def act(
        self, obs: np.ndarray, step: int, explore_floor: np.ndarray | None = None
    ) -> np.ndarray:
        return self.exploration.actions(
            self._policy,
            obs,
            step,
            envs=self._envs[: len(obs)],
            random=lambda n: np.asarray(np.random.randint(self.net.n_actions, size=n)),
            floor=explore_floor,
        )

    def policy(self) -> QPolicy:
        """The policy evaluations play: the averaged weights' with ``policy_ema`` or
        ``policy_average``."""
        if self.cfg.policy_average > 1:
            self._average_snapshots()
        return self._played

    # -- learning ----------------------------------------------------------------------------
    def observe(self, t: Transition, step: int) -> None:
        if t.cut and t.streams is not None:
            self.replay.cut(t.streams)
        store = self.replay.extend if t.action.ndim == 2 else self.replay.add  # T steps at once
        store(t.obs, t.action, t.reward, t.terminated, t.truncated, t.next_obs, streams=t.streams)

    def learn(self, step: int) -> None:
        """The updates due by ``step``: ``replay_ratio`` per agent step after the burn-in."""
        d = self.cfg
        if d.reset_every:
            self._reset_if_due(step)
        if d.policy_average > 1:
            self._snapshot_if_due(step)
        due = int(max(0, step - d.burn_in) * d.replay_ratio)
        if self.learner.updates >= due or len(self.replay) < d.batch_size:
            return
        if d.lr_end_frac < 1.0:
            self.learner.set_lr(self.lr(step))
        if d.prioritized:
            horizon = d.per_beta_steps or self.total_steps
            self.replay.beta = min(1.0, d.per_beta + (1.0 - d.per_beta) * step / horizon)
        if d.n_step_end or d.gamma_end:
            self.replay.set_horizon(*self.horizon(step))
        while self.learner.updates < due:
            batch = self.replay.sample(d.batch_size)
            if d.augment_shift:
                batch = self._shifted(batch, d.augment_shift)
            out = self.learner.update(batch, sync=False)  # no wait for the GPU
            if d.prioritized:
                self.replay.update_priority(batch["index"], out["td_abs"])
            self._stats.append(out["stats"])
            if self.average is not None:
                self._move_average()

    @torch.no_grad()
    def _move_average(self) -> None:
        """The averaged online head moves ``policy_ema`` of the way toward the online one."""
        assert self.average is not None
        average, online = self.average.online.parameters(), self.net.online.parameters()
        torch._foreach_lerp_(list(average), list(online), self.cfg.policy_ema)

    @torch.no_grad()
    def _snapshot_if_due(self, step: int) -> None:
        """Keep the online head's weights when ``step`` has passed another
        ``policy_average_every`` (the newest ``policy_average - 1``). A checkpoint from before
        the option counts the multiples passed at its step and keeps none of them."""
        passed = step // self.cfg.policy_average_every
        if self.snapshot_count is None:
            self.snapshot_count = passed
        if passed > self.snapshot_count:
            self.snapshot_count = passed
            weights = {k: v.detach().clone() for k, v in self.net.online.state_dict().items()}
            self.snapshots = [*self.snapshots, weights][-(self.cfg.policy_average - 1) :]

    @torch.no_grad()
    def _average_snapshots(self) -> None:
        """Set the averaged head to the mean of the online head now and its snapshots: the
        policy of the run's tail rather than of wherever the last update left it (the greedy
        policy's flag rate swings between checkpoints 25k steps apart; the mean of three
        such checkpoints played better than each of them in 2 runs of 4, docs/BENCHMARKS.md)."""
        assert self.average is not None
        self.average.online.load_state_dict(
            mean_weights([self.net.online.state_dict(), *self.snapshots])
        )

    def _reset_if_due(self, step: int) -> None:
        """One shrink-and-perturb reset when ``step`` has passed another ``reset_every``
        (none after ``reset_until`` of the run). A checkpoint from before the option counts
        the resets due at its step as done."""
        d = self.cfg
        due = min(step, int(d.reset_until * self.total_steps)) // d.reset_every
        if self.resets is None:
            self.resets = due
        if due > self.resets:
            self.resets = due
            self.shrink_and_perturb(due)

    @torch.no_grad()
    def shrink_and_perturb(self, index: int) -> None:
        """BBF's reset (Schwarzer et al. 2023, after Ash & Adams 2020 and Nikishin et al. 2022):
        the online torso moves to ``reset_shrink`` of itself plus the rest of a fresh
        initialisation (seeded by the run's seed and ``index``), the value and advantage
        heads are the fresh ones, and Adam's moments start again. What the network has
        learned survives in the torso, the replay memory and the target head, which keeps its
        weights until its next sync and so keeps the bootstrapped values for a while; the
        heads regain the plasticity that high replay ratios wear away."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._ctx.seed * 1_000_003 + index)
            fresh = network(self.cfg, self._ctx).online.to(self.net.device)
        online = self.net.online
        torso: list[torch.Tensor] = list(online.features.parameters())
        new: list[torch.Tensor] = list(fresh.features.parameters())
        torch._foreach_lerp_(torso, new, 1.0 - self.cfg.reset_shrink)
        for name, module in online.named_children():
            if name != "features":
                module.load_state_dict(getattr(fresh, name).state_dict())
        self.learner.reset_optimizer()

    def horizon(self, step: int) -> tuple[int, float]:
        """The n-step horizon and discount of the targets at ``step``: ``n_step`` and ``gamma``
        until the burn-in ends, then moving linearly to ``n_step_end`` and ``gamma_end`` over
        ``anneal_steps`` (BBF's annealing: long sums of short-sighted rewards while values are
        poor, then shorter sums looking further ahead, less biased by the exploring policy)."""
        d = self.cfg
        n_end, gamma_end = d.n_step_end or d.n_step, d.gamma_end or d.gamma
        span = d.anneal_steps or max(1, self.total_steps - d.burn_in)
        frac = min(1.0, max(0, step - d.burn_in) / span)
        return round(d.n_step + (n_end - d.n_step) * frac), d.gamma + (gamma_end - d.gamma) * frac

    def lr(self, step: int) -> float:
        """The learning rate at ``step``: ``lr`` falling linearly to ``lr * lr_end_frac`` at
        the run's last step."""
        d = self.cfg
        return d.lr * (1.0 - (1.0 - d.lr_end_frac) * min(1.0, step / self.total_steps))

    def _shifted(self, batch: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
        """``batch`` with its stacks moved by DrQ's random shifts, ``obs`` and ``next_obs``
        each by their own."""
        moved = {
            key: random_shift(batch[key], pad, keep_top=self._band_rows, generator=self._shifts)
            for key in ("obs", "next_obs")
        }
        return {**batch, **moved}

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
        out = {"epsilon": round(self.exploration.epsilon(step), 5), "replay_size": len(self.replay)}
        if self.cfg.lr_end_frac < 1.0:
            out["lr"] = self.lr(step)
        if self.cfg.reset_every and self.resets is not None:
            out["resets"] = self.resets
        if self.cfg.n_step_end or self.cfg.gamma_end:
            out["n_step"], out["gamma"] = self.horizon(step)
        return out

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "net": self.net.state_dict(),
            "learner": self.learner.state_dict(),
            "policy_rng": self._policy.generator.get_state(),
            "shift_rng": self._shifts.get_state(),
            "resets": self.resets if self.resets is not None else -1,
        }
        if self.cfg.policy_average > 1:
            self._average_snapshots()
            count = -1 if self.snapshot_count is None else self.snapshot_count
            state["snapshots"] = {"count": count, "weights": self.snapshots}
        if self.average is not None:  # what a checkpoint's agent plays
            state["acting"] = {
                f"online.{k}": v for k, v in self.average.online.state_dict().items()
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if self.average is not None and state.get("acting"):
            online = {k.removeprefix("online."): v for k, v in state["acting"].items()}
            self.average.online.load_state_dict(online)
        elif self.average is not None:  # a checkpoint without one starts it at its online head
            self.average.online.load_state_dict(self.net.online.state_dict())
        self.learner.load_state_dict(state["learner"])
        self._policy.generator.set_state(state["policy_rng"])
        if "shift_rng" in state:  # (older checkpoints predate the key)
            self._shifts.set_state(state["shift_rng"])
        resets = int(state.get("resets", -1))  # older checkpoints predate the key
        self.resets = resets if resets >= 0 else None
        snapshots = state.get("snapshots", {"count": -1, "weights": []})
        keep = max(0, self.cfg.policy_average - 1)
        device = self.net.device
        weights = [{k: v.to(device) for k, v in w.items()} for w in snapshots["weights"]]
        self.snapshots = weights[len(weights) - keep :] if keep else []
        count = int(snapshots["count"])
        self.snapshot_count = count if count >= 0 else None

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
