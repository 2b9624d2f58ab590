"""Decoding the MP4s and GIFs the tests write (PyAV), and what a file says about itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np


class VideoInfo(TypedDict):
    """What :func:`decode_video` found in a file."""

    format: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    n_frames: int
    loop: int | None
    """GIF loop count (0 = forever, None = plays once); None for MP4."""
    faststart: bool | None
    """MP4: the ``moov`` index precedes the media data (streamable); None for GIF."""


def _mp4_moov_first(path: Path) -> bool:
    """True when the top-level ``moov`` box comes before ``mdat`` (``+faststart``)."""
    with path.open("rb") as f:
        while True:
            header = f.read(8)
            if len(header) < 8:
                return False
            size = int.from_bytes(header[:4], "big")
            kind = header[4:]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 1:
                size = int.from_bytes(f.read(8), "big") - 8
            elif size == 0:
                return False
            f.seek(size - 8, os.SEEK_CUR)


def _gif_loop_count(path: Path) -> int | None:
    """Loop count of the NETSCAPE2.0 extension (0 = forever), None when absent (plays once)."""
    data = path.read_bytes()
    at = data.find(b"NETSCAPE2.0")
    if at < 0 or data[at + 11 : at + 13] != b"\x03\x01":
        return None
    return int.from_bytes(data[at + 13 : at + 15], "little")


def decode_video(
    path: str | os.PathLike[str], *, keep_frames: bool = True
) -> tuple[list[np.ndarray], VideoInfo]:
    """Decode a video with PyAV: (RGB uint8 frames, :class:`VideoInfo`).

    With ``keep_frames=False`` the frames are decoded and counted but not kept (for checking
    long videos); the list is then empty.
    """
    import av

    path = Path(path)
    frames: list[np.ndarray] = []
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate: Any = stream.guessed_rate or stream.average_rate or 0
        for vf in container.decode(stream):
            n += 1
            if keep_frames:
                frames.append(vf.to_ndarray(format="rgb24"))
        fmt_name = container.format.name
        info: VideoInfo = {
            "format": fmt_name,
            "codec": cc.name,
            "pix_fmt": cc.pix_fmt or "",
            "width": cc.width,
            "height": cc.height,
            "fps": float(rate),
            "n_frames": n,
            "loop": _gif_loop_count(path) if fmt_name == "gif" else None,
            "faststart": _mp4_moov_first(path) if "mp4" in fmt_name.split(",") else None,
        }
    return frames, info
