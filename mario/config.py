"""The typed run configuration, in sections that check themselves.

A training run has an algorithm (``algo``: a name in :mod:`mario.algos`' registry, ``dqn`` or
``ppo`` built in) and five sections: ``run`` (what to train on, how long, where), ``env`` (the
pixel pipeline and the start archive), ``eval`` (evaluations during training), ``dist``
(emulator actors on a Ray cluster, off by default), and the algorithm's own settings
(:attr:`TrainConfig.algorithm`, a section its folder defines).
Outside the code the config is one flat mapping of keys (YAML files, presets, ``mario train
--KEY VALUE``, ``config.yaml`` and checkpoints): every key names one field. A key of another
algorithm's section is an error naming the algorithm it belongs to; keys two algorithms share
(``lr``, ``gamma``, ``grad_clip``) go to the selected one.

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
from typing import TYPE_CHECKING, Any, Literal, get_args

import yaml

from mario import algos
from mario.algos.spec import AlgorithmSettings, Context
from mario.errors import brief, brief_path, first_line
from mario.game.options import (
    ACTION_SET_NAMES,
    BACK_STEP,
    MAX_STICKY,
    PREV_ACTION_ROWS,
    REWARD_NAMES,
    check_pipeline_args,
    parse_stage,
)
from mario.settings import (
    ConfigError,
    at_least,
    check_choices,
    choices,
    keys,
    setting,
    within,
)

if TYPE_CHECKING:
    import torch

WandbMode = Literal["auto", "online", "offline", "disabled"]
ActionSet = Literal["right_only", "simple", "complex"]
assert get_args(ActionSet) == ACTION_SET_NAMES
Reward = Literal["classic", "upstream"]
assert get_args(Reward) == REWARD_NAMES


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
#: Most entries in a ``stages`` list (World 1-8 has 32 stages; repeats are dropped).
MAX_STAGES = 64


#: Characters W&B refuses in a project name (it would fail after the run folder is written).
WANDB_FORBIDDEN = ("/", "\\", "#", "?", "%", ":")
#: ``auto``, or a host name / IPv4 / [IPv6] address and a port.
_RAY_ADDRESS = re.compile(r"auto|local|([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,4})")
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

    stage: str = setting("1-1", "stage to train on: W-S (1-1 .. 8-4) or 'all' for the full game")
    stages: str = setting(
        "",
        "several stages at once, spread over the envs (env i plays the i-th, cycling): W-S "
        "names or whole worlds (2: 2-1 .. 2-4), e.g. '1-1 1-2' or '1 2'; evaluation covers "
        "them all ('': --stage only)",
    )
    total_steps: int = setting(5_000_000, "agent steps (over all envs) the run trains for in total")
    num_envs: int = setting(
        4, "parallel environments, one process each (set by --num-actors with --ray-address)"
    )
    device: str = setting("auto", "torch device: auto (CUDA when present), cpu, cuda, cuda:N")
    seed: int = setting(0, "seed for envs, exploration and network init")
    run_dir: str = setting("", "run folder (default: checkpoints/<stage>-<timestamp>)")
    checkpoint_every: int = setting(50_000, "agent steps between checkpoints")
    keep_checkpoints: int = setting(3, "newest checkpoints kept (the best one is kept as well)")
    log_every: int = setting(2_000, "agent steps between metric logs")
    wandb_mode: WandbMode = setting(
        "auto", "W&B: auto (online if wandb has a key, else offline), online, offline, disabled"
    )
    wandb_project: str = setting("mario", "W&B project name")
    tensorboard: bool = setting(False, "also write TensorBoard event files to RUN/tensorboard")

    def validate(self) -> None:
        try:
            parse_stage(self.stage)
            stages = self.stage_list()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        at_least(self, 1, "total_steps", "num_envs", "checkpoint_every", "keep_checkpoints")
        if len(stages) > self.num_envs:
            raise ConfigError(
                f"bad value {brief(self.stages)} for stages: {len(stages)} stages need at least as "
                f"many envs, got num_envs {self.num_envs} (raise --num-envs or --num-actors)"
            )
        at_least(self, 1, "log_every")
        within(self, 0, MAX_SEED, "seed")
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

    actions: ActionSet = setting("simple", "action set: right_only (5), simple (7), complex (12)")
    reward: Reward = setting(
        "classic",
        "reward: classic (gym-super-mario-bros 7.4.0's x progress + clock + death) or "
        "upstream (9.x's: new best x, score, coins, power-ups, completion, clock, death)",
    )
    frame_skip: int = setting(4, "NES frames per agent step (the action repeats, rewards sum)")
    resize: int = setting(84, "side of the square grayscale frame the network sees")
    stack: int = setting(4, "frames stacked into one observation")
    noop_max: int = setting(30, "random idle frames (0..N) at each episode start, from the seed")
    max_episode_steps: int = setting(0, "agent steps before an episode is truncated (0: no limit)")
    death_penalty: float = setting(
        0.0, "extra penalty on the step a life is lost, beyond the reward's own (0: none)"
    )
    prev_action: bool = setting(
        False,
        "show the network its previous action: a one-hot band painted into the top rows of "
        "each frame (Mario jumps on a fresh press of A: what is held is state)",
    )
    sticky: float = setting(
        0.0,
        "sticky actions in training: each emulator frame plays the previous frame's buttons "
        "with this probability, 0 to 0.99 (Machado et al. 2018; evaluations choose their own)",
    )
    stall_steps: int = setting(
        0,
        "training: end an episode (truncated) after this many agent steps without passing its "
        "furthest x, and count it where it stalled as the start archive counts a death (0: "
        "off; evaluations play to the time limit)",
    )
    archive_share: float = setting(
        0.0, "share of training episodes started from archived save states (0: off)"
    )
    archive_cell: int = setting(64, "archive cell width in x pixels")
    archive_cell_y: int = setting(
        0,
        "archive cell height in y pixels (0: cells by x only, so a wall's top and its foot "
        "are one cell)",
    )
    archive_backoff: int = setting(3, "cells before a deadly one that a start may be chosen")
    archive_repeat: int = setting(4, "archived episodes in a row from one cell (a switch replays)")
    archive_max_cells: int = setting(512, "archive size bound (cells per env process)")
    archive_settle: int = setting(
        0, "agent steps an episode must survive after entering a cell for it to be archived"
    )
    archive_backward: float = setting(
        0.0,
        "share of archived starts taken on the shortest path to the flag this run found, "
        "first near its end, moving back as episodes from there reach the flag (Go-Explore's "
        "robustification; 0: off)",
    )
    archive_backward_stride: int = setting(
        BACK_STEP,
        f"largest move of the backward start, in emulator frames: moves begin at {BACK_STEP}, "
        "double after a start that half its episodes passed and halve after 10 that mostly "
        f"failed ({BACK_STEP}: every move is {BACK_STEP})",
    )
    archive_eps: float = setting(
        0.0,
        "exploration floor in training episodes started from the archive (explore after "
        "return; DQN: an epsilon floor; 0: the algorithm's own)",
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
        at_least(
            self,
            0,
            "noop_max",
            "max_episode_steps",
            "stall_steps",
            "archive_backoff",
            "archive_settle",
            "archive_cell_y",
        )
        at_least(self, 0.0, "death_penalty")
        at_least(self, 1, "archive_cell", "archive_repeat", "archive_max_cells")
        at_least(self, BACK_STEP, "archive_backward_stride")
        within(self, 0.0, 1.0, "archive_share", "archive_eps", "archive_backward")
        within(self, 0.0, MAX_STICKY, "sticky")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`mario.make_env` for this pipeline (no sticky actions, no
        archive: what an evaluation plays)."""
        return {
            "actions": self.actions,
            "reward": self.reward,
            "frame_skip": self.frame_skip,
            "resize": self.resize,
            "stack": self.stack,
            "noop_max": self.noop_max,
            "max_episode_steps": self.max_episode_steps or None,
            "death_penalty": self.death_penalty,
            "prev_action": self.prev_action,
        }

    def train_kwargs(self) -> dict[str, Any]:
        """:meth:`kwargs` plus what only training has: its sticky actions, the stall limit and
        the start archive (an evaluation chooses its own stickiness, plays to the time limit
        and starts at the real start)."""
        kwargs = self.kwargs() | {"sticky": self.sticky, "stall_steps": self.stall_steps}
        if self.archive_share > 0:
            kwargs["archive"] = {
                "share": self.archive_share,
                "repeat": self.archive_repeat,
                "cell_size": self.archive_cell,
                "cell_height": self.archive_cell_y,
                "backoff": self.archive_backoff,
                "max_cells": self.archive_max_cells,
                "settle": self.archive_settle,
                "backward": self.archive_backward,
                "stride": self.archive_backward_stride,
            }
        return kwargs


