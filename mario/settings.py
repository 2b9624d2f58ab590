"""The pieces every settings section is made of: typed fields with a help text, the checks
that name a bad value in one line, and :class:`ConfigError`.

A section is a dataclass whose fields are flat config keys (``mario train --KEY VALUE``,
YAML files, presets, ``config.yaml``); each field's help text becomes its ``--help`` line.
The run's own sections live in :mod:`mario.config`, each algorithm's in its folder
(:mod:`mario.algos`). Nothing here imports torch, so checking input stays fast.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, get_args

from mario.errors import brief

#: Narrowest and widest torso an algorithm's ``net_width`` may ask for, times the Nature CNN's
#: channels: at the narrowest 4 channels in the first layer (at 1/64 a layer would have none).
MIN_NET_WIDTH = 0.125
MAX_NET_WIDTH = 4.0


class ConfigError(ValueError):
    """A bad config key or value; the message is one line for the user."""


def setting(default: Any, help: str) -> Any:
    """A section field: its default and the help text ``--help`` shows."""
    return dataclasses.field(default=default, metadata={"help": help})


def at_least(section: Any, low: float, *names: str) -> None:
    """ConfigError naming the first of ``names`` whose value is below ``low``."""
    for name in names:
        value = getattr(section, name)
        if value < low:
            raise ConfigError(f"bad value {brief(value)} for {name}: must be >= {low:g}")


def within(section: Any, low: float, high: float, *names: str, open_low: bool = False) -> None:
    """ConfigError naming the first of ``names`` outside ``[low, high]`` (``(low, high]``)."""
    for name in names:
        value = getattr(section, name)
        if not (low < value if open_low else low <= value) or value > high:
            bracket = "(" if open_low else "["
            raise ConfigError(
                f"bad value {brief(value)} for {name}: must be in {bracket}{low}, {high}]"
            )


def positive(section: Any, *names: str) -> None:
    """ConfigError naming the first of ``names`` that is not > 0."""
    for name in names:
        value = getattr(section, name)
        if not value > 0:
            raise ConfigError(f"bad value {brief(value)} for {name}: must be > 0")


def choices(section: type, name: str) -> tuple[str, ...]:
    """The valid values of a ``Literal`` field (none for other types)."""
    hint = typing.get_type_hints(section)[name]
    return get_args(hint) if typing.get_origin(hint) is Literal else ()


def check_choices(section: Any) -> None:
    """ConfigError naming the first ``Literal`` field whose value is not one of its choices."""
    for f in dataclasses.fields(section):
        valid = choices(type(section), f.name)
        if valid and getattr(section, f.name) not in valid:
            raise ConfigError(
                f"bad value {brief(getattr(section, f.name))} for {f.name}: valid values are "
                f"{', '.join(valid)}"
            )


def keys(section: type) -> tuple[str, ...]:
    """The flat keys a section holds."""
    return tuple(f.name for f in dataclasses.fields(section))
