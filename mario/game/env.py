"""The game environment: Super Mario Bros on nes-py, with the Gymnasium API.

``make_env`` is the one factory that training, evaluation and replay videos share, so the
network always sees exactly the preprocessing it was trained with.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from mario.game.options import (
    ACTION_SET_NAMES,
    FULL_GAME,
    PREV_ACTION_ROWS,
    STAGES,
    check_pipeline_args,
    check_sticky,
    parse_stage,
)
from mario.game.rules import (
    BUTTON_BITS,
    COMPLEX_MOVEMENT,
    REWARDS,
    RIGHT_ONLY,
    SIMPLE_MOVEMENT,
    GameEmulator,
    check_reward,
)
from wrappers import FrameStack, GrayScale, PreviousAction, Resize, SkipFrame

__all__ = [
    "ACTION_SETS",
    "ACTION_SET_NAMES",
    "FULL_GAME",
    "REWARDS",
    "STAGES",
    "MarioEnv",
    "action_label",
    "action_set",
    "check_pipeline_args",
    "make_env",
    "make_vec_env",
    "parse_stage",
]

#: Action sets by name: exactly gym-super-mario-bros's lists, in their order.
ACTION_SETS: dict[str, list[list[str]]] = {
    "right_only": RIGHT_ONLY,
    "simple": SIMPLE_MOVEMENT,
    "complex": COMPLEX_MOVEMENT,
}
assert tuple(ACTION_SETS) == ACTION_SET_NAMES

FrameCallback = Callable[[np.ndarray], None]


def action_set(name: str) -> list[list[str]]:
    """The button combinations of an action set, by name."""
    try:
        return ACTION_SETS[name]
    except (KeyError, TypeError):
        valid = ", ".join(ACTION_SETS)
        raise ValueError(f"unknown action set {name!r}: valid action sets are {valid}") from None


def action_label(buttons: Sequence[str]) -> str:
    """``["right", "A"]`` → ``"right+A"``."""
    return "+".join(buttons)


class MarioEnv(gym.Env[np.ndarray, int]):
    """One game of Super Mario Bros, one NES frame per step.

    Game semantics (reward, termination, ``info``) are gym-super-mario-bros 7.4.0's on either
    backend (:mod:`mario.game.rules`); ``reward="upstream"`` takes 9.x's reward instead and adds
    ``reward_components`` to ``info``. Observations are the full-colour ``(240, 256, 3)``
    uint8 screen. Death and reaching the flag are ``terminated``; a single-stage env ends
    there, the full game at game over.

    ``frame_callback``, when set, receives the screen (a view into the emulator: copy it to
    keep it) after every emulator frame and after reset. Replay videos use it to record all
    60 frames per second while the agent acts every ``frame_skip`` frames.

    Save states: the emulator is deterministic, so the buttons pressed on every frame since
    the stage's real start (:attr:`history`, the random idle frames included) determine the
    game state. ``reset(options={"start": prefix})`` starts the episode from the state such a
    prefix reaches instead of the real start: a second emulator replays it once (the real
    start stays in the first one's save slot) and parks the state in its own save slot, so
    further episodes from the same prefix cost nothing. :attr:`rebuild_frames` counts the
    emulator frames replays took. On nes-py 9, ``options={"start": prefix, "snapshot": s}``
    with ``s`` from :meth:`snapshot` (taken when the history was ``prefix``) loads that state
    instead of replaying (~20 µs instead of a millisecond per prefix frame). Only training
    uses this (``mario.game.archive``); evaluation and replays always start at the real start.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}  # noqa: RUF012

    def __init__(
        self,
        stage: str = "1-1",
        actions: str = "simple",
        *,
        noop_max: int = 0,
        reward: str = "classic",
        render_mode: str | None = "rgb_array",
        sticky: float = 0.0,
    ) -> None:
        target = parse_stage(stage)
        buttons = action_set(actions)
        check_reward(reward)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}: valid is 'rgb_array'")
        if noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {noop_max!r}")
        check_sticky(sticky)
        self.stage = stage
        self.actions = actions
        self.buttons = buttons
        self.noop_max = int(noop_max)
        self.sticky = float(sticky)
        """Probability that an emulator frame plays the previous frame's buttons instead of
        the agent's (sticky actions, Machado et al. 2018), drawn from the env's seed."""
        self._last_byte = 0  # the buttons the previous frame played
        self.reward = reward
        self.render_mode = render_mode
        self.frame_callback: FrameCallback | None = None
        self._bytes = [sum(BUTTON_BITS[b] for b in combo) for combo in buttons]
        self._target = target
        self._home = GameEmulator(target, reward)  # its save slot: the real start
        self._nes = self._home  # the emulator the episode runs on
        self._parked: GameEmulator | None = None  # its save slot: a prefix's state
        self._parked_prefix: bytes | None = None
        self.history = bytearray()
        """Button byte of every emulator frame since the real start."""
        self.rebuild_frames = 0
        """Emulator frames spent replaying prefixes to build start states."""
        self.action_space = cast(gym.spaces.Space[int], gym.spaces.Discrete(len(buttons)))
        self.observation_space = gym.spaces.Box(0, 255, (240, 256, 3), np.uint8)

    # -- Gymnasium API -------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        start = (options or {}).get("start")
        if start is None:
            self._nes = self._home
            self.history = bytearray()
        else:
            self._nes = self._park(bytes(start), (options or {}).get("snapshot"))
            self.history = bytearray(start)
        self._nes.reset()
        if self.noop_max and start is None:
            # A random number of idle frames at the start: the game itself is deterministic,
            # so this is what makes seeds (and evaluation episodes) differ. (Not at a saved
            # state: idling there can kill Mario before the episode begins.)
            for _ in range(int(self.np_random.integers(0, self.noop_max + 1))):
                self._nes.advance(0)
                self.history.append(0)
        self._last_byte = self.history[-1] if self.history else 0
        self._emit()
        return self.observe()

    def snapshot(self) -> Any:
        """The current emulator state for ``reset(options={"start": history, "snapshot":
        ...})``, or ``None`` where the backend has no snapshots (classic nes-py 8.2.1)."""
        return self._nes.snapshot()

    def _park(self, prefix: bytes, snapshot: Any = None) -> GameEmulator:
        """The emulator whose save slot holds the state ``prefix`` reaches (built once)."""
        if self._parked is not None and self._parked_prefix == prefix:
            return self._parked
        if snapshot is not None:
            if self._parked is None:
                self._parked = GameEmulator(self._target, self.reward)
            self._parked.start_from(snapshot)
            self._parked_prefix = prefix
            return self._parked
        if self._parked is not None:
            self._parked.close()
        self._parked, self._parked_prefix = None, None
        nes = GameEmulator(self._target, self.reward)  # a fresh one: the real start
        nes.reset()
        for byte in prefix:  # the same code path as play: rewards, RAM hacks and all
            if nes.advance(byte)[1]:
                nes.close()
                raise ValueError("start prefix ends the episode: not a start state")
        nes._backup()
        self.rebuild_frames += len(prefix)
        self._parked, self._parked_prefix = nes, prefix
        return nes

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        # info is read before the library's post-step RAM hacks (skipping a death or level
        # change), as the stock env returns it, not afterwards.
        byte = self._played(action)
        reward, done, info = self._nes.play(byte)
        self.history.append(byte)
        self._emit()
        return self._nes.copy_screen(), reward, done, False, info

    def render(self) -> np.ndarray:
        """The current full-colour frame, ``(240, 256, 3)`` uint8."""
        return self._nes.copy_screen()

    def close(self) -> None:
        for nes in (self._home, self._parked):
            if nes is not None and nes._env is not None:
                nes.close()

    # -- fast path for SkipFrame (wrappers.FrameAdvancer) ----------------------------------
    def advance(self, action: int) -> tuple[float, bool, bool]:
        """One frame with no observation or info built (frames nobody observes)."""
        byte = self._played(action)
        reward, done = self._nes.advance(byte)
        self.history.append(byte)
        self._emit()
        return reward, done, False

    @property
    def ram(self) -> np.ndarray:
        """The NES RAM of the emulator being played (2 KiB, read-only view): for diagnostics
        such as ``scripts/trace_episode.py``; no agent sees it."""
        view = self._nes.ram.view()
        view.flags.writeable = False
        return view

    def observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Observation (a copy of the screen) and info of the current frame."""
        return self._nes.copy_screen(), self._nes._get_info()

    # -- helpers ---------------------------------------------------------------------------
    def _played(self, action: Any) -> int:
        """The buttons this frame plays: the action's, or with probability ``sticky`` the
        previous frame's (what ``history`` records either way)."""
        byte = self._button_byte(action)
        if self.sticky and self.np_random.random() < self.sticky:
            byte = self._last_byte
        self._last_byte = byte
        return byte

    def _button_byte(self, action: Any) -> int:
        try:
            index = int(action)
            valid = index == action and 0 <= index < len(self._bytes)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"action {action!r} is outside the action space: valid actions are the "
                f"integers 0..{len(self._bytes) - 1} of action set {self.actions!r}"
            )
        return self._bytes[index]

    def _emit(self) -> None:
        if self.frame_callback is not None:
            self.frame_callback(self._nes.screen)