@dataclass
class EvalConfig:
    """Greedy evaluations during training (each with a video; they pick the best checkpoint)."""

    eval_every: int = setting(0, "agent steps between greedy evaluations with a video (0: never)")
    eval_episodes: int = setting(3, "episodes per evaluation")
    eval_robust: bool = setting(
        False,
        "also evaluate with epsilon 0.05 and with sticky actions 0.25 (same seeds): their flag "
        "rates are logged beside, and the best checkpoint is the most robust one",
    )

    def validate(self) -> None:
        at_least(self, 0, "eval_every")
        at_least(self, 1, "eval_episodes")


@dataclass
class DistConfig:
    """Emulator actors on a Ray cluster; off while ``ray_address`` is empty. DQN: Ape-X style
    (actors stream batches, the learner broadcasts weights every ``weights_every`` s); PPO:
    synchronous rollouts of ``n_steps`` (``actor_steps``, ``actor_inflight``,
    ``weights_every`` and ``ordered`` do not apply).

    With a ``ray_address`` the run's ``num_envs`` is ``num_actors * envs_per_actor``: one
    replay stream (PPO: rollout column) per remote emulator.
    """

    ray_address: str = setting(
        "",
        "Ray cluster for emulator actors: auto (the cluster this machine joined), HOST:PORT, "
        "or local (a private Ray instance on this machine, no ray start) ('': no Ray, "
        "emulator processes on this machine; needs mario[distributed])",
    )
    num_actors: int = setting(2, "with --ray-address: remote actors, one CPU each")
    envs_per_actor: int = setting(1, "with --ray-address: emulators stepped by each actor (1-8)")
    actor_steps: int = setting(
        32, "with --ray-address, DQN: vector steps per batch an actor sends (1-4096)"
    )
    actor_inflight: int = setting(
        2, "with --ray-address, DQN: batches in flight per actor, 1-16 (backpressure)"
    )
    weights_every: float = setting(
        2.0, "with --ray-address, DQN: seconds between weight broadcasts"
    )
    ordered: bool = setting(
        False,
        "with --ray-address, DQN: take the actors' batches in turn and broadcast the weights "
        "after each round (not as they come and every weights_every s): a reproducible run, "
        "at the pace of the slowest actor",
    )

    def validate(self) -> None:
        if self.ray_address and not _RAY_ADDRESS.fullmatch(self.ray_address):
            raise ConfigError(
                f"bad value {brief(self.ray_address)} for ray_address: expected auto, local "
                "or HOST:PORT (e.g. 10.0.0.5:6379)"
            )
        at_least(self, 1, "num_actors")
        within(self, 1, MAX_ENVS_PER_CORE, "envs_per_actor")  # an actor has one CPU
        within(self, 1, 4096, "actor_steps")  # a batch of T x K frames in memory
        within(self, 1, 16, "actor_inflight")  # batches waiting in the learner's memory
        if not self.weights_every > 0:
            raise ConfigError(
                f"bad value {brief(self.weights_every)} for weights_every: must be > 0 (seconds)"
            )


