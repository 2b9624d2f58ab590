"""Named points where a test can hold the process, so that it acts at an exact moment
(during a checkpoint save, say) instead of racing the clock.

Off unless the environment variable ``MARIO_PAUSE_WHILE`` is ``POINT:FILE``: on reaching
``POINT`` the process waits for as long as ``FILE`` exists. Signals are handled while it
waits (the wait is a Python loop), so a test can hold a save, send signals into it, and
release it by deleting the file. Unset, a pause point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time

ENV = "MARIO_PAUSE_WHILE"


def pause_point(name: str) -> None:
    """Wait here while the file that ``MARIO_PAUSE_WHILE`` names for ``name`` exists."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, path = spec.partition(":")
    if point != name:
        return
    while os.path.exists(path):
        time.sleep(0.01)
