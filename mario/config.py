"""The typed run configuration, in sections that check themselves.

A training run has an algorithm (``algo``: ``dqn`` or ``ppo``) and six sections: ``run``
(what to train on, how long, where), ``env`` (the pixel pipeline and the start archive),
``eval`` (evaluations during training), ``dist`` (emulator actors on a Ray cluster, off by
default), and the algorithm's own (``dqn`` or ``ppo``).
Outside the code the config is one flat mapping of keys (YAML files, presets, ``mario train
--KEY VALUE``, ``config.yaml`` and checkpoints): every key names one field. A key of the
other algorithm's section is an error naming the algorithm it belongs to; ``lr``, ``gamma``
and ``grad_clip`` exist in both and go to the selected one.

A config comes from the defaults, then a YAML file (``--config FILE`` or a preset), then
command-line overrides. Unknown keys and bad values raise :class:`ConfigError` with one line
that names the key, the value and what is valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from mario.errors import brief, brief_path
from mario.game_options import (
    ACTION_SET_NAMES,
    REWARD_NAMES,
    check_pipeline_args,
    parse_stage,
)

Algo = Literal["dqn", "ppo"]
ALGOS: tuple[str, ...] = get_args(Algo)
WandbMode = Literal["auto", "online", "offline", "disabled"]
ActionSet = Literal["right_only", "simple", "complex"]
assert get_args(ActionSet) == ACTION_SET_NAMES
Reward = Literal["classic", "upstream"]
assert get_args(Reward) == REWARD_NAMES


class ConfigError(ValueError):
    """A bad config key or value; the message is one line for the user."""


#: A config file larger than this is refused unread: mario's presets are under 2 KiB, and a
#: bound here keeps a hostile file (or ``/dev/zero``) from taking the machine's memory.
MAX_CONFIG_BYTES = 64 * 1024
#: Longest text value of a key (a run folder path at most; ``stages`` and names are shorter).
MAX_TEXT = 4096
#: Largest whole number of any key (bounds that matter are each key's own, below this).
MAX_INT = 10**15
#: Emulator processes per CPU core at most (a machine's or a Ray actor's): more only slow
#: each other down.
MAX_ENVS_PER_CORE = 8
#: Narrowest torso: 4 channels in the first layer (at 1/64 a layer would have none).
MIN_NET_WIDTH = 0.125
#: Most entries in a ``stages`` list (World 1-8 has 32 stages; repeats are dropped).
MAX_STAGES = 64


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _at_least(section: Any, low: float, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value < low:
            raise ConfigError(f"bad value {brief(value)} for {name}: must be >= {low:g}")


def _within(section: Any, low: float, high: float, *names: str, open_low: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if not (low < value if open_low else low <= value) or value > high:
            bracket = "(" if open_low else "["
            raise ConfigError(
                f"bad value {brief(value)} for {name}: must be in {bracket}{low}, {high}]"
            )


#: Characters W&B refuses in a project name (it would fail after the run folder is written).
WANDB_FORBIDDEN = ("/", "\\", "#", "?", "%", ":")
#: ``auto``, or a host name / IPv4 / [IPv6] address and a port.
_RAY_ADDRESS = re.compile(r"auto|([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,4})")
#: Largest seed (NumPy's global generator takes 32 bits).
MAX_SEED = 2**32 - 1
#: Most episodes one evaluation or replay plays (per stage).
MAX_EPISODES = 10_000
#: Most agent steps of one evaluation or replay episode (the game's clock ends a stage within
#: ~6,000 steps at frame skip 4; with the clock stopped, e.g. by a pause, this ends it).
MAX_EPISODE_STEPS = 100_000

EVAL_SEED = 1_000_000_000
"""Where evaluation and replay seeds start unless given. Training envs are seeded with the
run's ``seed`` (0 by default) plus the agent step they (re)start at, plus their index (Ray
actors add 1,000 per actor and 1,000,000 per restart), far below this in any real run, so no
evaluation episode replays a training env's start (its random idle frames). The evaluations
during training use ``EVAL_SEED + step``."""


@dataclass
class RunConfig:
    """What to train on, for how long, where the run folder is and what it logs."""

    stage: str = _f("1-1", "stage to train on: W-S (1-1 .. 8-4) or 'all' for the full game")
    stages: str = _f(
        "",
        "several stages at once, spread over the envs (env i plays the i-th, cycling): W-S "
        "names or whole worlds (2: 2-1 .. 2-4), e.g. '1-1 1-2' or '1 2'; evaluation covers "
        "them all ('': --stage only)",
    )
    total_steps: int = _f(5_000_000, "agent steps (over all envs) the run trains for in total")
    num_envs: int = _f(
        4, "parallel environments, one process each (set by --num-actors with --ray-address)"
    )
    device: str = _f("auto", "torch device: auto (CUDA when present), cpu, cuda, cuda:N")
    seed: int = _f(0, "seed for envs, exploration and network init")
    run_dir: str = _f("", "run folder (default: checkpoints/<stage>-<timestamp>)")
    checkpoint_every: int = _f(50_000, "agent steps between checkpoints")
    keep_checkpoints: int = _f(3, "newest checkpoints kept (the best one is kept as well)")
    log_every: int = _f(2_000, "agent steps between metric logs")
    wandb_mode: WandbMode = _f(
        "auto", "W&B: auto (online if wandb has a key, else offline), online, offline, disabled"
    )
    wandb_project: str = _f("mario", "W&B project name")
    tensorboard: bool = _f(False, "also write TensorBoard event files to RUN/tensorboard")

    def validate(self) -> None:
        try:
            parse_stage(self.stage)
            stages = self.stage_list()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        _at_least(self, 1, "total_steps", "num_envs", "checkpoint_every", "keep_checkpoints")
        if len(stages) > self.num_envs:
            raise ConfigError(
                f"bad value {brief(self.stages)} for stages: {len(stages)} stages need at least as "
                f"many envs, got num_envs {self.num_envs} (raise --num-envs or --num-actors)"
            )
        _at_least(self, 1, "log_every")
        _within(self, 0, MAX_SEED, "seed")
        project = self.wandb_project
        bad = any(c in project for c in WANDB_FORBIDDEN) or not project.isprintable()
        if not 1 <= len(project) <= 128 or bad:
            raise ConfigError(
                f"bad value {brief(project)} for wandb_project: W&B project names have 1 to "
                f"128 printable characters and none of {' '.join(WANDB_FORBIDDEN)}"
            )

    def stage_list(self) -> list[str]:
        """The stages the envs play: ``stages`` expanded (:func:`expand_stages`), or
        ``[stage]``. ValueError names a bad one."""
        return expand_stages(self.stages) or [self.stage]


def expand_stages(text: str) -> list[str]:
    """Stage names and worlds separated by spaces or commas, as a list of stages: a world
    ``W`` is ``W-1`` .. ``W-4``, repeats are dropped (``"1 2-1"``: 1-1 .. 1-4, 2-1).
    ValueError names a bad one."""
    out: list[str] = []
    for token in text.replace(",", " ").split():
        names = [f"{token}-{s}" for s in range(1, 5)] if token.isdigit() else [token]
        for name in names:
            parse_stage(name)
            if name not in out:
                out.append(name)
    return out


@dataclass
class EnvConfig:
    """The pixel pipeline the network sees, and where training episodes start."""

    actions: ActionSet = _f("simple", "action set: right_only (5), simple (7), complex (12)")
    reward: Reward = _f(
        "classic",
        "reward: classic (gym-super-mario-bros 7.4.0's x progress + clock + death) or "
        "upstream (9.x's: new best x, score, coins, power-ups, completion, clock, death)",
    )
    frame_skip: int = _f(4, "NES frames per agent step (the action repeats, rewards sum)")
    resize: int = _f(84, "side of the square grayscale frame the network sees")
    stack: int = _f(4, "frames stacked into one observation")
    noop_max: int = _f(30, "random idle frames (0..N) at each episode start, from the seed")
    max_episode_steps: int = _f(0, "agent steps before an episode is truncated (0: no limit)")
    death_penalty: float = _f(
        0.0, "extra penalty on the step a life is lost, beyond the reward's own (0: none)"
    )
    archive_share: float = _f(
        0.0, "share of training episodes started from archived save states (0: off)"
    )
    archive_cell: int = _f(64, "archive cell width in x pixels")
    archive_backoff: int = _f(3, "cells before a deadly one that a start may be chosen")
    archive_repeat: int = _f(4, "archived episodes in a row from one cell (a switch replays)")
    archive_max_cells: int = _f(512, "archive size bound (cells per env process)")
    archive_settle: int = _f(
        0, "agent steps an episode must survive after entering a cell for it to be archived"
    )

    def validate(self) -> None:
        try:
            check_pipeline_args(frame_skip=self.frame_skip, resize=self.resize, stack=self.stack)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.resize != 84:
            raise ConfigError(
                f"bad value {brief(self.resize)} for resize: the networks take 84x84 frames "
                "(valid: 84)"
            )
        _at_least(self, 0, "noop_max", "max_episode_steps", "archive_backoff", "archive_settle")
        _at_least(self, 0.0, "death_penalty")
        _at_least(self, 1, "archive_cell", "archive_repeat", "archive_max_cells")
        _within(self, 0.0, 1.0, "archive_share")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`mario.make_env` for this pipeline (no archive)."""
        return {
            "actions": self.actions,
            "reward": self.reward,
            "frame_skip": self.frame_skip,
            "resize": self.resize,
            "stack": self.stack,
            "noop_max": self.noop_max,
            "max_episode_steps": self.max_episode_steps or None,
            "death_penalty": self.death_penalty,
        }

    def train_kwargs(self) -> dict[str, Any]:
        """:meth:`kwargs` plus the training-only start archive (never in evaluation)."""
        kwargs = self.kwargs()
        if self.archive_share > 0:
            kwargs["archive"] = {
                "share": self.archive_share,
                "repeat": self.archive_repeat,
                "cell_size": self.archive_cell,
                "backoff": self.archive_backoff,
                "max_cells": self.archive_max_cells,
                "settle": self.archive_settle,
            }
        return kwargs