def make_env(
    stage: str = "1-1",
    *,
    actions: str = "simple",
    frame_skip: int = 4,
    grayscale: bool = True,
    resize: int | tuple[int, int] | None = 84,
    stack: int = 4,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    max_pool: bool = False,
    noop_max: int = 0,
    reward: str = "classic",
    death_penalty: float = 0.0,
    render_mode: str | None = "rgb_array",
    archive: dict[str, Any] | None = None,
    sticky: float = 0.0,
    prev_action: bool = False,
    stall_steps: int = 0,
) -> gym.Env:
    """Build the game env with the pixel pipeline.

    frame-skip (``frame_skip`` NES frames per agent step, rewards summed) → grayscale →
    resize (area interpolation) → frame-stack, all uint8. The default observation is
    ``(4, 84, 84)``; ``grayscale=False`` keeps RGB (``(..., 3)``), ``resize=None`` keeps the
    240×256 screen, ``stack=1`` adds no stack axis. ``frame_skip=1, grayscale=False,
    resize=None, stack=1`` is the stock game, one NES frame per step.

    ``seed`` seeds the env's first reset (a later ``reset(seed=...)`` overrides it).
    ``max_episode_steps`` counts agent steps and ends episodes with ``truncated``.
    ``noop_max`` > 0 starts each episode with a random number (up to it) of idle frames.
    ``reward``: ``"classic"`` (7.4.0's) or ``"upstream"`` (9.x's), see :mod:`mario.game.rules`.
    ``death_penalty`` > 0 is subtracted from the agent step on which a life is lost, on top
    of the reward's own death term (which the per-frame clip holds to -15).
    ``render()`` always returns the full-colour frame.
    ``archive`` (training only): keyword arguments of :class:`mario.game.archive.ArchiveStarts`,
    which starts a share of episodes from save states the agent reached.
    ``sticky``: each emulator frame plays the previous frame's buttons instead of the agent's
    with this probability (Machado et al. 2018's sticky actions; a robust evaluation uses
    0.25), drawn from the env's seed; 0 is the game as it is.
    ``prev_action``: paint the agent's previous action into the top rows of each frame (a
    one-hot band, :class:`wrappers.PreviousAction`), so that a frame stack holds the last
    ``stack`` actions; what the agent holds is state the pixels do not show.
    ``stall_steps`` > 0 (training only): :class:`StallLimit`.
    """
    check_pipeline_args(
        frame_skip=frame_skip,
        resize=resize,
        stack=stack,
        max_episode_steps=max_episode_steps,
        death_penalty=death_penalty,
    )
    env: gym.Env = MarioEnv(
        stage, actions, noop_max=noop_max, reward=reward, render_mode=render_mode, sticky=sticky
    )
    if frame_skip > 1:
        env = SkipFrame(env, frame_skip, max_pool=max_pool)
    if death_penalty > 0:
        env = DeathPenalty(env, death_penalty)
    if grayscale:
        env = GrayScale(env)
    if resize is not None:
        size = int(resize) if isinstance(resize, int | np.integer) else (resize[0], resize[1])
        env = Resize(env, size)
    if prev_action:
        env = PreviousAction(env, rows=PREV_ACTION_ROWS)
    if stack > 1:
        env = FrameStack(env, stack)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    if stall_steps > 0:
        env = StallLimit(env, stall_steps)
    if archive is not None:
        from mario.game.archive import ArchiveStarts

        env = ArchiveStarts(env, seed=seed, stage=stage, **archive)
    if seed is not None:
        env = _SeedFirstReset(env, seed)
    return env


