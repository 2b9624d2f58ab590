"""PPO: rollouts of ``n_steps`` per env from the same vector env and pixel pipeline, then
``epochs`` passes of minibatch updates of the clipped surrogate objective (Schulman et al.
2017), as in CleanRL's ``ppo_atari`` and Stable-Baselines3.

* Advantages: GAE(λ) (:func:`gae`), bootstrapped from V(s_T) after the rollout. An episode
  that *terminated* (death, flag) does not bootstrap; one that was *truncated* (time limit)
  does: its last reward gets ``gamma * V(final observation)``, the SB3 way.
* Loss (:func:`ppo_loss`): clipped policy objective, value loss (optionally clipped around
  the rollout's values), entropy bonus; advantages normalised per minibatch.
* Orthogonal init (:class:`mario.models.ActorCritic`), Adam (eps 1e-5), gradient-norm
  clipping, optional linear learning-rate annealing to 0 over the run.

Written here rather than taken from TorchRL (its GAE and ClipPPOLoss want TensorDict-keyed
modules and its compiled extension does not load against our torch); the few lines are
checked against hand-computed values in ``tests/test_ppo.py``.

The runner acts on step t+1 before it stores step t (the emulators run meanwhile), so the
first action of each rollout is chosen by the policy before that rollout's update: its
stored log-probability is the one it was chosen with, which the ratio accounts for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mario.algos.base import ActionValues, Transition, check_finite
from mario.algos.ppo.settings import PPOConfig
from mario.algos.spec import Context
from mario.models import ActorCritic


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (T, E) of a rollout: GAE(λ) (Schulman et al. 2016).

    ``rewards``, ``values`` (V of each step's observation) and ``dones`` (the step ended its
    episode: no bootstrap across it) are (T, E); ``next_value`` (E,) is V of the observation
    after the last step.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * lam * alive * last
        advantages[t] = last
    return advantages, advantages + values


def ppo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate loss of one minibatch (all tensors (B,)); ``advantages`` as
    given (normalise them before if wanted). Returns the loss and its parts, detached."""
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    surrogate = torch.max(
        -advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)
    )
    policy_loss = surrogate.mean()
    if clip_vloss:
        clipped = old_value + (new_value - old_value).clamp(-clip_coef, clip_coef)
        value_loss = 0.5 * torch.max((new_value - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((new_value - returns) ** 2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss
    with torch.no_grad():
        parts = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),  # Schulman's k3 estimator
            "clip_fraction": ((ratio - 1).abs() > clip_coef).float().mean(),
        }
    return loss, parts


class ActorCriticPolicy:
    """Actions from an actor-critic: the most probable action, or sampled (``explore``)."""

    def __init__(self, net: ActorCritic, *, seed: int = 0) -> None:
        self.net = net
        self.n_actions = net.n_actions
        self.generator = torch.Generator(device=net.device)
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def forward(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (N, A) and values (N,) on the net's device."""
        logits, value = self.net(torch.from_numpy(np.ascontiguousarray(obs)))
        return F.log_softmax(logits, dim=1), value

    def sample(self, logp: torch.Tensor) -> torch.Tensor:
        rng = self.generator.device
        return torch.multinomial(logp.exp().to(rng), 1, generator=self.generator).squeeze(1)

    def act(
        self, obs: np.ndarray, *, explore: float = 0.0
    ) -> tuple[np.ndarray, list[ActionValues] | None]:
        logp, value = self.forward(obs)
        actions = self.sample(logp).to(logp.device) if explore > 0 else logp.argmax(dim=1)
        probs = logp.exp().cpu().tolist()
        values = value.cpu().tolist()
        values = [ActionValues("π", p, v) for p, v in zip(probs, values, strict=True)]
        return actions.cpu().numpy(), values


class PPO:
    """PPO behind :class:`mario.algos.base.Algorithm`."""

    name: ClassVar[str] = "ppo"

    def __init__(self, settings: PPOConfig, ctx: Context) -> None:
        p = self.cfg = settings
        self.total_steps = ctx.total_steps
        self.device = device = ctx.device
        self.net = network(settings, ctx).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=p.lr, eps=1e-5)
        self._policy = ActorCriticPolicy(self.net, seed=ctx.seed)
        shape = (p.n_steps, ctx.num_envs)
        frames = (ctx.stack, ctx.frame_size, ctx.frame_size)
        self.obs = torch.zeros((*shape, *frames), dtype=torch.uint8, device=device)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.dones = torch.zeros(shape, device=device)
        self._t = 0  # steps stored in this rollout
        self._pending: deque[tuple[torch.Tensor, torch.Tensor]] = deque()  # (logp, V) per act
        self._next_obs: np.ndarray | None = None
        self._updates = 0
        self._stats: list[torch.Tensor] = []
        self._explained_variance: list[float] = []
        self._lr = p.lr

    # -- acting ------------------------------------------------------------------------------
    def act(
        self, obs: np.ndarray, step: int, explore_floor: np.ndarray | None = None
    ) -> np.ndarray:
        """Sampled actions (PPO's exploration is its policy's: it has no floor to honour)."""
        logp, value = self._policy.forward(obs)
        actions = self._policy.sample(logp).to(logp.device)
        self._pending.append((logp.gather(1, actions[:, None]).squeeze(1), value))
        return actions.cpu().numpy()

    def policy(self) -> ActorCriticPolicy:
        return self._policy

    # -- learning ----------------------------------------------------------------------------
    @torch.no_grad()
    def observe(self, t: Transition, step: int) -> None:
        if self._pending:
            logprob, value = self._pending.popleft()
        else:  # actions chosen elsewhere (a benchmark's random ones): rate them now
            logp, value = self._policy.forward(t.obs)
            action = torch.as_tensor(t.action, device=logp.device)
            logprob = logp.gather(1, action[:, None]).squeeze(1)
        p = self.cfg
        reward = torch.as_tensor(t.reward, dtype=torch.float32, device=self.device) * p.reward_scale
        cut = np.flatnonzero(t.truncated & ~t.terminated)
        if cut.size:  # a time limit, not an ending: bootstrap from the final observation
            _, final_value = self._policy.forward(t.next_obs[cut])
            reward[torch.as_tensor(cut, device=self.device)] += p.gamma * final_value
        if self._t == p.n_steps:  # a full rollout nobody learned from (learning off): drop it
            self._t = 0
        i = self._t
        self.obs[i] = torch.as_tensor(t.obs, device=self.device)
        self.actions[i] = torch.as_tensor(t.action, device=self.device)
        self.logprobs[i], self.values[i], self.rewards[i] = logprob, value, reward
        done = np.logical_or(t.terminated, t.truncated)
        self.dones[i] = torch.as_tensor(done, dtype=torch.float32, device=self.device)
        self._next_obs = t.next_obs
        self._t += 1

    def learn(self, step: int) -> None:
        """Update when the rollout is full: GAE, then ``epochs`` x ``minibatches`` steps."""
        p = self.cfg
        if self._t < p.n_steps or self._next_obs is None:
            return
        with torch.no_grad():
            _, next_value = self._policy.forward(self._next_obs)
            advantages, returns = gae(
                self.rewards, self.values, self.dones, next_value, p.gamma, p.gae_lambda
            )
        if p.anneal_lr:
            self._lr = p.lr * max(0.0, 1.0 - step / self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr
        batch = {
            "obs": self.obs.flatten(0, 1),
            "actions": self.actions.flatten(),
            "logprobs": self.logprobs.flatten(),
            "values": self.values.flatten(),
            "advantages": advantages.flatten(),
            "returns": returns.flatten(),
        }
        size = batch["actions"].numel()
        minibatch = size // p.minibatches
        for _ in range(p.epochs):
            order = torch.randperm(size, generator=self._policy.generator, device=self.device)
            for start in range(0, minibatch * p.minibatches, minibatch):
                self._update({k: v[order[start : start + minibatch]] for k, v in batch.items()})
        var = returns.var()
        self._explained_variance.append(
            float(1 - (returns - self.values).var() / var) if var > 0 else float("nan")
        )
        self._t = 0

    def _update(self, mb: dict[str, torch.Tensor]) -> None:
        p = self.cfg
        logits, value = self.net(mb["obs"])
        logp = F.log_softmax(logits, dim=1)
        new_logprob = logp.gather(1, mb["actions"][:, None]).squeeze(1)
        entropy = -(logp.exp() * logp).sum(dim=1)
        adv = mb["advantages"]
        if p.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        loss, parts = ppo_loss(
            new_logprob,
            mb["logprobs"],
            adv,
            value,
            mb["values"],
            mb["returns"],
            entropy,
            clip_coef=p.clip_coef,
            vf_coef=p.vf_coef,
            ent_coef=p.ent_coef,
            clip_vloss=p.clip_vloss,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), p.grad_clip)
        self.optimizer.step()
        self._updates += 1
        self._stats.append(torch.stack([*parts.values(), grad_norm.float()]))

    @property
    def updates(self) -> int:
        return self._updates

    def stats(self) -> dict[str, float]:
        stats, self._stats = self._stats, []
        check_finite(self.net, stats)
        if not stats:
            return {}
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")
        out = dict(zip(names, torch.stack(stats).mean(0).tolist(), strict=True))
        out["lr"] = self._lr
        ev = [v for v in self._explained_variance if v == v]
        if ev:
            out["explained_variance"] = float(np.mean(ev))
        self._explained_variance = []
        return out

    def status(self, step: int) -> dict[str, float]:
        return {"rollout": self._t}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, counters and the sampling RNG (a rollout in progress is not
        kept: a resumed run starts a new one, as its episodes restart)."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self._updates,
            "lr": self._lr,
            "policy_rng": self._policy.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._updates = int(state["updates"])
        self._lr = float(state["lr"])
        self._policy.generator.set_state(state["policy_rng"])

    def replay_writer(self) -> Callable[[Path], None] | None:
        return None  # on-policy: nothing to keep beyond the state dict

    def load_replay(self, folder: Path | None) -> str | None:
        return None


# --------------------------------------------------------------------------- for the spec


def network(settings: PPOConfig, ctx: Context) -> ActorCritic:
    """The actor-critic for these settings, on the CPU."""
    return ActorCritic(ctx.n_actions, ctx.stack, settings.net_width)


def acting_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """The whole actor-critic in float32 on the CPU: the learner rates a rollout's actions with
    its own weights (the old log-probabilities of the ratio), which must be the ones that
    acted."""
    return {name: value.detach().cpu() for name, value in net.state_dict().items()}


def load_policy(
    settings: PPOConfig, weights: dict[str, torch.Tensor], ctx: Context
) -> ActorCriticPolicy:
    """The acting policy of a checkpoint's (or a shipped agent's) weights."""
    net = network(settings, ctx)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    net.to(ctx.device).eval()
    return ActorCriticPolicy(net, seed=ctx.seed)


class RemoteSampling:
    """What a Ray actor acts with (:class:`~mario.algos.spec.ActorPolicy`): actions sampled
    from the broadcast actor-critic, uniform until the first weights arrive."""

    def __init__(self, settings: PPOConfig, ctx: Context) -> None:
        self.net = network(settings, ctx)
        self.net.eval()
        self.sampler = ActorCriticPolicy(self.net, seed=ctx.seed)
        self.rng = np.random.default_rng(ctx.seed)
        self.version = -1

    def set_weights(self, weights: dict[str, torch.Tensor], version: int, step: int) -> None:
        self.net.load_state_dict(weights)
        self.version = version

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.version < 0:
            return self.rng.integers(self.net.n_actions, size=len(obs))
        return self.sampler.sample(self.sampler.forward(obs)[0]).numpy()
