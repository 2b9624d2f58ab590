"""Which game libraries run the emulator: the maintained 9.x ones or the classic ones.

``pyproject.toml``'s environment markers choose at install time: Python >= 3.13 gets
nes-py 9 / gym-super-mario-bros 9 (Gymnasium-native, binary wheels, NumPy-2 clean);
Python 3.10-3.12 gets nes-py 8.2.1 / gym-super-mario-bros 7.4.0 (built from source, on the
old ``gym``), with the NumPy-2 layer in :mod:`mario.game._classic`. Here the installed nes-py's
major version picks the same way at run time.

Both run the same game: :mod:`mario.game.rules` imports the chosen library and computes reward,
termination and ``info`` itself on either backend, so nothing above it knows which one
runs. This module only names the backend (from package metadata, without loading the
emulator), for ``mario --version``, ``mario info`` and checkpoints.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["BACKENDS", "NAME", "backend_name", "describe", "versions"]

#: The two backends: nes-py 9.x, and nes-py 8.2.1 with mario.game._classic.
BACKENDS: tuple[str, ...] = ("upstream", "classic")

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


#: ``"upstream"`` or ``"classic"``: the backend this process runs.
NAME = backend_name()
