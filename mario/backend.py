"""Which game libraries run the emulator: the maintained 9.x ones or the classic ones.

``pyproject.toml``'s environment markers choose at install time: Python >= 3.13 gets
nes-py 9 / gym-super-mario-bros 9 (Gymnasium-native, binary wheels, NumPy-2 clean);
Python 3.10-3.12 gets nes-py 8.2.1 / gym-super-mario-bros 7.4.0 (built from source, on the
old ``gym``), with the NumPy-2 layer in :mod:`mario._compat`. Here the installed nes-py's
major version picks the same way at run time.

Both run the same game: :mod:`mario.game` computes reward, termination and ``info`` itself
on either backend, so nothing above it knows which one runs. Importing this module loads
the emulator; :func:`describe` and :func:`versions` do not (``mario --version`` uses them).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

__all__ = [
    "BUTTON_BITS",
    "COMPLEX_MOVEMENT",
    "NAME",
    "RIGHT_ONLY",
    "SIMPLE_MOVEMENT",
    "SuperMarioBrosEnv",
    "describe",
    "versions",
]

_PACKAGES = ("nes-py", "gym-super-mario-bros")


def versions() -> dict[str, str]:
    """Installed versions of the game libraries (from package metadata: no import)."""
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def backend_name(nes_py_version: str | None = None) -> str:
    """``"upstream"`` (nes-py >= 9) or ``"classic"`` (nes-py 8.2.1 with our NumPy-2 layer)."""
    version = nes_py_version or versions()["nes-py"]
    major = version.split(".")[0]
    return "upstream" if major.isdigit() and int(major) >= 9 else "classic"


def describe() -> str:
    """One line for ``mario --version`` and checkpoints: the backend and its versions."""
    found = versions()
    libraries = ", ".join(f"{name} {version}" for name, version in found.items())
    return f"{backend_name(found['nes-py'])} ({libraries})"


#: ``"upstream"`` or ``"classic"``: the backend this process runs.
NAME = backend_name()

SuperMarioBrosEnv: Any
if NAME == "upstream":
    from gym_super_mario_bros import actions as _actions
    from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
    from nes_py.wrappers import JoypadSpace
else:
    from mario._compat import JoypadSpace, SuperMarioBrosEnv, _actions

RIGHT_ONLY: list[list[str]] = _actions.RIGHT_ONLY
SIMPLE_MOVEMENT: list[list[str]] = _actions.SIMPLE_MOVEMENT
COMPLEX_MOVEMENT: list[list[str]] = _actions.COMPLEX_MOVEMENT
#: Button name -> controller bit, as nes-py's JoypadSpace defines it.
BUTTON_BITS: dict[str, int] = dict(JoypadSpace._button_map)