@dataclass
class EvalConfig:
    """Greedy evaluations during training (each with a video; they pick the best checkpoint)."""

    eval_every: int = _f(0, "agent steps between greedy evaluations with a video (0: never)")
    eval_episodes: int = _f(3, "episodes per evaluation")

    def validate(self) -> None:
        _at_least(self, 0, "eval_every")
        _at_least(self, 1, "eval_episodes")


@dataclass
class DistConfig:
    """Emulator actors on a Ray cluster; off while ``ray_address`` is empty. DQN: Ape-X style
    (actors stream batches, the learner broadcasts weights every ``weights_every`` s); PPO:
    synchronous rollouts of ``n_steps`` (``actor_steps``, ``actor_inflight``,
    ``weights_every`` and ``ordered`` do not apply).

    With a ``ray_address`` the run's ``num_envs`` is ``num_actors * envs_per_actor``: one
    replay stream (PPO: rollout column) per remote emulator.
    """

    ray_address: str = _f(
        "",
        "Ray cluster for emulator actors: auto (the cluster this machine joined) or HOST:PORT "
        "('': no Ray, emulator processes on this machine; needs mario[distributed])",
    )
    num_actors: int = _f(2, "with --ray-address: remote actors, one CPU each")
    envs_per_actor: int = _f(1, "with --ray-address: emulators stepped by each actor (1-8)")
    actor_steps: int = _f(
        32, "with --ray-address, DQN: vector steps per batch an actor sends (1-4096)"
    )
    actor_inflight: int = _f(
        2, "with --ray-address, DQN: batches in flight per actor, 1-16 (backpressure)"
    )
    weights_every: float = _f(2.0, "with --ray-address, DQN: seconds between weight broadcasts")
    ordered: bool = _f(
        False,
        "with --ray-address, DQN: take the actors' batches in turn and broadcast the weights "
        "after each round (not as they come and every weights_every s): a reproducible run, "
        "at the pace of the slowest actor",
    )

    def validate(self) -> None:
        if self.ray_address and not _RAY_ADDRESS.fullmatch(self.ray_address):
            raise ConfigError(
                f"bad value {brief(self.ray_address)} for ray_address: expected auto or "
                "HOST:PORT (e.g. 10.0.0.5:6379)"
            )
        _at_least(self, 1, "num_actors")
        _within(self, 1, MAX_ENVS_PER_CORE, "envs_per_actor")  # an actor has one CPU
        _within(self, 1, 4096, "actor_steps")  # a batch of T x K frames in memory
        _within(self, 1, 16, "actor_inflight")  # batches waiting in the learner's memory
        if not self.weights_every > 0:
            raise ConfigError(
                f"bad value {brief(self.weights_every)} for weights_every: must be > 0 (seconds)"
            )


