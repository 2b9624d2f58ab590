"""What every learning algorithm offers the runner, the checkpoints and the player.

The runner (:mod:`mario.training.runner`) drives an :class:`Algorithm` through one loop for every
algorithm: ``act`` on a batch of observations, ``observe`` each finished vector step,
``learn`` whatever is due (while the emulators run the next step), and read ``stats`` when it
logs. Everything an algorithm must keep across a restart is in ``state_dict`` (plain values
and tensors) and, for large buffers such as a replay memory, in files it writes itself
(``replay_writer``/``load_replay``). Evaluation and replay videos only need its :class:`Policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn


@dataclass
class Transition:
    """One vector step, as the algorithms store it (arrays over the ``E`` envs).

    ``next_obs`` is the true next observation: where an episode ended, its final one (not
    the auto-reset first observation of the next episode). A remote actor's batch
    (:mod:`mario.distributed`) is ``T`` steps of some of the run's envs at once: every array
    has a leading time axis, ``obs`` and ``next_obs`` hold only the newest frames
    (``(T, E, H, W)``), ``streams`` names the envs (None: all envs, in order), and ``cut``
    says the episodes in flight on them were lost before (a replaced actor) and end there.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    streams: np.ndarray | None = None
    cut: bool = False

    @property
    def steps(self) -> int:
        """Agent steps held (envs x time steps)."""
        return int(self.action.size)


@dataclass
class ActionValues:
    """What the network thought of each action when it chose one (the replay overlay shows it).

    ``values`` (A,): Q-values (``kind="Q"``) or action probabilities (``kind="π"``);
    ``state_value``: the critic's V(s) when there is one.
    """

    kind: str
    values: list[float]
    state_value: float | None = None


class Policy(Protocol):
    """Acting without learning: what evaluation and replay videos use."""

    n_actions: int

    def act(
        self, obs: np.ndarray, *, explore: float = 0.0
    ) -> tuple[np.ndarray, list[ActionValues] | None]:
        """Actions (N,) for ``obs`` (N, ...): greedy, or with ``explore`` the algorithm's
        own randomness (ε for DQN, sampling for PPO); and per row what the overlay shows
        (None for a random policy)."""
        ...


class Algorithm(Protocol):
    """A learning algorithm, as the runner and the checkpoints see it."""

    name: ClassVar[str]

    @property
    def net(self) -> nn.Module:
        """The network whose weights a checkpoint holds and learning uses."""
        ...

    def act(
        self, obs: np.ndarray, step: int, explore_floor: np.ndarray | None = None
    ) -> np.ndarray:
        """Training actions (E,) for ``obs`` at agent step ``step`` (exploration included);
        ``explore_floor`` (E,): the least exploration each env asks for (the start archive's
        episodes explore more), for algorithms that honour it (their spec says so)."""
        ...

    def observe(self, transition: Transition, step: int) -> None:
        """Store one finished vector step (``step``: agent steps after it)."""
        ...

    def learn(self, step: int) -> None:
        """Do the updates due by ``step``; statistics stay on the device until ``stats``."""
        ...

    def stats(self) -> dict[str, float]:
        """Averages of the learning statistics since the last call (one device sync);
        raises ``FloatingPointError`` if they or the weights hold NaN/inf."""
        ...

    @property
    def updates(self) -> int:
        """Gradient updates so far."""
        ...

    def status(self, step: int) -> dict[str, float]:
        """A few numbers for log lines and the progress bar (e.g. ε), no device sync."""
        ...

    def policy(self) -> Policy:
        """The acting policy evaluations during training play (on :attr:`net`, or on the
        weights ``state_dict()["acting"]`` holds)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: at least ``net`` (:attr:`net`'s weights), and ``acting``
        where the policy it plays has weights of its own (keys as :attr:`net`'s)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def replay_writer(self) -> Callable[[Path], None] | None:
        """A function that writes the replay memory into a folder (fsynced), or None when
        there is nothing to save beside ``state_dict`` (the checkpoint's ``replay/``)."""
        ...

    def load_replay(self, folder: Path | None) -> str | None:
        """Read what the replay writer wrote (``folder`` None: the checkpoint has none);
        returns a note for the user, or None."""
        ...


def check_finite(net: nn.Module, stats: list[torch.Tensor]) -> None:
    """Raise FloatingPointError if ``net``'s weights or the stacked ``stats`` hold NaN/inf
    (one device sync for all of it)."""
    params = [p.detach() for p in net.parameters() if p.requires_grad]
    finite = torch.stack([torch.isfinite(p).all() for p in params]).all()
    if stats:
        finite = finite & torch.isfinite(torch.stack(stats)).all()
    if not bool(finite):
        raise FloatingPointError("the loss or the weights became NaN/inf")
