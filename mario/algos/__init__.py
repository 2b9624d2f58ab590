"""The learning algorithms: each one a folder ``mario/algos/<name>/`` whose ``spec`` module
defines an :class:`~mario.algos.spec.AlgorithmSpec`, registered here by name.

Everything else looks an algorithm up by name (:func:`get`): the config's settings section,
building it, its acting policy, what a Ray actor runs, its memory needs. Double DQN and PPO
are built in; another algorithm registers its spec with :func:`register` (from any module
that is imported before the run starts), or from an installed package through the
``mario.algorithms`` entry-point group, and then ``mario train --algo NAME`` trains it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from mario.algos.dqn.spec import SPEC as _DQN
from mario.algos.ppo.spec import SPEC as _PPO
from mario.algos.spec import AlgorithmSpec
from mario.errors import brief
from mario.settings import ConfigError

_SPECS: dict[str, AlgorithmSpec] = {_DQN.name: _DQN, _PPO.name: _PPO}
_plugins_loaded = False


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Make ``spec`` available as ``--algo spec.name`` (again is fine; another spec under a
    taken name is a ValueError)."""
    held = _SPECS.get(spec.name)
    if held is not None and held is not spec:
        raise ValueError(f"an algorithm named {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a registered algorithm (tests register and drop their own)."""
    _SPECS.pop(name, None)


def _load_plugins() -> None:
    """Register the specs that installed packages declare (entry-point group
    ``mario.algorithms``, each pointing at an AlgorithmSpec), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group="mario.algorithms"):
        register(point.load())


def specs() -> tuple[AlgorithmSpec, ...]:
    """Every registered algorithm, built-in ones first."""
    _load_plugins()
    return tuple(_SPECS.values())


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in specs())


def get(name: str) -> AlgorithmSpec:
    """The spec of algorithm ``name``; ConfigError naming the valid ones otherwise."""
    _load_plugins()
    spec = _SPECS.get(name)
    if spec is None:
        raise ConfigError(
            f"bad value {brief(name)} for algo: valid values are {', '.join(names())}"
        )
    return spec