@dataclass
class DQNConfig:
    """Double DQN: replay memory, n-step targets, target head, exploration."""

    gamma: float = _f(0.99, "discount factor")
    n_step: int = _f(3, "n-step returns (1: plain one-step targets)")
    lr: float = _f(1e-4, "Adam learning rate")
    batch_size: int = _f(32, "replay samples per update")
    replay_size: int = _f(100_000, "replay memory size in transitions (~7 KiB each)")
    save_replay: bool = _f(True, "save the replay memory with checkpoints (resume keeps it)")
    prioritized: bool = _f(False, "prioritized replay (proportional, Schaul et al. 2016)")
    per_alpha: float = _f(0.6, "prioritized replay: priority exponent alpha")
    per_beta: float = _f(0.4, "prioritized replay: importance-weight exponent beta at the start")
    per_beta_steps: int = _f(
        0, "agent steps over which beta anneals linearly to 1 (0: the run's total_steps)"
    )
    burn_in: int = _f(10_000, "agent steps of random play before learning starts")
    replay_ratio: float = _f(0.25, "gradient updates per agent step")
    target_sync: Literal["hard", "soft"] = _f(
        "hard", "target head update: hard copy or soft (Polyak)"
    )
    target_update_every: int = _f(2_000, "updates between hard target syncs")
    tau: float = _f(0.005, "Polyak factor for soft target updates")
    grad_clip: float = _f(10.0, "gradient-norm clip")
    dueling: bool = _f(False, "dueling Q head")
    net_width: float = _f(
        1.0,
        "torso width: channels and hidden units times the Nature CNN's, 0.125 to 4 (0.5: CPU runs)",
    )
    amp: bool = _f(False, "bf16 autocast on CUDA")
    compile: bool = _f(False, "torch.compile the network on CUDA")
    cuda_graph: bool = _f(
        True, "capture the learner update in a CUDA graph (CUDA only; not with --compile)"
    )
    exploration: Literal["epsilon", "boltzmann"] = _f(
        "epsilon", "epsilon-greedy or boltzmann (softmax over Q)"
    )
    eps_start: float = _f(1.0, "initial epsilon")
    eps_end: float = _f(0.05, "final epsilon (floor)")
    eps_decay_steps: int = _f(1_000_000, "agent steps for epsilon to reach its floor")
    eps_schedule: Literal["linear", "exponential"] = _f("linear", "epsilon decay shape")
    eps_spread: float = _f(
        0.0,
        "per-env epsilons as in Ape-X: env i of N explores with eps^(1 + spread*i/(N-1)), "
        "so some envs act nearly greedily (0: every env the same eps)",
    )
    archive_eps: float = _f(
        0.0,
        "epsilon floor in training episodes started from the archive (explore after return; "
        "0: the schedule's)",
    )
    temperature: float = _f(1.0, "Boltzmann temperature")

    def validate(self) -> None:
        _at_least(self, 1, "n_step", "batch_size", "replay_size", "target_update_every")
        _at_least(self, 1, "eps_decay_steps")
        _at_least(self, 0, "burn_in", "replay_ratio", "per_alpha", "per_beta", "per_beta_steps")
        _at_least(self, 0, "eps_spread")
        _within(self, 0.0, 1.0, "archive_eps")
        _within(self, 0.0, 1.0, "gamma", "tau", open_low=True)
        if not 0.0 <= self.eps_end <= self.eps_start <= 1.0:
            raise ConfigError(
                f"bad epsilon range {brief(self.eps_start)} -> {brief(self.eps_end)}: "
                "need 0 <= eps_end <= eps_start <= 1"
            )
        for name in ("lr", "temperature", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"bad value {brief(getattr(self, name))} for {name}: must be > 0")
        _within(self, MIN_NET_WIDTH, 4.0, "net_width")  # below: layers of under 4 channels
        if self.per_beta > 1:
            raise ConfigError(f"bad value {brief(self.per_beta)} for per_beta: must be in [0, 1]")


