"""The boundary between the training loop and the emulators (:class:`Collector`), and the
emulators on this machine: a vector env, stepped ahead (:class:`LocalCollector`).

:class:`LocalCollector` sends the actions of step t+1 to the emulator processes before the
loop stores step t and learns (``send`` … ``receive``), so the emulators run while the
learner works. It also keeps the episodes' running returns and lengths, hands back finished
episodes, and, when save-state exploration is on, merges the processes' start archives (at
moments when no step is pending, so the processes can answer), reports the archive's figures
and asks the algorithm for more exploration in the archive's episodes. The Ray collectors
(:mod:`mario.distributed`) are the other implementations of the same boundary.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium.vector import AsyncVectorEnv

from mario.algos.base import Transition
from mario.game.archive import merge_by_stage, stage_parts

#: Exit status of a run whose emulators were lost with their machines (a Ray cluster's head):
#: it saved first, and a restart resumes (or keeps trying to reach the cluster).
EXIT_CLUSTER_LOST = 5
#: Exit status of a run whose actors failed again and again with an error of their own: it
#: saved first; a restart would fail the same way.
EXIT_ACTORS_FAILING = 6


class EmulatorsLost(Exception):
    """The emulators can't go on (a lost Ray cluster, actors that keep failing) while the
    learner is intact: the runner saves a checkpoint, prints the one-line message and exits
    with ``exit_status`` (docs/RELIABILITY.md)."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class EpisodeEnd:
    """A finished training episode. ``start_x`` is set when it began at an archived state
    (``backward``: the backward start on the path to the flag); ``stage`` when it is not the
    run's stage (remote actors on a list of stages); ``stalled`` when the stall limit ended it
    (mario.game.env.StallLimit)."""

    ret: float
    length: int
    x_pos: int
    flag: bool
    start_x: int | None = None
    stage: str | None = None
    backward: bool = False
    stalled: bool = False

    @classmethod
    def from_final(
        cls, final: dict[str, Any], i: int, ret: float, length: int, stage: str | None = None
    ) -> EpisodeEnd:
        """Env ``i``'s episode as its vector env's ``final_info`` ends it; the keys only some
        wrappers set (the start archive's, the stall limit's) read as absent without them."""

        def flag(key: str) -> bool:
            return bool(final[key][i]) if key in final else False

        archived = flag("from_archive")
        return cls(
            float(ret),
            int(length),
            int(final["x_pos"][i]),
            bool(final["flag_get"][i]),
            int(final["start_x"][i]) if archived else None,
            stage,
            flag("backward"),
            flag("stalled"),
        )


class Collector(Protocol):
    """What the runner's loop needs of the emulators: :class:`LocalCollector` (processes on
    this machine) or :class:`mario.distributed.collector.RayCollector` (actors on a cluster)."""

    chooses_actions: bool
    """True when the emulators choose their actions themselves (remote actors): the loop
    then sends none."""

    def reset(self, state: dict[str, Any] | None = None) -> Any:
        """Start (``state``: what :meth:`state_dict` gave a checkpoint); the first
        observations (None when the emulators choose their actions)."""
        ...

    def send(self, obs: Any, actions: Any) -> None:
        """Start the next step with ``actions`` chosen for ``obs`` (both None when the
        emulators choose their actions)."""
        ...

    def receive(self) -> tuple[Any, list[Transition], list[EpisodeEnd]]:
        """The next observations to act on, the steps finished, the episodes ended."""
        ...

    def explore_floor(self) -> np.ndarray | None:
        """Per env, the least exploration its current episode asks for (None: nothing extra);
        the loop hands it to the algorithm's ``act``."""
        ...

    def sync(self) -> None:
        """Bring the emulators' shared state up to date (no step may be pending)."""
        ...

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint keeps of the emulators (the start archive), or None."""
        ...

    def metrics(self) -> dict[str, float]:
        """The collector's own figures for the train log, since the last call."""
        ...

    def close(self) -> None: ...


