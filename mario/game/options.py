"""Names and checks of the game's options, without loading the emulator: stages, action
sets and the pixel pipeline's arguments (the config and the CLI check input with these)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mario.errors import brief

#: Action set names, in gym-super-mario-bros's order of size (5, 7, 12 button combinations).
ACTION_SET_NAMES: tuple[str, ...] = ("right_only", "simple", "complex")
#: Reward functions (mario.game.rules): the classic one (7.4.0's, the default) and 9.x's.
REWARD_NAMES: tuple[str, ...] = ("classic", "upstream")
#: The stage that means "the whole game, from 1-1 until game over".
FULL_GAME = "all"
STAGES: tuple[str, ...] = tuple(f"{w}-{s}" for w in range(1, 9) for s in range(1, 5))
_STAGE_RE = re.compile(r"([1-8])-([1-4])")


def parse_stage(stage: str) -> tuple[int, int] | None:
    """``"W-S"`` → ``(world, stage)``; ``"all"`` → ``None`` (the full game)."""
    if stage == FULL_GAME:
        return None
    match = _STAGE_RE.fullmatch(stage) if isinstance(stage, str) else None  # no '1-1\n'
    if match is None:
        raise ValueError(
            f"unknown stage {brief(stage)}: valid stages are 'W-S' with world W in 1-8 and "
            f"stage S in 1-4 (e.g. '1-1', '8-4'), or {FULL_GAME!r} for the full game"
        )
    return int(match.group(1)), int(match.group(2))


def check_pipeline_args(
    *,
    frame_skip: int = 4,
    resize: int | tuple[int, int] | None = 84,
    stack: int = 4,
    max_episode_steps: int | None = None,
    death_penalty: float = 0.0,
    **_: Any,
) -> None:
    """Raise ``ValueError`` naming the bad value and the valid ones."""
    if not isinstance(frame_skip, int | np.integer) or frame_skip < 1:
        raise ValueError(f"frame_skip must be an integer >= 1, got {frame_skip!r}")
    if resize is not None:
        sizes = (resize,) if isinstance(resize, int | np.integer) else tuple(resize)
        if len(sizes) not in (1, 2) or any(int(s) <= 0 for s in sizes):
            raise ValueError(
                f"resize must be a positive int (square), a (height, width) pair, or None "
                f"(keep 240x256), got {resize!r}"
            )
    if not isinstance(stack, int | np.integer) or stack < 1:
        raise ValueError(f"stack must be an integer >= 1, got {stack!r}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps!r}")
    if not death_penalty >= 0:
        raise ValueError(f"death_penalty must be >= 0, got {death_penalty!r}")


#: Emulator frames (10 agent steps at frame skip 4) of the backward start's first and smallest
#: move (mario.game.archive; the config checks ``--archive-backward-stride`` against it).
BACK_STEP = 40

#: Rows at the top of each 84x84 frame that ``prev_action`` paints with the previous action
#: (wrappers.PreviousAction): not part of the picture (an augmentation leaves them as they are).
PREV_ACTION_ROWS = 4

#: A sticky probability below 1: at 1 the agent's actions would never be played.
MAX_STICKY = 0.99


def check_sticky(sticky: float) -> None:
    """ValueError unless ``sticky`` is a probability in [0, 0.99]."""
    if (
        isinstance(sticky, bool)
        or not isinstance(sticky, int | float)
        or not (0.0 <= sticky <= MAX_STICKY)
    ):
        raise ValueError(f"sticky must be in [0, {MAX_STICKY}], got {brief(sticky)}")