class DeathPenalty(gym.Wrapper):
    """Subtract ``penalty`` from the step that ends an episode in death (terminated without
    the flag; a truncation is not a death).

    The stock death term (-25) is clipped to -15 per frame, about one step of running, so
    falling into a pit costs little more than the progress it forgoes; this makes the
    difference between dying and living large enough to outweigh a few steps of speed."""

    def __init__(self, env: gym.Env, penalty: float) -> None:
        super().__init__(env)
        self.penalty = float(penalty)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated and not info.get("flag_get", False):
            reward = float(reward) - self.penalty
        return obs, reward, terminated, truncated, info


class StallLimit(gym.Wrapper):
    """End an episode (``truncated``, with ``info["stalled"]`` True) once ``steps`` agent
    steps have passed without Mario going beyond the furthest x of the episode.

    Why: a greedy agent stuck at a wall (it jumps only on a fresh press of A, and holds it)
    stands there until the time limit. On 1-2, 25 of 61 training episodes from the real start
    between 100k and 140k steps ended at the wall at x ~978 by the time limit of 800 steps:
    most of those steps showed one picture. A training option; evaluations play on."""

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps!r}")
        self.steps = int(steps)
        self._furthest, self._since = 0, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._furthest, self._since = int(info.get("x_pos", 0)), 0
        info["stalled"] = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        x = int(info.get("x_pos", 0))
        if x > self._furthest:
            self._furthest, self._since = x, 0
        else:
            self._since += 1
        stalled = self._since >= self.steps and not (terminated or truncated)
        info["stalled"] = stalled
        return obs, reward, terminated, truncated or stalled, info


