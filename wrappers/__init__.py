"""Observation wrappers of the pixel pipeline: frame-skip → grayscale → resize → (previous
action) → frame-stack.

Nothing here knows about Mario: they wrap any Gymnasium env whose observations are images
(``(H, W, 3)`` or ``(H, W)`` uint8). Observations stay uint8 all the way; converting to float
is the network's job, on its device.
"""

from wrappers.frame_stack import FrameStack
from wrappers.grayscale import GrayScale
from wrappers.previous_action import PreviousAction
from wrappers.resize import Resize
from wrappers.skip_frame import FrameAdvancer, SkipFrame

__all__ = ["FrameAdvancer", "FrameStack", "GrayScale", "PreviousAction", "Resize", "SkipFrame"]