@dataclass
class PPOConfig:
    """PPO: clipped surrogate objective on rollouts of ``n_steps`` per env, GAE(lambda)."""

    lr: float = _f(2.5e-4, "Adam learning rate")
    anneal_lr: bool = _f(True, "decay the learning rate linearly to 0 over total_steps")
    gamma: float = _f(0.9, "discount factor")
    gae_lambda: float = _f(0.95, "GAE lambda")
    n_steps: int = _f(128, "rollout length per env between updates")
    epochs: int = _f(4, "passes over each rollout")
    minibatches: int = _f(4, "minibatches per pass")
    clip_coef: float = _f(0.1, "clip range of the probability ratio")
    clip_vloss: bool = _f(False, "clip the value loss around the rollout's values")
    vf_coef: float = _f(0.5, "value loss weight")
    ent_coef: float = _f(0.01, "entropy bonus weight")
    grad_clip: float = _f(0.5, "gradient-norm clip")
    norm_adv: bool = _f(True, "normalise advantages per minibatch")
    reward_scale: float = _f(0.1, "rewards are multiplied by this before learning")

    def validate(self) -> None:
        _at_least(self, 1, "n_steps", "epochs", "minibatches")
        _at_least(self, 0, "vf_coef", "ent_coef")
        _within(self, 0.0, 1.0, "gamma", "gae_lambda", "clip_coef", open_low=True)
        for name in ("lr", "grad_clip", "reward_scale"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"bad value {brief(getattr(self, name))} for {name}: must be > 0")


