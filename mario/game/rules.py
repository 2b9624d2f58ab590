"""The rules of the game, computed here the same way on either backend.

:class:`GameEmulator` is the backend's ``SuperMarioBrosEnv`` (see :mod:`mario.game.backends`) with
every RAM read, the reward, termination and ``info`` defined here, on Python ints. The
library keeps what it does to the emulator: loading the ROM, skipping the start screens,
writing the target stage, and its RAM hacks after each frame (cutting death animations and
area changes short), which are the same code in 7.4.0 and 9.1.0.

Rewards (``reward=``):

* ``"classic"`` (the default; gym-super-mario-bros 7.4.0's, which the tutorial and
  ``tests/test_parity.py``'s recording use): x-position delta (zeroed when ``|delta| > 5``,
  which hides the jump at death and reset) + clock delta (<= 0) + death penalty -25.
* ``"upstream"`` (gym-super-mario-bros 9.x's): progress only at a new best x (a gain of
  more than 5 pays 0), clock delta, score / 100, 5 per coin, 5 per power-up level gained
  (-5 per level lost), 50 once for completing the stage, death penalty -25. ``info`` then
  carries ``reward_components``, as 9.x's does.

Both are clipped to [-15, 15] per frame, as the library's ``step`` does.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from mario.game import backends
from mario.game.options import REWARD_NAMES

if backends.NAME == "upstream":
    from gym_super_mario_bros import actions as _actions
    from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
    from nes_py.wrappers import JoypadSpace
else:
    from mario.game._classic import JoypadSpace, SuperMarioBrosEnv, _actions

__all__ = [
    "BUTTON_BITS",
    "COMPLEX_MOVEMENT",
    "REWARDS",
    "RIGHT_ONLY",
    "SIMPLE_MOVEMENT",
    "SNAPSHOTS",
    "GameEmulator",
    "check_reward",
]

RIGHT_ONLY: list[list[str]] = _actions.RIGHT_ONLY
SIMPLE_MOVEMENT: list[list[str]] = _actions.SIMPLE_MOVEMENT
COMPLEX_MOVEMENT: list[list[str]] = _actions.COMPLEX_MOVEMENT
#: Button name -> controller bit, as nes-py's JoypadSpace defines it.
BUTTON_BITS: dict[str, int] = dict(JoypadSpace._button_map)
#: Whether the backend can save and load emulator states (nes-py 9's dump_state/load_state).
SNAPSHOTS: bool = hasattr(SuperMarioBrosEnv, "dump_state")

#: Reward functions by name; the first is the default.
REWARDS: tuple[str, ...] = REWARD_NAMES
_LOW, _HIGH = -15.0, 15.0
_STATUS = {0: "small", 1: "tall"}  # any other value: "fireball"
_BUSY_STATES = frozenset((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07))
_ENEMY_TYPE_ADDRESSES = (0x0016, 0x0017, 0x0018, 0x0019, 0x001A)
_STAGE_OVER_ENEMIES = (0x2D, 0x31)  # Bowser, flagpole
_COMPONENTS = ("progress", "time", "score", "coins", "powerup", "completion", "death")


def check_reward(reward: str) -> str:
    """Raise ``ValueError`` naming the valid reward functions unless ``reward`` is one."""
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}: valid rewards are {', '.join(REWARDS)}")
    return reward


class GameEmulator(SuperMarioBrosEnv):
    """One emulator running Super Mario Bros, with this project's reading of its RAM.

    ``target``: ``(world, stage)`` or ``None`` for the full game. :meth:`play` and
    :meth:`advance` run one frame; ``reset()`` restores the library's save slot (the stage's
    start, or whatever ``_backup()`` put there).
    """

    def __init__(self, target: tuple[int, int] | None, reward: str = "classic") -> None:
        self._upstream_reward = check_reward(reward) == "upstream"
        self._components = dict.fromkeys(_COMPONENTS, 0.0)
        self._time_last = self._x_position_last = self._x_position_max = 0
        self._score_last = self._coins_last = self._status_last = 0
        self._completion_rewarded = False
        self.done = True
        super().__init__(target=target)
        self._bgrx = _bgrx_view(self.screen)

    def copy_screen(self) -> np.ndarray:
        """A C-contiguous copy of the screen, ``(240, 256, 3)`` uint8 RGB.

        ``screen`` is a view that reverses the emulator's BGRx pixels, which NumPy copies
        byte by byte (~150 µs); OpenCV converts the BGRx buffer itself in ~5 µs.
        """
        if self._bgrx is None:
            return np.ascontiguousarray(self.screen)
        return cv2.cvtColor(self._bgrx, cv2.COLOR_BGRA2RGB)

    def snapshot(self) -> Any:
        """The emulator's state (nes-py 9's ``dump_state()``, ~12 µs, in-process only), or
        ``None`` on the classic backend, which has no snapshots."""
        return self.dump_state() if SNAPSHOTS else None

    def start_from(self, snapshot: Any) -> None:
        """Put ``snapshot`` (from :meth:`snapshot`) in the save slot that ``reset()`` restores."""
        self.load_state(snapshot)
        self._backup()

    # -- one frame ------------------------------------------------------------------------
    def play(self, action: int) -> tuple[float, bool, dict[str, Any]]:
        """One frame: ``(reward, done, info)``, info read before the library's RAM hacks."""
        if self.done:
            raise ValueError("cannot step in a done environment! call `reset`")
        self._frame_advance(action)
        reward = self._get_reward()
        self.done = done = self._get_done()
        info = self._get_info()
        self._did_step(done)
        return min(max(reward, _LOW), _HIGH), done, info

    def advance(self, action: int) -> tuple[float, bool]:
        """One frame without building ``info`` (for frames nobody observes)."""
        if self.done:
            raise ValueError("cannot step in a done environment! call `reset`")
        self._frame_advance(action)
        reward = self._get_reward()
        self.done = done = self._get_done()
        self._did_step(done)
        return min(max(reward, _LOW), _HIGH), done

    # -- RAM, as Python ints (NumPy 2 keeps uint8 arithmetic in uint8) ----------------------
    def _byte(self, address: int) -> int:
        return int(self.ram[address])

    def _digits(self, address: int, length: int) -> int:
        # score, coins and time are stored one decimal digit per byte
        return int("".join(map(str, map(int, self.ram[address : address + length]))))

    @property
    def _level(self) -> int:
        return self._byte(0x075F) * 4 + self._byte(0x075C)

    @property
    def _world(self) -> int:
        return self._byte(0x075F) + 1

    @property
    def _stage(self) -> int:
        return self._byte(0x075C) + 1

    @property
    def _area(self) -> int:
        return self._byte(0x0760) + 1

    @property
    def _score(self) -> int:
        return self._digits(0x07DE, 6)

    @property
    def _time(self) -> int:
        return self._digits(0x07F8, 3)

    @property
    def _coins(self) -> int:
        return self._digits(0x07ED, 2)

    @property
    def _life(self) -> int:
        return self._byte(0x075A)

    @property
    def _x_position(self) -> int:
        return self._byte(0x6D) * 0x100 + self._byte(0x86)

    @property
    def _left_x_position(self) -> int:
        return (self._byte(0x86) - self._byte(0x071C)) % 256

    @property
    def _y_pixel(self) -> int:
        return self._byte(0x03B8)

    @property
    def _y_viewport(self) -> int:
        # 0: above the screen, 1: on it, > 1: below it (falling into a pit)
        return self._byte(0x00B5)

    @property
    def _y_position(self) -> int:
        if self._y_viewport < 1:  # above the screen: counts on from 255
            return 255 + (255 - self._y_pixel)
        return 255 - self._y_pixel

    @property
    def _status_value(self) -> int:
        return self._byte(0x0756)

    @property
    def _player_status(self) -> str:
        return _STATUS.get(self._status_value, "fireball")

    @property
    def _player_state(self) -> int:
        # 0x06 dead, 0x0B dying, 0x08 normal; _BUSY_STATES: pipes, vines, auto-walk, ...
        return self._byte(0x000E)

    @property
    def _is_dying(self) -> bool:
        return self._player_state == 0x0B or self._y_viewport > 1

    @property
    def _is_dead(self) -> bool:
        return self._player_state == 0x06

    @property
    def _is_game_over(self) -> bool:
        return self._life == 0xFF  # lives count 2, 1, 0, then 255

    @property
    def _is_busy(self) -> bool:
        return self._player_state in _BUSY_STATES

    @property
    def _is_world_over(self) -> bool:
        return self._byte(0x0770) == 2  # game mode: 0 demo, 1 playing, 2 end of world

    @property
    def _is_stage_over(self) -> bool:
        # Bowser or the flagpole loaded, and Mario sliding down the pole (float state 3);
        # a vine sets the float state too, hence the enemy check
        for address in _ENEMY_TYPE_ADDRESSES:
            if self._byte(address) in _STAGE_OVER_ENEMIES:
                return self._byte(0x001D) == 3
        return False

    @property
    def _flag_get(self) -> bool:
        return self._is_world_over or self._is_stage_over

    # -- the rules ---------------------------------------------------------------------------
    def _will_reset(self) -> None:
        self._time_last = self._x_position_last = self._x_position_max = 0
        self._score_last = self._coins_last = self._status_last = 0
        self._completion_rewarded = False

    def _did_reset(self) -> None:
        self._time_last = self._time
        self._x_position_last = self._x_position_max = self._x_position
        self._score_last = self._score
        self._coins_last = self._coins
        self._status_last = min(self._status_value, 2)
        self._completion_rewarded = False
        self._components = dict.fromkeys(_COMPONENTS, 0.0)

    def _get_reward(self) -> float:
        if self._upstream_reward:
            self._components = components = self._upstream_components()
            return sum(components.values())
        return float(self._x_reward() + self._time_penalty() + self._death_penalty())

    def _x_reward(self) -> int:
        x = self._x_position
        delta, self._x_position_last = x - self._x_position_last, x
        return 0 if delta < -5 or delta > 5 else delta

    def _time_penalty(self) -> int:
        time = self._time
        delta, self._time_last = time - self._time_last, time
        return min(delta, 0)  # the clock only runs down; a rise is a reset

    def _death_penalty(self) -> int:
        return -25 if self._is_dying or self._is_dead else 0

    def _upstream_components(self) -> dict[str, float]:
        """gym-super-mario-bros 9.1.0's reward terms, keyed in its order (the sum adds them in
        that order, so the float result is the library's to the last bit)."""
        x = self._x_position
        progress = x - self._x_position_max
        if progress > 0:
            self._x_position_max = x
        score = self._score
        score_gain, self._score_last = score - self._score_last, score
        coins = self._coins
        coin_gain, self._coins_last = coins - self._coins_last, coins
        if coin_gain < -50:  # the counter wraps at 100
            coin_gain += 100
        power = min(self._status_value, 2)
        power_gain, self._status_last = power - self._status_last, power
        completion = 0
        if self._flag_get and not self._completion_rewarded:
            self._completion_rewarded, completion = True, 50
        return {
            "progress": float(progress if 0 < progress <= 5 else 0),
            "time": float(self._time_penalty()),
            "score": score_gain / 100 if score_gain > 0 else 0.0,
            "coins": float(coin_gain * 5 if coin_gain > 0 else 0),
            "powerup": float(power_gain * 5),
            "completion": float(completion),
            "death": float(self._death_penalty()),
        }

    def _get_done(self) -> bool:
        if self.is_single_stage_env:  # death or the flag ends it
            return self._is_dying or self._is_dead or self._flag_get
        return self._is_game_over

    _get_terminated = _get_done  # nes-py 9's name for it

    def _get_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "coins": self._coins,
            "flag_get": self._flag_get,
            "life": self._life,
            "score": self._score,
            "stage": self._stage,
            "status": self._player_status,
            "time": self._time,
            "world": self._world,
            "x_pos": self._x_position,
            "y_pos": self._y_position,
        }
        if self._upstream_reward:
            info["reward_components"] = dict(self._components)
        return info


def _bgrx_view(screen: np.ndarray) -> np.ndarray | None:
    """The 4-byte BGRx pixels behind nes-py's RGB ``screen`` view (both nes-py 8.2.1 and 9.0.1
    expose them as ``screen[y, x, c]`` at stride ``(4 W, 4, -1)``), or ``None`` if not so."""
    height, width, channels = screen.shape
    if channels != 3 or screen.strides != (4 * width, 4, -1):
        return None
    return as_strided(screen[:, :, ::-1], (height, width, 4), (4 * width, 4, 1), writeable=False)
