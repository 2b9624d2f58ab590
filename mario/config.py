"""The typed run configuration: one dataclass, its field docs are ``mario train --help``.

A config comes from the defaults, then a YAML file (``--config FILE``, optionally a preset
from ``configs/``), then command-line overrides. Unknown keys and bad values raise
:class:`ConfigError` with one line that names the key, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mario.env import ACTION_SETS, check_pipeline_args, parse_stage


class ConfigError(ValueError):
    """A bad config key or value; the message is one line for the user."""


def _f(default: Any, help: str, **choices: Any) -> Any:
    return field(default=default, metadata={"help": help, **choices})


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in the run folder and in every checkpoint."""

    # -- game and pipeline
    stage: str = _f("1-1", "stage to train on: W-S (1-1 .. 8-4) or 'all' for the full game")
    actions: str = _f("simple", "action set", choices=tuple(ACTION_SETS))
    frame_skip: int = _f(4, "NES frames per agent step (the action repeats, rewards sum)")
    resize: int = _f(84, "side of the square grayscale frame the network sees")
    stack: int = _f(4, "frames stacked into one observation")
    noop_max: int = _f(30, "random idle frames (0..N) at each episode start, from the seed")
    max_episode_steps: int = _f(0, "agent steps before an episode is truncated (0: no limit)")
    # -- run
    total_steps: int = _f(5_000_000, "agent steps (over all envs) the run trains for in total")
    num_envs: int = _f(4, "parallel environments, one process each")
    device: str = _f("auto", "torch device: auto (CUDA when present), cpu, cuda, cuda:N")
    seed: int = _f(0, "seed for envs, exploration and network init")
    run_dir: str = _f("", "run folder (default: checkpoints/<stage>-<timestamp>)")
    checkpoint_every: int = _f(50_000, "agent steps between checkpoints")
    keep_checkpoints: int = _f(3, "newest checkpoints kept (the best one is kept as well)")
    save_replay: bool = _f(True, "save the replay memory with checkpoints (resume keeps it)")
    log_every: int = _f(2_000, "agent steps between metric logs / curve refreshes")
    wandb_mode: str = _f(
        "auto",
        "W&B: auto (online if logged in, else offline), online, offline, disabled",
        choices=("auto", "online", "offline", "disabled"),
    )
    wandb_project: str = _f("mario", "W&B project name")
    # -- evaluation
    eval_every: int = _f(0, "agent steps between greedy evaluations with a video (0: never)")
    eval_episodes: int = _f(3, "episodes per evaluation")
    # -- learning
    gamma: float = _f(0.99, "discount factor")
    n_step: int = _f(3, "n-step returns (1: plain one-step targets)")
    lr: float = _f(1e-4, "Adam learning rate")
    batch_size: int = _f(32, "replay samples per update")
    replay_size: int = _f(100_000, "replay memory size in transitions (~7 KiB each)")
    prioritized: bool = _f(False, "prioritized replay (TorchRL PrioritizedSampler)")
    burn_in: int = _f(10_000, "agent steps of random play before learning starts")
    replay_ratio: float = _f(0.25, "gradient updates per agent step")
    target_sync: str = _f(
        "hard", "target head update: hard copy or soft (Polyak)", choices=("hard", "soft")
    )
    target_update_every: int = _f(2_000, "updates between hard target syncs")
    tau: float = _f(0.005, "Polyak factor for soft target updates")
    grad_clip: float = _f(10.0, "gradient-norm clip")
    dueling: bool = _f(False, "dueling Q head")
    amp: bool = _f(False, "bf16 autocast on CUDA")
    compile: bool = _f(False, "torch.compile the network on CUDA")
    cuda_graph: bool = _f(
        True, "capture the learner update in a CUDA graph (CUDA only; not with --compile)"
    )
    # -- exploration from save states (mario/archive.py)
    archive_share: float = _f(
        0.0, "share of training episodes started from archived save states (0: off)"
    )
    archive_cell: int = _f(64, "archive cell width in x pixels")
    archive_backoff: int = _f(3, "cells before a deadly one that a start may be chosen")
    archive_repeat: int = _f(4, "archived episodes in a row from one cell (a switch replays)")
    archive_max_cells: int = _f(512, "archive size bound (cells per env process)")
    # -- exploration
    exploration: str = _f(
        "epsilon", "epsilon-greedy or boltzmann (softmax over Q)", choices=("epsilon", "boltzmann")
    )
    eps_start: float = _f(1.0, "initial epsilon")
    eps_end: float = _f(0.05, "final epsilon (floor)")
    eps_decay_steps: int = _f(1_000_000, "agent steps for epsilon to reach its floor")
    eps_schedule: str = _f("linear", "epsilon decay shape", choices=("linear", "exponential"))
    temperature: float = _f(1.0, "Boltzmann temperature")

    def validate(self) -> TrainConfig:
        """Check every value; raise ConfigError naming the first bad one."""
        try:
            parse_stage(self.stage)
            check_pipeline_args(frame_skip=self.frame_skip, resize=self.resize, stack=self.stack)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.resize != 84:
            raise ConfigError(
                f"bad value {self.resize!r} for resize: MarioNet takes 84x84 frames (valid: 84)"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(
                    f"bad value {value!r} for {f.name}: valid values are {', '.join(choices)}"
                )
        if not 0.0 <= self.archive_share <= 1.0:
            raise ConfigError(
                f"bad value {self.archive_share!r} for archive_share: must be in [0, 1]"
            )
        positive = (
            "archive_cell",
            "archive_repeat",
            "archive_max_cells",
            "total_steps",
            "num_envs",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "eval_episodes",
            "n_step",
            "batch_size",
            "replay_size",
            "target_update_every",
            "eps_decay_steps",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"bad value {getattr(self, name)!r} for {name}: must be >= 1")
        for name in (
            "noop_max",
            "max_episode_steps",
            "eval_every",
            "burn_in",
            "replay_ratio",
            "seed",
            "archive_backoff",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"bad value {getattr(self, name)!r} for {name}: must be >= 0")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"bad value {self.gamma!r} for gamma: must be in (0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"bad value {self.tau!r} for tau: must be in (0, 1]")
        if not 0.0 <= self.eps_end <= self.eps_start <= 1.0:
            raise ConfigError(
                f"bad epsilon range {self.eps_start!r} -> {self.eps_end!r}: "
                "need 0 <= eps_end <= eps_start <= 1"
            )
        if self.lr <= 0 or self.temperature <= 0 or self.grad_clip <= 0:
            raise ConfigError("lr, temperature and grad_clip must be > 0")
        smallest = self.num_envs * (self.stack + self.n_step + 2) + self.batch_size
        if self.replay_size < smallest:
            raise ConfigError(
                f"bad value {self.replay_size!r} for replay_size: too small for "
                f"{self.num_envs} envs and batch {self.batch_size} (need >= {smallest})"
            )
        # device: checked (and resolved) by mario.net.resolve_device before a run starts
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_env_kwargs(self) -> dict[str, Any]:
        """:meth:`env_kwargs` plus the training-only start archive (never in evaluation)."""
        kwargs = self.env_kwargs()
        if self.archive_share > 0:
            kwargs["archive"] = {
                "share": self.archive_share,
                "repeat": self.archive_repeat,
                "cell_size": self.archive_cell,
                "backoff": self.archive_backoff,
                "max_cells": self.archive_max_cells,
            }
        return kwargs

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`mario.make_env` for this config's pipeline."""
        return {
            "actions": self.actions,
            "frame_skip": self.frame_skip,
            "resize": self.resize,
            "stack": self.stack,
            "noop_max": self.noop_max,
            "max_episode_steps": self.max_episode_steps or None,
        }


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_type(name: str) -> type:
    """The Python type of a config field (``int``, ``float``, ``bool`` or ``str``)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    if isinstance(hint, types.UnionType):  # pragma: no cover - no optional fields today
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (from YAML or the command line) to the field's type, or raise."""
    if name not in FIELDS:
        raise ConfigError(f"unknown config key {name!r}: valid keys are {', '.join(FIELDS)}")
    kind = field_type(name)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            number = float(str(value).replace("_", ""))
            if number.is_integer():
                return int(number)
        except ValueError:
            pass
    elif kind is float:
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                pass
            else:
                if math.isfinite(number):
                    return number
                raise ConfigError(f"bad value {value!r} for {name}: must be a finite number")
    elif isinstance(value, str):
        return value
    raise ConfigError(f"bad value {value!r} for {name}: expected {kind.__name__}")


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into ``{key: typed value}``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"cannot read config file {str(path)!r}: not a text (YAML) file"
        ) from None
    except (OSError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot read config file {str(path)!r}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value")
    return {str(k).replace("-", "_"): coerce(str(k).replace("-", "_"), v) for k, v in data.items()}


def build_config(base: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Defaults ← ``base`` (e.g. a checkpoint's or YAML's values) ← ``overrides``; validated."""
    values: dict[str, Any] = {}
    for source in (base or {}, overrides):
        for key, value in source.items():
            values[key] = coerce(key, value)
    return TrainConfig(**values).validate()


def check_resumable(saved: dict[str, Any], config: TrainConfig, checkpoint: Path) -> None:
    """Raise ConfigError if ``config`` changes what a checkpoint's network was built for
    (``saved``: the checkpoint's config)."""
    if config.actions != saved["actions"] or config.stack != saved["stack"]:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with actions={saved['actions']!r}, "
            f"stack={saved['stack']}: a run can't change its network's inputs or outputs"
        )
