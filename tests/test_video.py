"""Tests of mario.playing.video: real encoding and decoding with PyAV (libx264 / gif), no mocks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mario.playing.video import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    PANEL_WIDTH,
    Hud,
    VideoOutputError,
    VideoWriter,
    hud_box,
    short_action_label,
    video_size,
)
from tests.videos import decode_video

SIMPLE = ["NOOP", "right", "right+A", "right+B", "right+A+B", "A", "left"]


def synthetic_frame(i: int) -> np.ndarray:
    """An NES-like screen: flat sky, ground, and a block that moves 3 px per frame."""
    f = np.empty((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    f[:] = (92, 148, 252)
    f[208:] = (200, 76, 12)
    x = (3 * i) % 200
    f[100:148, x : x + 48] = (252, 252, 252)
    f[116:132, x + 16 : x + 32] = (0, 0, 0)
    return f


def make_hud(step: int, chosen: int = 4) -> Hud:
    q = [0.5, 1.0, 2.0, 1.5, 3.0 + 0.01 * step, -1.0, 0.0]
    return Hud(
        step=step,
        x_pos=40 + step,
        episode_return=1.5 * step,
        action_name=SIMPLE[chosen],
        values=q,
        action_names=SIMPLE,
        chosen=chosen,
    )


def make_obs(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (4, 84, 84), dtype=np.uint8)


def upscale(frame: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(frame, s, axis=0), s, axis=1)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- MP4


@pytest.mark.parametrize("scale", [1, 2])
def test_mp4_is_h264_yuv420p_with_exact_frames(tmp_path: Path, scale: int) -> None:
    path = tmp_path / "replay.mp4"
    n = 120
    with VideoWriter(path, scale=scale) as w:
        assert (w.width, w.height) == (256 * scale, 240 * scale)
        for i in range(n):
            w.write(synthetic_frame(i))
    assert leftovers(tmp_path) == ["replay.mp4"]

    frames, info = decode_video(path)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert info["n_frames"] == n == len(frames)
    assert (info["width"], info["height"]) == (256 * scale, 240 * scale)
    assert info["fps"] == pytest.approx(60.0)
    assert info["faststart"] is True
    assert info["loop"] is None
    assert frames[0].shape == (240 * scale, 256 * scale, 3)
    # The content is the input (up to codec noise), upscaled nearest-neighbour, and it moves.
    for i in (0, 37, n - 1):
        assert mean_abs_diff(frames[i], upscale(synthetic_frame(i), scale)) < 3.0
    assert mean_abs_diff(frames[0], frames[30]) > 5.0
    # Flat areas keep their colour (BT.601 conversion both ways).
    sky = frames[50][10 * scale, 10 * scale].astype(int)
    assert np.abs(sky - (92, 148, 252)).max() <= 4


def test_decode_video_can_count_without_keeping_frames(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    with VideoWriter(path) as w:
        for i in range(12):
            w.write(synthetic_frame(i))
    frames, info = decode_video(path, keep_frames=False)
    assert frames == []
    assert info["n_frames"] == 12
    # The file gets the usual permissions (umask), not a private temp file's 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------- overlay


@pytest.mark.parametrize(("scale", "agent_view"), [(1, False), (2, False), (2, True)])
def test_the_hud_is_a_strip_below_the_game_that_hides_nothing(
    tmp_path: Path, scale: int, agent_view: bool
) -> None:
    plain = VideoWriter(tmp_path / "a.mp4", scale=scale, agent_view=agent_view)
    hudded = VideoWriter(tmp_path / "b.mp4", scale=scale, agent_view=agent_view, overlay=True)
    try:
        width = (256 + (PANEL_WIDTH if agent_view else 0)) * scale
        assert hudded.hud_box == hud_box(scale, agent_view) == (0, 240 * scale, width, 272 * scale)
        assert (hudded.width, hudded.height) == (plain.width, plain.height + 32 * scale)
        x0, y0, x1, y1 = hudded.hud_box
        frame, obs = synthetic_frame(7), make_obs(0)
        before = frame.copy()
        a = plain.compose(frame, make_hud(3), obs)
        b = hudded.compose(frame, make_hud(3), obs)
        assert np.array_equal(frame, before), "compose must not modify the emulator screen"
        assert b.shape == (hudded.height, hudded.width, 3)
        assert np.array_equal(b[:y0], a)  # the game (and agent view) untouched, every row
        strip = b[y0:y1, x0:x1]
        assert (strip != strip[0, 0]).any(axis=2).mean() > 0.02  # text and bars drawn
        # Different HUD data gives a different strip (text and bars are really drawn).
        c = hudded.compose(frame, make_hud(900, chosen=1), obs)
        assert not np.array_equal(b[y0:y1], c[y0:y1]) and np.array_equal(b[:y0], c[:y0])
        # Without HUD data the strip is empty.
        d = hudded.compose(frame, None, obs)
        assert (d[y0:y1] == d[y0, 0]).all()
    finally:
        plain.abort()
        hudded.abort()


def test_overlay_hud_box_in_encoded_video(tmp_path: Path) -> None:
    videos = {}
    for overlay in (False, True):
        path = tmp_path / f"o{int(overlay)}.mp4"
        with VideoWriter(path, scale=2, overlay=overlay) as w:
            for i in range(20):
                w.write(synthetic_frame(i), make_hud(i // 4))
        videos[overlay], _ = decode_video(path)
    x0, y0, x1, y1 = hud_box(2)
    for a, b in zip(videos[False], videos[True], strict=True):
        assert b.shape[0] == a.shape[0] + 64
        assert mean_abs_diff(a, b[:y0]) < 1.0
        assert b[y0:y1, x0:x1].std() > 10.0


def test_hud_validation(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "a.mp4", overlay=True)
    try:
        frame = synthetic_frame(0)
        hud = make_hud(0)
        with pytest.raises(ValueError, match="action_names"):
            w.compose(frame, Hud(1, 2, 3.0, "A", values=[1.0, 2.0], action_names=["A"]))
        with pytest.raises(ValueError, match="chosen"):
            w.compose(frame, Hud(1, 2, 3.0, "A", values=hud.values, chosen=7))
        # Q-values without labels, all equal, or with NaN still draw.
        w.compose(frame, Hud(1, 2, 3.0, "A", values=[1.0, 1.0, 1.0]))
        w.compose(frame, Hud(1, 2, 3.0, "A", values=[float("nan"), 2.0], chosen=0))
        w.compose(frame, Hud(1, 2, 3.0, "A"))
    finally:
        w.abort()


def test_short_action_label() -> None:
    assert [short_action_label(a) for a in SIMPLE] == ["-", "R", "RA", "RB", "RAB", "A", "L"]
    assert short_action_label("down") == "D"
    assert short_action_label("up") == "U"


# ------------------------------------------------------------------------ agent view


@pytest.mark.parametrize("scale", [1, 2])
def test_agent_view_adds_a_panel_of_tiles(tmp_path: Path, scale: int) -> None:
    w = VideoWriter(tmp_path / "a.mp4", scale=scale, agent_view=True)
    try:
        assert (w.width, w.height) == video_size(scale, True)
        assert w.width == (256 + PANEL_WIDTH) * scale and w.width % 2 == 0
        assert w.height == 240 * scale
        frame, obs = synthetic_frame(3), make_obs(1)
        img = w.compose(frame, None, obs)
        assert img.shape == (240 * scale, (256 + PANEL_WIDTH) * scale, 3)
        assert np.array_equal(img[:, : 256 * scale], upscale(frame, scale))
        assert len(w.tile_boxes) == 4
        for k, (x0, y0, x1, y1) in enumerate(w.tile_boxes):  # oldest (t-3) first
            assert x0 >= 256 * scale and x1 <= w.width and y0 >= 0 and y1 <= w.height
            expected = np.repeat(upscale(obs[k], scale)[..., None], 3, axis=2)
            assert np.array_equal(img[y0:y1, x0:x1], expected)
        # A single frame (stack=1) goes into the newest tile; the others stay empty.
        one = w.compose(frame, None, obs[2])
        x0, y0, x1, y1 = w.tile_boxes[3]
        assert np.array_equal(one[y0:y1, x0:x1, 0], upscale(obs[2], scale))
        x0, y0, x1, y1 = w.tile_boxes[0]
        assert not one[y0:y1, x0:x1].any()
        # Colour stacks and other sizes fit the same tiles.
        colour = np.zeros((4, 84, 84, 3), np.uint8)
        colour[..., 0] = 200
        img = w.compose(frame, None, colour)
        assert (img[y0:y1, x0:x1] == (200, 0, 0)).all()
        big = w.compose(frame, None, np.full((4, 240, 256), 99, np.uint8))
        assert big.shape == img.shape
        with pytest.raises(ValueError, match="agent_obs"):
            w.compose(frame, None, obs.astype(np.float32))
    finally:
        w.abort()


def test_agent_view_and_overlay_encode(tmp_path: Path) -> None:
    path = tmp_path / "both.mp4"
    with VideoWriter(path, scale=2, overlay=True, agent_view=True) as w:
        for i in range(16):
            w.write(synthetic_frame(i), make_hud(i // 4), make_obs(i // 4))
        last = w.compose(synthetic_frame(15), make_hud(3), make_obs(3))
    frames, info = decode_video(path)
    assert info["n_frames"] == 16 == len(frames)
    assert (info["width"], info["height"]) == ((256 + PANEL_WIDTH) * 2, 480 + 64)  # + the HUD
    assert mean_abs_diff(frames[-1], last) < 6.0  # noise tiles are hard for any codec


# ------------------------------------------------------------------------------- GIF


def test_gif_keeps_every_other_frame_loops_and_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "replay.gif"
    n = 120
    with VideoWriter(path) as w:  # fmt from the suffix, gif_fps=30
        assert w.fmt == "gif"
        for i in range(n):
            w.write(synthetic_frame(i))
    assert (w.frames_in, w.frames_out) == (n, n // 2)
    assert leftovers(tmp_path) == ["replay.gif"]
    frames, info = decode_video(path)
    assert info["codec"] == "gif"
    assert info["n_frames"] == n // 2 == len(frames)
    assert (info["width"], info["height"]) == (256, 240)
    assert info["fps"] == pytest.approx(30.0)
    assert info["loop"] == 0  # forever
    # NES-like screens have few colours: the GIF stores them exactly.
    for k in (0, 1, 59):
        assert np.array_equal(frames[k], synthetic_frame(2 * k))


def test_gif_with_overlay_and_agent_view(tmp_path: Path) -> None:
    path = tmp_path / "rich.gif"
    with VideoWriter(path, fmt="gif", gif_fps=20, scale=2, overlay=True, agent_view=True) as w:
        composed = []
        for i in range(12):
            w.write(synthetic_frame(i), make_hud(i), make_obs(i))
            if i % 3 == 0:
                composed.append(w.compose(synthetic_frame(i), make_hud(i), make_obs(i)))
    frames, info = decode_video(path)
    assert info["n_frames"] == 4 == len(frames)
    assert info["fps"] == pytest.approx(20.0)
    assert (info["width"], info["height"]) == video_size(2, True, overlay=True)
    for got, want in zip(frames, composed, strict=True):  # > 256 colours: nearest palette
        assert mean_abs_diff(got, want) < 2.0


@pytest.mark.parametrize("gif_fps", [0, 7, 60])
def test_gif_fps_must_divide_fps(tmp_path: Path, gif_fps: int) -> None:
    with pytest.raises(ValueError, match="gif_fps"):
        VideoWriter(tmp_path / "a.gif", gif_fps=gif_fps)
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ errors and cleanup


def test_missing_folder_raises_early(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "replay.mp4"
    with pytest.raises(VideoOutputError, match=r"does not exist") as e:
        VideoWriter(target)
    assert str(target) in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, OSError)
    assert leftovers(tmp_path) == []


def test_unwritable_folder_raises_early(tmp_path: Path) -> None:
    # The parent is a file, so nothing can be created in it (root can't be kept out of a
    # chmod-ed folder, this case fails for everyone).
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(VideoOutputError, match="not a folder") as e:
        VideoWriter(blocker / "replay.mp4")
    assert str(blocker / "replay.mp4") in str(e.value)
    with pytest.raises(VideoOutputError, match="directory"):
        VideoWriter(tmp_path)
    assert leftovers(tmp_path) == ["file"]


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_exception_in_with_block_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"replay.{fmt}"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path) as w:
        for i in range(10):
            w.write(synthetic_frame(i))
        raise RuntimeError("boom")
    assert leftovers(tmp_path) == []
    assert w.closed


def test_failure_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "replay.mp4"
    path.write_bytes(b"old video")
    with pytest.raises(ValueError, match="frame must be"), VideoWriter(path) as w:
        w.write(synthetic_frame(0))
        w.write(np.zeros((84, 84, 3), np.uint8))
    assert path.read_bytes() == b"old video"
    assert leftovers(tmp_path) == ["replay.mp4"]


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with pytest.raises(ValueError, match="no frames"), VideoWriter(path):
        pass
    assert leftovers(tmp_path) == []


def test_write_after_close_and_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    with VideoWriter(path) as w:
        w.write(synthetic_frame(0))
    with pytest.raises(ValueError, match="closed"):
        w.write(synthetic_frame(1))
    with pytest.raises(ValueError, match="scale"):
        VideoWriter(tmp_path / "b.mp4", scale=0)
    with pytest.raises(ValueError, match="fmt"):
        VideoWriter(tmp_path / "b.mp4", fmt="avi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame must be"):
        w2 = VideoWriter(tmp_path / "c.mp4")
        try:
            w2.compose(synthetic_frame(0).astype(np.float32))
        finally:
            w2.abort()
    assert leftovers(tmp_path) == ["a.mp4"]


def test_importing_mario_video_does_not_import_av() -> None:
    code = "import sys, mario.playing.video; assert 'av' not in sys.modules, 'av imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------- real emulator


def test_real_emulator_frames(tmp_path: Path) -> None:
    from mario import make_env
    from mario.game.env import ACTION_SETS

    env = make_env("1-1", seed=0)
    frames: list[np.ndarray] = []
    huds: list[Hud | None] = []
    observations: list[np.ndarray | None] = []
    current: dict[str, object] = {"hud": None, "obs": None}

    def on_frame(screen: np.ndarray) -> None:
        frames.append(screen.copy())
        huds.append(current["hud"])  # type: ignore[arg-type]
        observations.append(current["obs"])  # type: ignore[arg-type]

    names = ["+".join(b) for b in ACTION_SETS["simple"]]
    try:
        env.unwrapped.frame_callback = on_frame
        obs, info = env.reset(seed=0)
        ret = 0.0
        for step in range(10):
            action = 4 if step % 3 else 1
            current["hud"] = Hud(
                step, int(info.get("x_pos", 0)), ret, names[action],
                values=np.linspace(0, 1, len(names)).tolist(),
                action_names=names, chosen=action,
            )  # fmt: skip
            current["obs"] = obs
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            assert not (terminated or truncated)
    finally:
        env.close()
    assert len(frames) == 41  # 1 reset frame + 10 agent steps x frame_skip 4

    path = tmp_path / "real.mp4"
    with VideoWriter(path, scale=2, overlay=True, agent_view=True) as w:
        for screen, hud, o in zip(frames, huds, observations, strict=True):
            w.write(screen, hud, o)
    decoded, info = decode_video(path)
    assert info["n_frames"] == len(frames) == len(decoded)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    # Outside the HUD box, the game area is the emulator screen (up to codec noise).
    y0 = hud_box(2)[1]
    for k in (0, 20, 40):
        want = cv2.resize(frames[k], (512, 480), interpolation=cv2.INTER_NEAREST)
        assert mean_abs_diff(decoded[k][:y0, :512], want[:y0]) < 3.0
    assert mean_abs_diff(decoded[0][:y0, :512], decoded[40][:y0, :512]) > 0.5