class _SeedFirstReset(gym.Wrapper):
    """Seed the first ``reset()`` with ``seed`` unless the caller passes one."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._seed: int | None = int(seed)
        self.action_space.seed(int(seed))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is None:
            seed, self._seed = self._seed, None
        return self.env.reset(seed=seed, options=options)


def make_vec_env(
    num_envs: int,
    stage: str | Sequence[str] = "1-1",
    *,
    seed: int | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    **env_kwargs: Any,
) -> AsyncVectorEnv:
    """``num_envs`` copies of :func:`make_env`, one process each (Gymnasium AsyncVectorEnv).

    Env ``i`` gets seed ``seed + i``, and with a list of stages the ``i``-th of them (cycling).
    Observations travel through shared memory.

    Auto-reset (``SAME_STEP``, the default): when env ``i``'s episode ends, the same
    ``step`` call resets it and returns the new episode's first observation in ``obs[i]``;
    the last observation and info of the ended episode are in ``info["final_obs"][i]`` and
    ``info["final_info"]`` (rows masked by ``info["_final_obs"]``).
    """
    return AsyncVectorEnv(
        _builders(num_envs, stage, seed, env_kwargs),
        shared_memory=True,
        autoreset_mode=autoreset_mode,
    )


def make_sync_vec_env(
    num_envs: int,
    stage: str | Sequence[str] = "1-1",
    *,
    seed: int | None = None,
    **env_kwargs: Any,
) -> SyncVectorEnv:
    """:func:`make_vec_env`'s envs (same seeds, same auto-reset) stepped one after another in
    this process: a remote actor (:mod:`mario.distributed`) is one process on one CPU."""
    return SyncVectorEnv(
        _builders(num_envs, stage, seed, env_kwargs), autoreset_mode=AutoresetMode.SAME_STEP
    )


def _builders(
    num_envs: int, stage: str | Sequence[str], seed: int | None, env_kwargs: dict[str, Any]
) -> list[Callable[[], gym.Env]]:
    """One builder of :func:`make_env` per env, checked here so bad input fails here."""
    if not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    stages = [stage] if isinstance(stage, str) else list(stage)
    if not stages:
        raise ValueError("stage must name at least one stage")
    for name in stages:
        parse_stage(name)
    action_set(env_kwargs.get("actions", "simple"))
    check_reward(env_kwargs.get("reward", "classic"))
    check_pipeline_args(**env_kwargs)

    def factory(index: int) -> Callable[[], gym.Env]:
        env_seed = None if seed is None else seed + index
        env_stage = stages[index % len(stages)]

        def build() -> gym.Env:
            if multiprocessing.parent_process() is not None:
                # A worker: Ctrl-C, `timeout`, systemd and `kill -- -PGID` signal the whole
                # process group, but stopping is the main process's job (it saves, then
                # closes the workers). A worker whose main process died sees its pipe close
                # and exits.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return make_env(env_stage, seed=env_seed, **env_kwargs)

        return build

    return [factory(i) for i in range(num_envs)]