#: The run's own sections, by name; the algorithm's comes from its spec (:mod:`mario.algos`).
SECTIONS: dict[str, type] = {
    "run": RunConfig,
    "env": EnvConfig,
    "eval": EvalConfig,
    "dist": DistConfig,
}


@dataclass
class TrainConfig:
    """A whole run's config: the algorithm, the run's sections and the algorithm's settings
    (see the module docstring)."""

    algo: str = "dqn"
    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    algorithm: AlgorithmSettings = None  # type: ignore[assignment]  # set in __post_init__
    """The selected algorithm's settings section (e.g. a DQNConfig); its defaults if None."""

    def __post_init__(self) -> None:
        if self.algorithm is None:
            self.algorithm = algos.get(self.algo).settings()

    def validate(self) -> TrainConfig:
        """Check every section; raise ConfigError naming the first bad value."""
        spec = algos.get(self.algo)
        if not isinstance(self.algorithm, spec.settings):
            raise ConfigError(
                f"the settings of algo {self.algo} must be a {spec.settings.__name__}, got "
                f"{type(self.algorithm).__name__}"
            )
        for section in (self.dist, self.run, self.env, self.eval):
            section.validate()
            check_choices(section)
        self.algorithm.validate(self.run.num_envs, self.env.stack)
        check_choices(self.algorithm)
        if self.env.archive_eps > 0 and not spec.honours_explore_floor:
            raise ConfigError(
                f"--archive-eps is not available with algo {self.algo} (it cannot raise its "
                "exploration in the archive's episodes): leave it out"
            )
        if self.distributed:
            self._check_distributed()
        return self

    @property
    def distributed(self) -> bool:
        """Whether the emulators run as actors on a Ray cluster."""
        return bool(self.dist.ray_address)

    def context(self, n_actions: int, device: torch.device) -> Context:
        """What the algorithm learns on (its :class:`~mario.algos.spec.Context`)."""
        return Context(
            n_actions=n_actions,
            stack=self.env.stack,
            frame_size=self.env.resize,
            num_envs=self.run.num_envs,
            total_steps=self.run.total_steps,
            seed=self.run.seed,
            device=device,
            band_rows=PREV_ACTION_ROWS if self.env.prev_action else 0,
        )

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
        """The flat mapping: ``algo``, the run's sections and the algorithm's settings."""
        flat: dict[str, Any] = {"algo": self.algo}
        for section in (self.run, self.env, self.eval, self.dist, self.algorithm):
            flat.update(dataclasses.asdict(section))
        return flat


