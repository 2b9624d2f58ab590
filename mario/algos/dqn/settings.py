"""Double DQN's settings section (its config keys, their defaults and checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mario.errors import brief
from mario.settings import (
    MAX_NET_WIDTH,
    MIN_NET_WIDTH,
    ConfigError,
    at_least,
    positive,
    setting,
    within,
)

#: The largest random shift (pixels of an 84x84 frame): beyond it little of the picture stays.
MAX_SHIFT = 16
#: The most weight sets ``policy_average`` keeps (each a copy of the online head).
MAX_POLICY_AVERAGE = 64


@dataclass
class DQNConfig:
    """Double DQN: replay memory, n-step targets, target head, exploration."""

    gamma: float = setting(0.99, "discount factor")
    n_step: int = setting(3, "n-step returns (1: plain one-step targets)")
    n_step_end: int = setting(
        0,
        "n-step returns at the end of anneal_steps, reached linearly from n_step (BBF: 10 to "
        "3; 0: n_step throughout)",
    )
    gamma_end: float = setting(
        0.0,
        "discount factor at the end of anneal_steps, reached linearly from gamma (BBF: 0.97 to "
        "0.997; 0: gamma throughout)",
    )
    anneal_steps: int = setting(
        0,
        "agent steps after the burn-in over which n_step and gamma move to n_step_end and "
        "gamma_end (0: the rest of the run)",
    )
    lr: float = setting(1e-4, "Adam learning rate")
    lr_end_frac: float = setting(
        1.0,
        "the learning rate at total_steps as a fraction of lr, reached linearly from step 0 "
        "(1: constant; 0.1: lr/10 at the end)",
    )
    batch_size: int = setting(32, "replay samples per update")
    replay_size: int = setting(100_000, "replay memory size in transitions (~7 KiB each)")
    save_replay: bool = setting(True, "save the replay memory with checkpoints (resume keeps it)")
    prioritized: bool = setting(False, "prioritized replay (proportional, Schaul et al. 2016)")
    per_alpha: float = setting(0.6, "prioritized replay: priority exponent alpha")
    per_beta: float = setting(
        0.4, "prioritized replay: importance-weight exponent beta at the start"
    )
    per_beta_steps: int = setting(
        0, "agent steps over which beta anneals linearly to 1 (0: the run's total_steps)"
    )
    burn_in: int = setting(10_000, "agent steps of random play before learning starts")
    replay_ratio: float = setting(0.25, "gradient updates per agent step")
    target_sync: Literal["hard", "soft"] = setting(
        "hard", "target head update: hard copy or soft (Polyak)"
    )
    target_update_every: int = setting(2_000, "updates between hard target syncs")
    tau: float = setting(0.005, "Polyak factor for soft target updates")
    grad_clip: float = setting(10.0, "gradient-norm clip")
    dueling: bool = setting(False, "dueling Q head")
    net_width: float = setting(
        1.0,
        "torso width: channels and hidden units times the Nature CNN's, "
        f"{MIN_NET_WIDTH} to {MAX_NET_WIDTH:g} (0.5: CPU runs)",
    )
    amp: bool = setting(False, "bf16 autocast on CUDA")
    compile: bool = setting(False, "torch.compile the network on CUDA")
    cuda_graph: bool = setting(
        True, "capture the learner update in a CUDA graph (CUDA only; not with --compile)"
    )
    exploration: Literal["epsilon", "boltzmann"] = setting(
        "epsilon", "epsilon-greedy or boltzmann (softmax over Q)"
    )
    eps_start: float = setting(1.0, "initial epsilon")
    eps_end: float = setting(0.05, "final epsilon (floor)")
    eps_decay_steps: int = setting(1_000_000, "agent steps for epsilon to reach its floor")
    eps_schedule: Literal["linear", "exponential"] = setting("linear", "epsilon decay shape")
    eps_spread: float = setting(
        0.0,
        "per-env epsilons as in Ape-X: env i of N explores with eps^(1 + spread*i/(N-1)), "
        "so some envs act nearly greedily (0: every env the same eps)",
    )
    temperature: float = setting(1.0, "Boltzmann temperature")
    policy_ema: float = setting(
        0.0,
        "the policy evaluations, checkpoints' agents and shipped agents play: an exponential "
        "moving average of the online head's weights, moved this far toward them after each "
        "update (0.0002: about the last 5,000 updates; training still explores with the "
        "online head; 0: the online head)",
    )
    policy_average: int = setting(
        0,
        "the policy evaluations, checkpoints' agents and shipped agents play: the mean of "
        "the online head's weights now and at the last policy_average - 1 multiples of "
        "policy_average_every agent steps (weight averaging over the run's tail, as in SWA; "
        "training still explores with the online head; 0 or 1: the online head)",
    )
    policy_average_every: int = setting(
        25_000, "agent steps between the weights policy_average averages"
    )
    augment_shift: int = setting(
        0,
        "DrQ's random shifts: each replayed frame stack moves by up to this many pixels each "
        "way before an update (edges repeated; DrQ: 4; 0: off)",
    )
    reset_every: int = setting(
        0,
        "agent steps between shrink-and-perturb resets, as in BBF (Schwarzer et al. 2023): "
        "the online torso becomes reset_shrink of itself plus the rest of a fresh "
        "initialisation, the heads start afresh and Adam's moments are cleared (0: off)",
    )
    reset_until: float = setting(
        0.5,
        "the share of total_steps after which no reset happens, so the run's last stretch "
        "learns undisturbed",
    )
    reset_shrink: float = setting(
        0.5, "the share of the online torso's weights a reset keeps (BBF: 0.5)"
    )

    @property
    def lookahead(self) -> int:
        """The most rewards an n-step return sums over the run (the replay's ``n_step``)."""
        return max(self.n_step, self.n_step_end)

    def validate(self, num_envs: int, stack: int) -> None:
        """ConfigError naming the first bad value (``num_envs``, ``stack``: the run's)."""
        at_least(self, 1, "n_step", "batch_size", "replay_size", "target_update_every")
        at_least(self, 1, "eps_decay_steps")
        at_least(self, 0, "burn_in", "replay_ratio", "per_alpha", "per_beta", "per_beta_steps")
        at_least(self, 0, "eps_spread", "reset_every", "n_step_end", "anneal_steps")
        within(self, 0.0, 1.0, "gamma", "tau", open_low=True)
        within(self, 0.0, 1.0, "gamma_end")
        if not 0.0 <= self.eps_end <= self.eps_start <= 1.0:
            raise ConfigError(
                f"bad epsilon range {brief(self.eps_start)} -> {brief(self.eps_end)}: "
                "need 0 <= eps_end <= eps_start <= 1"
            )
        positive(self, "lr", "temperature", "grad_clip")
        within(self, MIN_NET_WIDTH, MAX_NET_WIDTH, "net_width")
        within(self, 0, MAX_SHIFT, "augment_shift")
        within(self, 0.0, 1.0, "per_beta", "lr_end_frac", "policy_ema")
        within(self, 0.0, 1.0, "reset_until", "reset_shrink")
        within(self, 0, MAX_POLICY_AVERAGE, "policy_average")
        at_least(self, 1, "policy_average_every")
        if self.policy_ema > 0 and self.policy_average > 1:
            raise ConfigError(
                "policy_ema and policy_average both choose the weights evaluations play: "
                "set one of them to 0"
            )
        smallest = num_envs * (stack + self.lookahead + 2)  # a stack and an n-step per stream
        if self.replay_size < smallest + self.batch_size:
            raise ConfigError(
                f"bad value {brief(self.replay_size)} for replay_size: too small for "
                f"{num_envs} envs and batch {self.batch_size} (need >= "
                f"{smallest + self.batch_size})"
            )