_SECTION_TYPES: dict[str, type] = {
    "run": RunConfig,
    "env": EnvConfig,
    "eval": EvalConfig,
    "dist": DistConfig,
    "dqn": DQNConfig,
    "ppo": PPOConfig,
}
COMMON_SECTIONS = ("run", "env", "eval", "dist")


@dataclass
class TrainConfig:
    """A whole run's config: the algorithm and its sections (see the module docstring)."""

    algo: Algo = "dqn"
    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    @property
    def learn(self) -> DQNConfig | PPOConfig:
        """The selected algorithm's section."""
        return self.dqn if self.algo == "dqn" else self.ppo

    def validate(self) -> TrainConfig:
        """Check every section; raise ConfigError naming the first bad value."""
        if self.algo not in ALGOS:
            raise ConfigError(
                f"bad value {brief(self.algo)} for algo: valid values are {', '.join(ALGOS)}"
            )
        for section in (self.dist, self.run, self.env, self.eval, self.learn):
            section.validate()
            for f in dataclasses.fields(section):
                choices = _choices(type(section), f.name)
                if choices and getattr(section, f.name) not in choices:
                    raise ConfigError(
                        f"bad value {brief(getattr(section, f.name))} for {f.name}: valid values "
                        f"are {', '.join(choices)}"
                    )
        if self.distributed:
            self._check_distributed()
        if isinstance(self.learn, DQNConfig):
            smallest = self.run.num_envs * (self.env.stack + self.dqn.n_step + 2)
            if self.dqn.replay_size < smallest + self.dqn.batch_size:
                raise ConfigError(
                    f"bad value {brief(self.dqn.replay_size)} for replay_size: too small for "
                    f"{self.run.num_envs} envs and batch {self.dqn.batch_size} (need >= "
                    f"{smallest + self.dqn.batch_size})"
                )
        else:
            batch = self.run.num_envs * self.ppo.n_steps
            if batch < self.ppo.minibatches:
                raise ConfigError(
                    f"bad value {brief(self.ppo.minibatches)} for minibatches: a rollout holds "
                    f"{batch} steps (num_envs x n_steps)"
                )
        return self

    @property
    def distributed(self) -> bool:
        """Whether the emulators run as actors on a Ray cluster."""
        return bool(self.dist.ray_address)

    def _check_distributed(self) -> None:
        if self.env.archive_share > 0:
            raise ConfigError(
                "--archive-share is not available with --ray-address (the start archive "
                "lives in local emulator processes): leave one of them out"
            )
        streams = self.dist.num_actors * self.dist.envs_per_actor
        if self.run.num_envs != streams:
            raise ConfigError(
                f"num_envs ({self.run.num_envs}) must be num_actors x envs_per_actor "
                f"({streams}) with --ray-address"
            )

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping: ``algo``, the common sections and the selected algorithm's."""
        flat: dict[str, Any] = {"algo": self.algo}
        for section in (self.run, self.env, self.eval, self.dist, self.learn):
            flat.update(dataclasses.asdict(section))
        return flat