def _sections() -> dict[str, type]:
    """Every section type by name: the run's, then each registered algorithm's."""
    return {**SECTIONS, **{spec.name: spec.settings for spec in algos.specs()}}


def sections_of(key: str) -> list[str]:
    """The sections that hold ``key`` (several for a key algorithms share, e.g. ``lr``)."""
    return [name for name, kind in _sections().items() if key in keys(kind)]


def all_keys() -> list[str]:
    """Every flat key, once, in section order (``algo`` first)."""
    found = ["algo"]
    for kind in _sections().values():
        found += [k for k in keys(kind) if k not in found]
    return found


def field_of(key: str) -> tuple[type, dataclasses.Field[Any]]:
    """The section type and the field of a flat key (the first section that has it)."""
    section = _sections()[sections_of(key)[0]]
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
        return algos.names()
    section, _ = field_of(key)
    return choices(section, key)


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
        raise ConfigError(f"cannot read config file {shown}: {first_line(error)[:120]}") from None
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

    A key that belongs only to another algorithm's section is an error.
    """
    values: dict[str, Any] = {}
    for source in (base or {}, overrides):
        for key, value in source.items():
            values[key] = coerce(key, value)
    algo = values.pop("algo", "dqn")
    spec = algos.get(algo)
    built: dict[str, dict[str, Any]] = {name: {} for name in (*SECTIONS, "algorithm")}
    for key, value in values.items():
        names = sections_of(key)
        common = [n for n in names if n in SECTIONS]
        if common:
            built[common[0]][key] = value
        elif algo in names:
            built["algorithm"][key] = value
        else:
            owners = ", ".join(n.upper() for n in names)
            raise ConfigError(
                f"{key} is a {owners} option: not valid with algo {algo} "
                f"(use --algo {names[0]}, or leave it out)"
            )
    sections = {name: SECTIONS[name](**kw) for name, kw in built.items() if name in SECTIONS}
    dist = sections["dist"]
    if dist.ray_address:  # one replay stream per remote emulator
        sections["run"].num_envs = dist.num_actors * dist.envs_per_actor
    settings = spec.settings(**built["algorithm"])
    return TrainConfig(algo=algo, algorithm=settings, **sections).validate()


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
    prev_action = saved.get("prev_action", False)
    if (
        config.env.actions != saved["actions"]
        or config.env.stack != saved["stack"]
        or config.env.prev_action != prev_action
    ):
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with actions={saved['actions']!r}, "
            f"stack={saved['stack']}, prev_action={prev_action}: a run can't change its "
            "network's inputs or outputs"
        )
    if config.env.reward != saved.get("reward", "classic"):
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with reward={saved.get('reward', 'classic')}: "
            "a run can't change its reward (its replay memory and values hold the old scale); "
            "start a new run for another reward"
        )