class LocalCollector:
    """Steps ``envs`` one vector step ahead of the loop (see the module docstring)."""

    chooses_actions = False

    def __init__(
        self,
        envs: AsyncVectorEnv,
        *,
        archive: bool = False,
        archive_eps: float = 0.0,
        stages: list[str] | None = None,
    ) -> None:
        """``archive``: the envs start a share of episodes from their start archive
        (:class:`mario.game.archive.ArchiveStarts`), whose episodes explore with at least
        ``archive_eps``; ``stages``: what env ``i`` plays is the ``i``-th (cycling), named in
        the episodes it ends when there are several; each stage's envs pool their archive."""
        self.envs = envs
        self.stages = stages if stages and len(stages) > 1 else None
        self._names = list(stages or [""])  # "": one unnamed stage, as ArchiveStarts' default
        self.num_envs = envs.num_envs
        self.archive = archive
        self.archive_eps = archive_eps
        self._parts: dict[str, dict[str, Any]] = {}  # merged per stage, as of the last sync
        self._rebuild_frames = 0  # emulator frames spent rebuilding archived start states
        self._from_archive = np.zeros(self.num_envs, dtype=bool)  # current episodes' starts
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._pending = False
        self._sent: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
        self._since = {"steps": 0, "episodes": 0, "archive_episodes": 0, "rebuild_frames": 0}

    def reset(self, state: dict[str, Any] | None = None) -> np.ndarray:
        """First observations; ``state`` (a resumed run's archive) goes to every process."""
        if self.archive and state is not None:
            self._parts = stage_parts(state, self._names)
            packed = self.state_dict()
            if packed is not None:
                self.envs.call("load_archive", packed, True)
        obs, info = self.envs.reset()
        self._note_starts(info)
        return obs

    def send(self, obs: np.ndarray, actions: np.ndarray) -> None:
        """Start the step that takes ``actions`` in the observations ``obs``."""
        self.envs.step_async(actions)
        self._sent = (obs, actions)
        self._pending = True

    def receive(self) -> tuple[np.ndarray, list[Transition], list[EpisodeEnd]]:
        """The step sent last: the observations to act on next (where an episode ended, the
        next episode's first), the transition (one: with the true final observation where
        an episode ended), and the episodes it ended."""
        next_obs, reward, terminated, truncated, info = self.envs.step_wait()
        obs, actions = self._sent
        self._pending = False
        done = terminated | truncated
        true_next = next_obs
        if done.any():
            true_next = next_obs.copy()
            for i in np.flatnonzero(done):
                true_next[i] = info["final_obs"][i]
        self._returns += reward
        self._lengths += 1
        if "rebuild_frames" in info:  # per process, cumulative (archive starts)
            self._rebuild_frames = int(np.sum(info["rebuild_frames"]))
        ended = []
        for i in np.flatnonzero(done).tolist():
            stage = self.stages[i % len(self.stages)] if self.stages else None
            end = EpisodeEnd.from_final(
                info["final_info"], i, self._returns[i], self._lengths[i], stage
            )
            ended.append(end)
            self._returns[i], self._lengths[i] = 0.0, 0
            self._since["archive_episodes"] += end.start_x is not None
        self._since["episodes"] += len(ended)
        self._since["steps"] += self.num_envs
        self._note_starts(info)
        transition = Transition(obs, actions, reward, terminated, truncated, true_next)
        return next_obs, [transition], ended

    def _note_starts(self, info: dict[str, Any]) -> None:
        if "from_archive" in info:  # the episodes now running (a new one where one ended)
            self._from_archive = np.asarray(info["from_archive"], dtype=bool)

    def explore_floor(self) -> np.ndarray | None:
        """``archive_eps`` for the envs whose episode started from the archive (Go-Explore's
        explore after return: near the frontier the greedy policy is what keeps dying)."""
        if not self.archive or self.archive_eps <= 0 or not self._from_archive.any():
            return None
        return np.where(self._from_archive, self.archive_eps, 0.0)

    def sync(self) -> None:
        """Merge the start archives of the processes that play a stage and hand them the
        merged cells (no step may be pending: between ``receive`` and ``send``)."""
        if not self.archive or self._pending:
            return
        self._parts = merge_by_stage(list(self.envs.call("archive_state")), self._names)
        self.envs.call("load_archive", self.state_dict(), False)

    def state_dict(self) -> dict[str, Any] | None:
        """The merged start archive as of the last :meth:`sync` (None without one): one
        stage's as it is, several stages' as ``{"stages": {name: archive}}``."""
        if self.stages is None:
            return self._parts.get(self._names[0])
        return {"stages": self._parts}

    def metrics(self) -> dict[str, float]:
        """The start archive's figures since the last call: its cells and frontier, the share
        of ended episodes that started from it, the emulator frames replayed to build
        start states per agent step, and once an episode reached the flag, the length of
        the shortest such path and how far back along it the backward start has got
        (frames; nothing without an archive). With several stages, each stage's figures
        are also given as ``name/stage``; ``archive_cells`` is their sum and
        ``archive_frontier_x`` the furthest."""
        if not self.archive:
            return {}
        since = self._since
        figures = {name: _archive_figures(part) for name, part in self._parts.items()}
        out: dict[str, float] = {
            "archive_cells": sum(f["archive_cells"] for f in figures.values()),
            "archive_frontier_x": max(
                (f["archive_frontier_x"] for f in figures.values()), default=0
            ),
        }
        if self.stages is None:
            out.update(next(iter(figures.values()), {}))
        else:
            for name, part in sorted(figures.items()):
                out.update({f"{key}/{name}": value for key, value in part.items()})
        out["archive_episode_share"] = since["archive_episodes"] / max(1, since["episodes"])
        out["archive_rebuild_frames_per_step"] = (
            self._rebuild_frames - since["rebuild_frames"]
        ) / max(1, since["steps"])
        self._since = {
            "steps": 0,
            "episodes": 0,
            "archive_episodes": 0,
            "rebuild_frames": self._rebuild_frames,
        }
        return out

    def close(self) -> None:
        with warnings.catch_warnings():  # "close while waiting for step": expected on errors
            warnings.simplefilter("ignore")
            self.envs.close()


def _archive_figures(state: dict[str, Any]) -> dict[str, float]:
    """One stage's archive: its cells, its frontier and, once an episode reached the flag, the
    shortest such path and how far back along it the backward start has got (frames)."""
    cells = state.get("cells", [])
    success = len(state.get("success") or b"")
    backward = (
        {"archive_success_frames": success, "archive_backward_frames": state["back"]}
        if success
        else {}
    )
    return backward | {
        "archive_cells": len(cells),
        "archive_frontier_x": max((c["x"] for c in cells), default=0),
    }
