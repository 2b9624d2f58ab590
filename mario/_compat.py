"""The smallest layer that makes nes-py 8.2.1 and gym-super-mario-bros 7.4.0 run on NumPy 2.

Why this exists: both libraries do arithmetic on NumPy ``uint8`` scalars read from the ROM
header and the emulator's RAM. NumPy 1 promoted those to a wider type when mixed with a Python
int; NumPy 2 (NEP 50) keeps ``uint8`` and overflows (nes-py issue 99, gym-super-mario-bros
issue 135):

* ``nes_py._rom.ROM`` computes ``prg_rom_size * 2**10`` from a ``uint8`` header byte and
  raises ``OverflowError`` when the ROM is loaded.
* ``SuperMarioBrosEnv`` computes ``ram[0x6d] * 0x100 + ram[0x86]`` (x position) and
  ``255 + (255 - ram[0x03b8])`` (y position), which overflow or wrap.

The fix reads those bytes as Python ints, which is what NumPy 1's promotion gave. It is
exercised by ``tests/test_parity.py`` against a recording of the stock library under NumPy 1.
Importing gym (which nes-py subclasses) prints a deprecation banner to stderr; it is
swallowed here so that ``import mario`` prints nothing.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gym_super_mario_bros import actions as _actions
    from gym_super_mario_bros._roms import decode_target, rom_path
    from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
    from nes_py import _rom
    from nes_py.wrappers import JoypadSpace

RIGHT_ONLY: list[list[str]] = _actions.RIGHT_ONLY
SIMPLE_MOVEMENT: list[list[str]] = _actions.SIMPLE_MOVEMENT
COMPLEX_MOVEMENT: list[list[str]] = _actions.COMPLEX_MOVEMENT
#: Button name -> controller bit, as nes-py's JoypadSpace defines it.
BUTTON_BITS: dict[str, int] = dict(JoypadSpace._button_map)


def _rom_header(self: _rom.ROM) -> np.ndarray:
    # Widened copy of the 16-byte iNES header: every size computed from it stays an int.
    return self.raw_data[:16].astype(np.int64)


_rom.ROM.header = property(_rom_header)


class SafeSuperMarioBrosEnv(SuperMarioBrosEnv):
    """``SuperMarioBrosEnv`` whose RAM arithmetic is done on Python ints (NumPy 2 safe).

    Only the properties that do arithmetic on RAM bytes are overridden; the game logic
    (rewards, death and flag detection, the skipping of cut-scenes) is the library's own.
    """

    done: bool

    def _byte(self, address: int) -> int:
        return int(self.ram[address])

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
        return self._byte(0x00B5)

    @property
    def _player_state(self) -> int:
        return self._byte(0x000E)

    def advance(self, action: int) -> tuple[float, bool]:
        """One emulator frame without building ``info`` (for frames nobody observes).

        Same reward, termination and RAM hacks as ``NESEnv.step``; only the info dict is
        left out. Returns ``(reward, done)``.
        """
        if self.done:
            raise ValueError("cannot step in a done environment! call `reset`")
        self._frame_advance(action)
        reward = float(self._get_reward())
        self.done = bool(self._get_done())
        self._did_step(self.done)
        low, high = self.reward_range
        return min(max(reward, low), high), self.done


__all__ = [
    "BUTTON_BITS",
    "COMPLEX_MOVEMENT",
    "RIGHT_ONLY",
    "SIMPLE_MOVEMENT",
    "SafeSuperMarioBrosEnv",
    "decode_target",
    "rom_path",
]
