"""mario: train pixel-based agents (Double DQN or PPO) to play Super Mario Bros, and watch
them play.

``import mario`` loads neither torch nor the emulator; the names below are imported on
first use: ``make_env``, ``make_vec_env``, ``MarioEnv``, ``ACTION_SETS`` (the game), and
``train``, ``load_agent``, ``random_agent``, ``play``, ``evaluate``, ``write_video`` (the
Python API, :mod:`mario.api`) and its errors ``ConfigError`` and ``CheckpointError``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"
_LAZY = {
    "ACTION_SETS": "mario.game.env",
    "MarioEnv": "mario.game.env",
    "make_env": "mario.game.env",
    "make_vec_env": "mario.game.env",
    "train": "mario.api",
    "load_agent": "mario.api",
    "random_agent": "mario.api",
    "play": "mario.api",
    "evaluate": "mario.api",
    "write_video": "mario.api",
    "ConfigError": "mario.config",
    "CheckpointError": "mario.storage.run_folders",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mario' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
