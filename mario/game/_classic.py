"""The classic backend (Python < 3.13): nes-py 8.2.1 and gym-super-mario-bros 7.4.0, made
to run on NumPy 2 by the smallest layer that does it. Only :mod:`mario.game.backends` imports it.

Why this exists: both libraries do arithmetic on NumPy ``uint8`` scalars read from the ROM
header and the emulator's RAM. NumPy 1 promoted those to a wider type when mixed with a Python
int; NumPy 2 (NEP 50) keeps ``uint8`` and overflows (nes-py issue 99, gym-super-mario-bros
issue 135):

* ``nes_py._rom.ROM`` computes ``prg_rom_size * 2**10`` from a ``uint8`` header byte and
  raises ``OverflowError`` when the ROM is loaded.
* ``SuperMarioBrosEnv`` computes ``ram[0x6d] * 0x100 + ram[0x86]`` (x position) and
  ``255 + (255 - ram[0x03b8])`` (y position), which overflow or wrap.

The ROM header is widened here; the RAM bytes are read as Python ints (what NumPy 1's
promotion gave) by :class:`mario.game.rules.GameEmulator`, on both backends. It is exercised by
``tests/test_parity.py`` against a recording of the stock library under NumPy 1.
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
    from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
    from nes_py import _rom
    from nes_py.wrappers import JoypadSpace


def _rom_header(self: _rom.ROM) -> np.ndarray:
    # Widened copy of the 16-byte iNES header: every size computed from it stays an int.
    return self.raw_data[:16].astype(np.int64)


_rom.ROM.header = property(_rom_header)


__all__ = ["JoypadSpace", "SuperMarioBrosEnv", "_actions"]
