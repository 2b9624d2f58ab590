"""Exploration from save states: start some training episodes where the agent keeps dying.

From the stage's real start, an agent gets a handful of tries per hour at the obstacle that
kills it; most of each episode replays the easy start. This module keeps a bounded archive of
game states the agent itself reached (Go-Explore's "return, then explore"; the backward
curriculum of "Learning Montezuma's Revenge from a single demonstration") and starts a share
of the training episodes from them, weighted toward the cells where episodes end in death.

* A *cell* is ``(world, stage, x // cell_size, y // cell_height)`` (``cell_height`` 0: by x
  only; with it, a wall's top and its foot, or a jump over a gap and the walk into it, are
  different cells); its state is stored as the prefix of button
  bytes, one per emulator frame, that reaches it from the real start (the emulator is
  deterministic, so :class:`mario.game.env.MarioEnv` rebuilds it by replaying). For each cell the
  archive keeps the shortest prefix seen: more game time left, a cheaper rebuild. On nes-py 9
  the wrapper also keeps a snapshot of the state it reached itself, and starts there load it
  instead of replaying the prefix.
* Choosing a start: a *target* cell with probability proportional to its recent deaths and
  stalls (:class:`mario.game.env.StallLimit`; a count that decays with every episode) plus a
  small floor, then the archived cell up to ``backoff`` cells before it, so the agent gets a
  run-up to the obstacle.
* Robustifying a success (Go-Explore's "backward algorithm", after Salimans & Chen 2018):
  the archive also keeps the shortest prefix of an episode of this run that reached the flag.
  With ``backward`` > 0, that share of the archived starts begins on that path, first
  :data:`BACK_STEP` frames before the flag; once :data:`BACK_PASS` of the last
  :data:`BACK_WINDOW` episodes from there reached the flag, the start moves
  further back, until it is the real start. A move is :data:`BACK_STEP` frames at first;
  with a ``stride`` above that, it doubles (up to ``stride``) after a start that at least
  :data:`BACK_EASY` of its episodes passed and halves after a full window that failed, so
  easy stretches of the path cost few episodes. The processes pool their progress: a sync
  brings every process's start to the furthest any has reached. Learning from a start
  near a reward and moving back is quadratic instead of exponential in the distance to it
  (Salimans & Chen), and the states are the agent's own, so what it learns holds from the
  real start, where evaluations begin.
* Honest by construction: the archive holds only what the agent's own episodes reached (no
  recorded inputs, no level knowledge: cells are x positions); the network still sees pixels
  only; evaluation, ``mario eval`` and replays never use it and start at the real start.

:class:`ArchiveStarts` is the Gymnasium wrapper that does this inside each emulator process;
the trainer merges the workers' archives now and then (:func:`merge_states`) and saves the
merged archive with its checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from mario.game.options import BACK_STEP

CellKey = tuple[int, int, int, int]
"""``(world, stage, x // cell_size, y // cell_height)`` (the last 0 without ``cell_height``)."""

_BACKWARD: CellKey = (-1, -1, -1, -1)
"""The key of the pseudo-cell a backward start is (no archived cell has it)."""

BACK_WINDOW = 10
"""Episodes from the current backward start that decide whether it moves back."""
BACK_PASS = 0.2
"""Share of those that must reach the flag (Go-Explore's 20%), out of at least half a window."""
BACK_EASY = 0.5
"""Share of them that makes the next move twice as long (when ``stride`` allows)."""


@dataclass
class Cell:
    key: CellKey
    prefix: bytes
    """Button byte of every emulator frame from the real start to the cell."""
    x: int
    """x position when the prefix first reached the cell."""
    y: int = 0
    """y position then."""
    deaths: float = 0.0
    """Count of episodes that ended by death in this cell, decayed by ``decay`` per episode."""
    starts: int = 0
    """Episodes started from this cell's state."""
    snapshot: Any = field(default=None, repr=False, compare=False)
    """The emulator state the prefix reaches, where the backend saves states (nes-py 9) and
    this process reached it: a start loads it instead of replaying the prefix. Not saved in
    checkpoints nor shared between workers (opaque, in-process); there the prefix rebuilds."""


class CellArchive:
    """Cells the agent reached, their shortest prefixes and where episodes die."""

    def __init__(
        self,
        *,
        cell_size: int = 64,
        cell_height: int = 0,
        max_cells: int = 512,
        backoff: int = 3,
        decay: float = 0.995,
        floor: float = 0.05,
        stride: int = BACK_STEP,
    ) -> None:
        if (
            cell_size < 1
            or stride < BACK_STEP
            or cell_height < 0
            or max_cells < 1
            or backoff < 0
            or not 0.0 < decay <= 1.0
        ):
            raise ValueError(
                f"bad archive settings: cell_size={cell_size}, cell_height={cell_height}, "
                f"max_cells={max_cells}, backoff={backoff}, decay={decay}, stride={stride} "
                f"(need >= 1, >= 0, >= 1, >= 0, (0, 1], >= {BACK_STEP})"
            )
        self.cell_size = cell_size
        self.cell_height = cell_height
        self.max_cells = max_cells
        self.backoff = backoff
        self.decay = decay
        self.floor = floor
        self.cells: dict[CellKey, Cell] = {}
        self._columns: dict[tuple[int, int, int], set[CellKey]] = {}  # cells by x index
        self._death_scale = 1.0  # deaths are stored divided by this (lazy decay: O(1))
        self.success: bytes = b""
        """The shortest prefix of an episode of this run that reached the flag (empty: none)."""
        self.back = BACK_STEP
        """Emulator frames before the end of :attr:`success` that a backward start begins."""
        self.stride = stride
        self.move = BACK_STEP
        """Frames the backward start moves back next (:data:`BACK_STEP` up to ``stride``)."""
        self._outcomes: list[bool] = []  # flags of the last episodes from the current start

    def __len__(self) -> int:
        return len(self.cells)

    def key(self, info: dict[str, Any]) -> CellKey:
        return self.key_of(int(info["world"]), int(info["stage"]), int(info["x_pos"]), _y(info))

    def key_of(self, world: int, stage: int, x: int, y: int) -> CellKey:
        rows = y // self.cell_height if self.cell_height else 0
        return (world, stage, x // self.cell_size, rows)

    def _near(self, world: int, stage: int, index: int, row: int) -> Cell | None:
        """The archived cell at x index ``index`` whose y row is nearest ``row``."""
        keys = self._columns.get((world, stage, index))
        if not keys:
            return None
        return self.cells[min(keys, key=lambda k: (abs(k[3] - row), k[3]))]

    @property
    def frontier_x(self) -> int:
        """The largest x of an archived cell (0 when empty)."""
        return max((c.x for c in self.cells.values()), default=0)

    def wants(self, key: CellKey, length: int) -> bool:
        """Whether a prefix of ``length`` frames to ``key`` would be kept (saves a copy)."""
        cell = self.cells.get(key)
        return cell is None or length < len(cell.prefix)

    def observe(
        self, key: CellKey, x: int, prefix: bytes, snapshot: Any = None, y: int = 0
    ) -> bool:
        """Offer the state ``prefix`` reaches (``snapshot``: that state, if saved; at ``x``,
        ``y``) for ``key``: kept if the cell is new or the prefix shorter. Returns whether
        the archive changed."""
        cell = self.cells.get(key)
        if cell is not None:
            if len(prefix) >= len(cell.prefix):
                return False
            cell.prefix, cell.x, cell.y, cell.snapshot = prefix, x, y, snapshot
            return True
        self.cells[key] = Cell(key, prefix, x, y, snapshot=snapshot)
        self._columns.setdefault(key[:3], set()).add(key)
        if len(self.cells) > self.max_cells:
            self._evict()
        return True

    def _evict(self) -> None:
        """Drop the cell least worth returning to: fewest recent deaths, then smallest x."""
        worst = min(self.cells.values(), key=lambda c: (c.deaths, c.x))
        del self.cells[worst.key]
        column = self._columns[worst.key[:3]]
        column.discard(worst.key)
        if not column:
            del self._columns[worst.key[:3]]

    def record_end(self, key: CellKey, *, died: bool) -> None:
        """An episode ended in ``key``: every death count decays; a death adds one to the
        archived cell at or before ``key`` (the very cell may be new: entered and died in)."""
        self._death_scale /= self.decay
        if self._death_scale > 1e12:  # renormalise before the stored counts lose precision
            for cell in self.cells.values():
                cell.deaths /= self._death_scale
            self._death_scale = 1.0
        if not died:
            return
        world, stage, index, row = key
        for i in range(index, -1, -1):
            found = self._near(world, stage, i, row)
            if found is not None:
                found.deaths += self._death_scale
                return

    def choose(self, rng: np.random.Generator) -> Cell | None:
        """A start cell: a death-weighted target, then a cell up to ``backoff`` before it."""
        if not self.cells:
            return None
        cells = list(self.cells.values())
        deaths = np.array([c.deaths / self._death_scale for c in cells])
        weights = deaths + self.floor * max(1.0, float(deaths.sum())) / len(cells)
        target = cells[int(rng.choice(len(cells), p=weights / weights.sum()))]
        world, stage, index, row = target.key
        back = int(rng.integers(0, self.backoff + 1))
        for i in range(index - back, index + 1):  # the nearest archived cell at or after it
            cell = self._near(world, stage, i, row)
            if cell is not None:
                cell.starts += 1
                return cell
        return None  # unreachable: the target itself is archived

    # -- the backward curriculum on the shortest success -------------------------------------
    def observe_success(self, prefix: bytes) -> bool:
        """Offer the prefix of an episode that reached the flag; kept if the first or
        shorter (the backward start keeps its distance from the end). Whether it was kept."""
        if self.success and len(prefix) >= len(self.success):
            return False
        self.success = prefix
        return True

    @property
    def backward_done(self) -> bool:
        """Whether the backward start has reached the real start (nothing left to move)."""
        return bool(self.success) and self.back >= len(self.success)

    def backward_start(self) -> bytes | None:
        """The prefix a backward start replays: :attr:`success` less its last :attr:`back`
        frames (None without a success or once the start is the real start)."""
        if not self.success or self.backward_done:
            return None
        return self.success[: len(self.success) - self.back]

    def record_backward(self, flag: bool) -> None:
        """An episode from the backward start ended (``flag``: it reached the flag); move the
        start back once enough of the recent ones did."""
        self._outcomes = [*self._outcomes, flag][-BACK_WINDOW:]
        n, flags = len(self._outcomes), sum(self._outcomes)
        if n >= BACK_WINDOW // 2 and flags >= BACK_PASS * n:
            self.back = min(self.back + self.move, len(self.success))
            if flags >= BACK_EASY * n:
                self.move = min(2 * self.move, self.stride)
            self._outcomes = []
        elif n == BACK_WINDOW:  # a full window that failed: smaller moves from here on
            self.move = max(self.move // 2, BACK_STEP)

    def state_dict(self) -> dict[str, Any]:
        """Plain values only (a checkpoint loads it with ``torch.load(weights_only=True)``)."""
        return {
            "cell_size": self.cell_size,
            "cell_height": self.cell_height,
            "success": self.success or None,  # weights_only torch.load refuses an empty bytes
            "back": self.back,
            "move": self.move,
            "cells": [
                {
                    "key": list(c.key),
                    "prefix": c.prefix,
                    "x": c.x,
                    "y": c.y,
                    "deaths": c.deaths / self._death_scale,
                    "starts": c.starts,
                }
                for c in self.cells.values()
            ],
        }

    def load_state_dict(self, state: dict[str, Any], *, counts: bool = True) -> None:
        """Add ``state``'s cells (a shorter prefix wins); with ``counts`` also take its death
        and start counts (on resume), else keep this archive's own (a sync between workers).
        Cells of another ``cell_size`` (a run resumed with another ``--archive-cell``) are
        put into this archive's cells by their x, without their counts. The shorter success
        wins; a resume takes the backward start's distance and next move, a sync takes them
        when they are further back than this archive's own (the processes pool progress)."""
        same_size = (int(state["cell_size"]), int(state.get("cell_height", 0))) == (
            self.cell_size,
            self.cell_height,
        )
        if state.get("success"):
            self.observe_success(bytes(state["success"]))
        back = max(BACK_STEP, int(state.get("back", BACK_STEP)))
        move = min(self.stride, max(BACK_STEP, int(state.get("move", BACK_STEP))))
        if counts or back > self.back:  # a resume, or another process got further
            if back != self.back:
                self._outcomes = []
            self.back, self.move = back, move
        for item in state["cells"]:
            world, stage, x = int(item["key"][0]), int(item["key"][1]), int(item["x"])
            y = int(item.get("y", 0))
            saved = [int(k) for k in item["key"]] + [0]  # cells saved before y: row 0
            key: CellKey = (world, stage, saved[2], saved[3])
            if not same_size:
                key = self.key_of(world, stage, x, y)
            self.observe(key, x, bytes(item["prefix"]), y=y)
            cell = self.cells.get(key)
            if counts and same_size and cell is not None:
                cell.deaths = float(item["deaths"]) * self._death_scale
                cell.starts = int(item["starts"])


def _y(info: dict[str, Any]) -> int:
    return int(info.get("y_pos", 0))


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One archive from several workers': every cell with its shortest prefix, and the mean
    of the workers' counts (so that loading it into each worker keeps the totals' scale); the
    shortest success and the furthest a backward start got."""
    if not states:
        return {"cell_size": 64, "cells": []}
    successes = [bytes(s["success"]) for s in states if s.get("success")]
    success = min(successes, key=len, default=None)
    furthest = max(states, key=lambda s: int(s.get("back", BACK_STEP)))
    back = int(furthest.get("back", BACK_STEP))
    move = int(furthest.get("move", BACK_STEP))
    merged: dict[tuple[int, ...], dict[str, Any]] = {}
    sums: dict[tuple[int, ...], list[float]] = {}
    for state in states:
        for item in state["cells"]:
            key = tuple(int(k) for k in item["key"])
            best = merged.get(key)
            if best is None or len(item["prefix"]) < len(best["prefix"]):
                merged[key] = dict(item)
            total = sums.setdefault(key, [0.0, 0.0])
            total[0] += float(item["deaths"])
            total[1] += float(item["starts"])
    n = len(states)
    cells = []
    for key, item in merged.items():
        deaths, starts = sums[key]
        cells.append({**item, "deaths": deaths / n, "starts": math.ceil(starts / n)})
    return {
        "cell_size": int(states[0]["cell_size"]),
        "cell_height": int(states[0].get("cell_height", 0)),
        "success": success,
        "back": back,
        "move": move,
        "cells": cells,
    }


def merge_by_stage(states: list[dict[str, Any]], stages: list[str]) -> dict[str, dict[str, Any]]:
    """The workers' archives merged per stage, worker ``i`` playing ``stages[i % n]``
    (:func:`mario.game.env.make_vec_env`). A prefix replays from its own env's stage start,
    so cells and successes of one stage must never reach an env of another."""
    n = len(stages)
    return {name: merge_states(states[k::n]) for k, name in enumerate(stages) if states[k::n]}


def stage_parts(state: dict[str, Any], stages: list[str]) -> dict[str, dict[str, Any]]:
    """A saved archive per stage of ``stages``: one saved for several stages as it is; one
    stage's (a run on one stage) under ``stages[0]`` when that is all, else under the stage
    its cells are on, if that is one of ``stages`` (a run resumed with more stages)."""
    if "stages" in state:
        return {k: v for k, v in state["stages"].items() if k in stages}
    if len(stages) == 1:
        return {stages[0]: state}
    cells = state.get("cells") or []
    name = f"{int(cells[0]['key'][0])}-{int(cells[0]['key'][1])}" if cells else ""
    return {name: state} if name in stages else {}


class ArchiveStarts(gym.Wrapper):
    """Start a share of episodes from archived states (outermost wrapper of a training env).

    Every step's ``info`` gets ``from_archive`` (this episode started from an archived
    state), ``start_x`` (its x there, 0 at the real start) and ``rebuild_frames`` (emulator
    frames spent replaying prefixes in this process so far) for the trainer's metrics.
    ``repeat``: archived episodes in a row from the same cell (each switch of cell replays a
    prefix in the emulator; the same cell again costs nothing). ``settle``: agent steps the
    episode must survive after first entering a cell before that state is archived, so that
    no start is a doomed one (mid-air over a pit, a frame before a goomba): without it, the
    fastest arrival in a pit's cell is usually the fall into it, and every start there dies
    within a few steps. ``backward``: the share of archived starts (a choice, then ``repeat``
    episodes) taken on the shortest path to the flag, at the backward start
    (:meth:`CellArchive.backward_start`); ``info["backward"]`` marks those episodes. All of
    them start at one point, not Go-Explore's 20% anywhere after it: without snapshots
    (nes-py 8) each other point would cost a replay of its prefix, longer than the episode.
    ``stage``: the stage this env starts at. A prefix replays from there, so an env takes
    only its own stage's part of an archive saved for several (``{"stages": {name: state}}``,
    :func:`merge_by_stage`).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        share: float,
        repeat: int = 4,
        settle: int = 0,
        backward: float = 0.0,
        seed: int | None = None,
        stage: str = "",
        **archive: Any,
    ) -> None:
        super().__init__(env)
        if not 0.0 <= share <= 1.0 or repeat < 1 or settle < 0 or not 0.0 <= backward <= 1.0:
            raise ValueError(
                f"share must be in [0, 1], repeat >= 1, settle >= 0 and backward in [0, 1], "
                f"got {share}, {repeat}, {settle}, {backward}"
            )
        self.share = share
        self.stage = stage
        self.backward = backward
        self.repeat = repeat
        self.settle = settle
        self.archive = CellArchive(**archive)
        self._rng = np.random.default_rng(seed)
        self._cell: Cell | None = None
        self._left = 0  # archived episodes still to start from self._cell
        self._seen: set[CellKey] = set()
        self._waiting: list[tuple[CellKey, tuple[int, int], int, int, Any]] = []
        """Cells entered this episode, not yet archived: (key, (x, y), prefix length, step,
        snapshot or None)."""
        self._t = 0  # agent steps into this episode
        self._from_archive = False
        self._on_backward = False  # this episode began at the backward start
        self._start_x = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0xA4C])
        cell: Cell | None = None
        if self.archive.cells and self._rng.random() < self.share:
            if self._stale():
                self._cell, self._left = self._choose(), self.repeat
            cell, self._left = self._cell, self._left - 1
        options = dict(options or {})
        if cell is not None:
            options["start"] = cell.prefix
            if cell.snapshot is not None:
                options["snapshot"] = cell.snapshot
        obs, info = self.env.reset(seed=seed, options=options)
        self._from_archive = cell is not None
        self._on_backward = cell is not None and cell.key == _BACKWARD
        self._start_x = info["x_pos"] if self._on_backward else cell.x if cell else 0
        self._seen = {self.archive.key(info)}
        self._waiting.clear()
        self._t = 0
        return obs, self._annotate(info)

    def _stale(self) -> bool:
        """Whether the start to repeat is used up or gone (evicted, or a backward start that
        has moved)."""
        if self._left <= 0 or self._cell is None:
            return True
        if self._cell.key == _BACKWARD:
            return not self._still_backward(self._cell)
        return self._cell.key not in self.archive.cells

    def _still_backward(self, cell: Cell) -> bool:
        """Whether ``cell`` (a backward start) is where the backward start still is."""
        return cell.prefix == self.archive.backward_start()

    def _choose(self) -> Cell | None:
        prefix = self.archive.backward_start()
        if prefix is not None and self._rng.random() < self.backward:
            return Cell(_BACKWARD, prefix, 0)
        return self.archive.choose(self._rng)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        key = self.archive.key(info)
        flag = bool(info.get("flag_get", False))
        died = terminated and not flag
        history: bytearray = self.env.unwrapped.history  # type: ignore[attr-defined]
        if terminated or truncated:  # a stall (mario.game.env.StallLimit) is an obstacle too
            self.archive.record_end(key, died=died or bool(info.get("stalled", False)))
            if self._on_backward and self._cell and self._still_backward(self._cell):
                self.archive.record_backward(flag)
            if flag:
                self.archive.observe_success(bytes(history))
        if not terminated and key not in self._seen:  # a cell entered first this episode
            self._seen.add(key)
            if self.archive.wants(key, len(history)):
                snapshot = self.env.unwrapped.snapshot()  # type: ignore[attr-defined]
                spot = (int(info["x_pos"]), _y(info))
                self._waiting.append((key, spot, len(history), self._t, snapshot))
        if died:  # the states still waiting led to this death within `settle` steps
            self._waiting.clear()
        elif self._waiting:
            ended = terminated or truncated
            while self._waiting and (ended or self._t - self._waiting[0][3] >= self.settle):
                cell, (x, y), length, _, snapshot = self._waiting.pop(0)
                if self.archive.wants(cell, length):
                    self.archive.observe(cell, x, bytes(history[:length]), snapshot, y=y)
        return obs, reward, terminated, truncated, self._annotate(info)

    def _annotate(self, info: dict[str, Any]) -> dict[str, Any]:
        info["from_archive"] = self._from_archive
        info["backward"] = self._on_backward
        info["start_x"] = self._start_x
        info["rebuild_frames"] = self.env.unwrapped.rebuild_frames  # type: ignore[attr-defined]
        return info

    # -- called by the trainer through the vector env ---------------------------------------
    def archive_state(self) -> dict[str, Any]:
        return self.archive.state_dict()

    def load_archive(self, state: dict[str, Any], counts: bool = False) -> None:
        """Load ``state`` (one stage's, or this env's stage's part of several)."""
        own = state["stages"].get(self.stage) if "stages" in state else state
        if own is not None:
            self.archive.load_state_dict(own, counts=counts)
