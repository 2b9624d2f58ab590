"""The local collector (mario/training/collector.py) on small fakes: a step runs ahead and
comes back as one transition, episodes end with their true last frame, and the start
archive's episodes ask for more exploration and are counted in its metrics; on the real game,
the envs of several stages pool their start archives per stage."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from mario.game.env import make_vec_env
from mario.training.collector import LocalCollector
from tests.toy_env import make_corridor


def _cell(x: int) -> dict[str, Any]:
    return {"key": [1, 1, 0], "x": x, "prefix": b"\x80" * x, "deaths": 0.0, "starts": 0}


class _ArchiveLike(gym.Wrapper):
    """The corridor with what :class:`mario.game.archive.ArchiveStarts` adds to ``info``:
    every other episode "starts from the archive" (at x 3), and each such start costs 10
    replayed emulator frames; the archive's state is a list of cells."""

    def __init__(self) -> None:
        super().__init__(make_corridor())
        self.episodes, self.frames = 0, 0
        self.cells: list[dict[str, Any]] = [_cell(5)]

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        archived = self.episodes % 2 == 1
        return info | {
            "from_archive": archived,
            "start_x": 3 if archived else 0,
            "rebuild_frames": self.frames,
        }

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.episodes += 1
        self.frames += 10 * (self.episodes % 2 == 1)
        return obs, self._info(info)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._info(info)

    def archive_state(self) -> dict[str, Any]:
        return {"cell_size": 64, "cells": self.cells}

    def load_archive(self, state: dict[str, Any], counts: bool) -> None:
        self.cells = list(state["cells"])


def _vec(factory: Any, n: int) -> gym.vector.AsyncVectorEnv:
    envs = gym.vector.AsyncVectorEnv(
        [factory] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    envs.reset(seed=0)
    return envs


def test_a_step_runs_ahead_and_comes_back_as_one_transition() -> None:
    collector = LocalCollector(_vec(make_corridor, 2))
    obs = collector.reset()
    assert obs.shape == (2, 4, 84, 84) and collector.explore_floor() is None
    ended = []
    for _ in range(30):  # the corridor truncates at 25 steps
        actions = np.array([1, 2])  # stay; walk right (reaches the goal)
        collector.send(obs, actions)
        next_obs, (transition,), done = collector.receive()
        assert transition.obs is obs and (transition.action == actions).all()
        for i in np.flatnonzero(transition.terminated):  # the walker at the goal (x 72)
            # where an episode ended: its true last frame, not the next episode's first
            assert not np.array_equal(transition.next_obs[i], next_obs[i])
        ended += done
        obs = next_obs
    walker = [e for e in ended if e.flag]
    assert walker and all(e.start_x is None and e.stage is None for e in ended)
    assert all(0 < e.length <= 25 for e in ended)
    assert collector.metrics() == {} and collector.state_dict() is None
    collector.close()


def test_archive_episodes_ask_for_exploration_and_are_counted() -> None:
    collector = LocalCollector(
        _vec(_ArchiveLike, 2),
        archive=True,
        archive_eps=0.4,
    )
    resumed = {"cell_size": 64, "cells": [_cell(9)]}
    obs = collector.reset(resumed)
    assert collector.state_dict() == resumed
    floors = []
    ended = []
    for _ in range(60):
        floors.append(collector.explore_floor())
        collector.send(obs, np.array([2, 2]))
        obs, _, done = collector.receive()
        ended += done
    # every other episode of each env is "from the archive": ε 0.4 there, nothing elsewhere
    assert any(f is not None and list(f) == [0.4, 0.4] for f in floors)
    assert any(f is None for f in floors)
    archived = [e for e in ended if e.start_x is not None]
    assert archived and all(e.start_x == 3 for e in archived)
    collector.sync()
    rebuilt = sum(collector.envs.get_attr("frames"))  # what the envs replayed so far
    metrics = collector.metrics()
    assert metrics["archive_cells"] == 1 and metrics["archive_frontier_x"] == 9
    assert metrics["archive_episode_share"] == len(archived) / len(ended)
    assert metrics["archive_rebuild_frames_per_step"] == rebuilt / (60 * 2)
    assert collector.metrics()["archive_episode_share"] == 0  # counted since the last call
    collector.close()


def test_envs_of_several_stages_pool_archives_per_stage() -> None:
    archive = {"share": 0.5, "repeat": 2}
    envs = make_vec_env(
        4, ["1-1", "1-2"], seed=0, actions="right_only", max_episode_steps=60, archive=archive
    )
    collector = LocalCollector(envs, archive=True, stages=["1-1", "1-2"])
    try:  # a failed assert must not leave the workers running (pytest would wait on them)
        obs = collector.reset()
        rng = np.random.default_rng(0)
        for t in range(1, 241):
            collector.send(obs, rng.integers(0, 5, size=4))
            obs, _, _ = collector.receive()
            if t % 60 == 0:
                collector.sync()
        # a process's archive holds only cells of the stage it plays: a prefix of another
        # stage's would replay from the wrong start
        for i, state in enumerate(envs.call("archive_state")):
            assert state["cells"] and {tuple(c["key"][:2]) for c in state["cells"]} == {
                (1, 1 + i % 2)
            }
        saved = collector.state_dict()
        assert saved is not None and set(saved["stages"]) == {"1-1", "1-2"}
        metrics = collector.metrics()
        assert metrics["archive_cells/1-2"] == len(saved["stages"]["1-2"]["cells"]) > 0
        assert metrics["archive_cells"] == sum(len(p["cells"]) for p in saved["stages"].values())
    finally:
        collector.close()
