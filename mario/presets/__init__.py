"""Named training configs (YAML files beside this module), for ``mario train --preset NAME``."""

from __future__ import annotations

from pathlib import Path

from mario.config import ConfigError

_HERE = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = _HERE / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}: valid presets are {', '.join(names())}")
    return path
