"""What an algorithm is to the rest of mario: one :class:`AlgorithmSpec`, registered by name.

The runner, the checkpoints, evaluation, the Ray actors, the preflight checks and the CLI
know an algorithm only through its spec (:func:`mario.algos.get`): its settings section
(whose fields are config keys), how to build it for a :class:`Context`, how to rebuild its
acting policy from weights, what a remote actor runs, how much memory its buffer takes.
Nothing here imports torch: the spec is read when input is checked, before anything heavy
loads; its functions import their algorithm when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from mario.algos.base import Algorithm, Policy


class AlgorithmSettings(Protocol):
    """An algorithm's settings section: a dataclass of :func:`mario.settings.setting` fields
    (its config keys) that checks itself."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def validate(self, num_envs: int, stack: int) -> None:
        """:class:`~mario.settings.ConfigError` naming the first bad value (``num_envs``,
        ``stack``: the run's, for checks across sections)."""
        ...


@dataclass(frozen=True)
class Context:
    """What an algorithm learns on, without the rest of the run's config: its actions, the
    observation (``stack`` frames of ``frame_size`` squared), the envs stepped at once, the
    run's length, seed and device."""

    n_actions: int
    stack: int
    frame_size: int
    num_envs: int
    total_steps: int
    seed: int
    device: torch.device
    band_rows: int = 0
    """Rows at the top of each frame that are not the picture (the previous action's band)."""


class ActorPolicy(Protocol):
    """What a remote actor (:mod:`mario.distributed.actor`) acts with: the learner's latest
    weights, broadcast now and then, for a few of the run's envs."""

    def set_weights(self, weights: dict[str, torch.Tensor], version: int, step: int) -> None:
        """Act with ``weights`` (update ``version``) from now on; ``step``: the learner's
        agent step (exploration schedules follow it)."""
        ...

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions (K,) for the actor's envs' observations (K, C, H, W); random play until
        the first weights arrive."""
        ...


def _no_notes(settings: Any, ctx: Context) -> list[str]:
    return []


@dataclass(frozen=True)
class AlgorithmSpec:
    """One learning algorithm, as the rest of mario sees it (module docstring)."""

    name: str
    """The ``--algo`` value."""
    title: str
    """A few words for ``--help``, e.g. "Double DQN"."""
    settings: type[AlgorithmSettings]
    """Its settings section (:class:`AlgorithmSettings`), instantiated with keyword values."""
    make: Callable[[Any, Context], Algorithm]
    """``(settings, context)``: the algorithm, its network on ``context.device``."""
    load_policy: Callable[[Any, dict[str, torch.Tensor], Context], Policy]
    """``(settings, weights, context)``: the acting policy of a checkpoint's network weights,
    or of :attr:`acting_weights` alone (a shipped agent)."""
    acting_weights: Callable[[nn.Module], dict[str, torch.Tensor]]
    """The weights acting needs, in float16: what a Ray actor is sent and an agent ships."""
    actor: Callable[[Any, Context, int, int], ActorPolicy]
    """``(settings, context, first_env, run_envs)``: the policy a Ray actor runs for its
    ``context.num_envs`` envs, which are the run's ``first_env``, ``first_env + 1``, ... of
    ``run_envs`` in all (``context.seed`` is the actor's)."""
    network: Callable[[Any, Context], nn.Module]
    """``(settings, context)``: the network a checkpoint holds, on the CPU (its size tells
    the preflight checks how large a checkpoint is)."""
    buffer_bytes: Callable[[Any, Context], tuple[int, int]]
    """``(settings, context)``: bytes of the training buffer's frames (on the device) and of
    its other arrays (host memory), for the preflight checks."""
    buffer_option: str
    """The setting that sizes the buffer, named when it does not fit (``replay_size``)."""
    saves_buffer: Callable[[Any], bool]
    """Whether checkpoints hold the buffer (a replay memory) beside the state."""
    rollout_steps: Callable[[Any], int | None]
    """On-policy: every env's rollout length, which remote actors play in rounds with one
    weights version (synchronous); None: off-policy, actors stream batches."""
    honours_explore_floor: bool = False
    """Whether ``act(..., explore_floor=...)`` raises exploration where asked (the start
    archive's ``archive_eps``); an algorithm that cannot refuses that setting."""
    notes: Callable[[Any, Context], list[str]] = field(default=_no_notes)
    """Warnings about a run's settings, printed at the start (e.g. a burn-in past the end)."""