def _choices(section: type, name: str) -> tuple[str, ...]:
    hint = typing.get_type_hints(section)[name]
    return get_args(hint) if typing.get_origin(hint) is Literal else ()


def keys_of(section: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(_SECTION_TYPES[section]))


def sections_of(key: str) -> list[str]:
    """The sections that hold ``key`` (two for a key both algorithms have)."""
    return [name for name, kind in _SECTION_TYPES.items() if key in keys_of(name)]


def all_keys() -> list[str]:
    """Every flat key, once, in section order (``algo`` first)."""
    keys = ["algo"]
    for name in _SECTION_TYPES:
        keys += [k for k in keys_of(name) if k not in keys]
    return keys


def field_of(key: str) -> tuple[type, dataclasses.Field[Any]]:
    """The section type and the field of a flat key (the first section that has it)."""
    section = _SECTION_TYPES[sections_of(key)[0]]
    return section, next(f for f in dataclasses.fields(section) if f.name == key)


def field_type(key: str) -> type:
    """The Python type of a config key (``int``, ``float``, ``bool`` or ``str``)."""
    if key == "algo":
        return str
    section, _ = field_of(key)
    hint = typing.get_type_hints(section)[key]
    if typing.get_origin(hint) is Literal:
        return str
    if isinstance(hint, types.UnionType):  # pragma: no cover - no optional fields today
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def key_choices(key: str) -> tuple[str, ...]:
    if key == "algo":
        return ALGOS
    section, _ = field_of(key)
    return _choices(section, key)


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (from YAML or the command line) to the key's type, or raise."""
    if name != "algo" and not sections_of(name):
        raise ConfigError(
            f"unknown config key {brief(name)}: valid keys are {', '.join(all_keys())}"
        )
    kind = field_type(name)
    if isinstance(value, list | tuple | dict | set) and not (
        name == "stages" and isinstance(value, list | tuple)
    ):  # never str() it: YAML aliases can make a nested value exponentially large
        raise ConfigError(f"bad value {brief(value)} for {name}: expected {kind.__name__}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    elif kind is int:
        whole: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            whole = value
        elif isinstance(value, str | float) and not isinstance(value, bool):
            text = str(value).replace("_", "").strip()
            try:
                whole = int(text)
            except ValueError:
                with contextlib.suppress(ValueError):  # 1e6, 5000.0
                    number = float(text)
                    whole = int(number) if number.is_integer() else None
        if whole is not None:
            if abs(whole) > MAX_INT:
                raise ConfigError(
                    f"bad value {brief(value)} for {name}: whole numbers up to {MAX_INT:.0e}"
                )
            return whole
    elif kind is float:
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                pass
            else:
                if math.isfinite(number):
                    return number
                raise ConfigError(f"bad value {brief(value)} for {name}: must be a finite number")
    elif isinstance(value, str | os.PathLike):  # a run_dir may be a Path
        value = os.fspath(value)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ConfigError(
                f"bad value {brief(value)} for {name}: expected text of at most {MAX_TEXT:,} "
                "characters"
            )
        return value
    elif name == "stages" and isinstance(value, list | tuple):  # YAML list, CLI nargs
        if len(value) > MAX_STAGES or not all(isinstance(v, str | int) for v in value):
            raise ConfigError(
                f"bad value {brief(value)} for stages: expected at most {MAX_STAGES} stage "
                "names or worlds (e.g. [1-1, 1-2] or [1])"
            )
        return coerce(name, " ".join(str(v) for v in value))
    raise ConfigError(f"bad value {brief(value)} for {name}: expected {kind.__name__}")


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into ``{key: typed value}``.

    The file is bounded (:data:`MAX_CONFIG_BYTES`) and every value must be a scalar, or a flat
    list for ``stages``: nested values (also YAML's aliases, which can describe an exponential
    document in a few hundred bytes) are refused before anything expands them.
    """
    shown = repr(brief_path(path))
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {shown} does not exist") from None
    except OSError as error:
        raise ConfigError(
            f"cannot read config file {shown}: {error.strerror or type(error).__name__}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {shown} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a mario "
            "config (a file of key: value lines)"
        )
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {shown}: not a text (YAML) file") from None
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot read config file {shown}: {first[:120]}") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of 5,000 digits, [[[[...
        raise ConfigError(
            f"cannot read config file {shown}: {type(error).__name__} while parsing it"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {shown} must hold a mapping of key: value")
    values: dict[str, Any] = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise ConfigError(f"config file {shown}: key {brief(k)} is not a name")
        values[k.replace("-", "_")] = coerce(k.replace("-", "_"), v)
    return values


def build_config(base: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Defaults <- ``base`` (a checkpoint's or YAML's values) <- ``overrides``; validated.

    A key that belongs only to the other algorithm's section is an error.
    """
    values: dict[str, Any] = {}
    for source in (base or {}, overrides):
        for key, value in source.items():
            values[key] = coerce(key, value)
    algo = values.pop("algo", "dqn")
    if algo not in ALGOS:
        raise ConfigError(f"bad value {brief(algo)} for algo: valid values are {', '.join(ALGOS)}")
    other = "ppo" if algo == "dqn" else "dqn"
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTION_TYPES}
    for key, value in values.items():
        names = sections_of(key)
        common = [n for n in names if n in COMMON_SECTIONS]
        if common:
            sections[common[0]][key] = value
        elif algo in names:
            sections[algo][key] = value
        else:
            raise ConfigError(
                f"{key} is a {other.upper()} option: not valid with algo {algo} "
                f"(use --algo {other}, or leave it out)"
            )
    built = {name: _SECTION_TYPES[name](**kw) for name, kw in sections.items()}
    dist = built["dist"]
    if dist.ray_address:  # one replay stream per remote emulator
        built["run"].num_envs = dist.num_actors * dist.envs_per_actor
    return TrainConfig(algo=algo, **built).validate()


def check_algo(saved: dict[str, Any], wanted: str | None, checkpoint: Path) -> None:
    """Raise ConfigError if a resume asks for another algorithm than the checkpoint's."""
    algo = saved.get("algo", "dqn")
    if wanted is not None and wanted != algo:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with algo {algo}: a run can't change its "
            f"algorithm (start a new run for {wanted})"
        )


def check_resumable(saved: dict[str, Any], config: TrainConfig, checkpoint: Path) -> None:
    """Raise ConfigError if ``config`` changes what a checkpoint's network was built for
    (``saved``: the checkpoint's flat config)."""
    check_algo(saved, config.algo, checkpoint)
    if config.env.actions != saved["actions"] or config.env.stack != saved["stack"]:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with actions={saved['actions']!r}, "
            f"stack={saved['stack']}: a run can't change its network's inputs or outputs"
        )
    if config.env.reward != saved.get("reward", "classic"):
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with reward={saved.get('reward', 'classic')}: "
            "a run can't change its reward (its replay memory and values hold the old scale); "
            "start a new run for another reward"
        )
