"""`mario replay`, `mario eval` and evaluation during training, on the real emulator.

One short real training run (with evaluations every 100 steps, W&B offline) is shared by the
module; videos are decoded with PyAV (tests/videos.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mario.cli import main
from mario.config import EVAL_SEED
from mario.playing.video import PANEL_WIDTH, VideoWriter, hud_box
from mario.storage.checkpoints import list_checkpoints
from mario.storage.metrics import read_metrics
from tests.helpers import assert_one_line_error, mario_env, run_cli, run_mario
from tests.videos import decode_video

FRAME_SKIP = 4  # the quickstart preset's (and the default) frame_skip
EPISODE_LINE = re.compile(
    r"^episode (\d+): stage (\S+) x_pos (\d+) return (-?\d+\.\d) flag (True|False) "
    r"steps (\d+) frames (\d+)$"
)


@dataclass
class Run:
    path: Path
    home: Path
    train: subprocess.CompletedProcess[str]


@dataclass
class Replay:
    result: subprocess.CompletedProcess[str]
    out: Path
    episodes: list[dict[str, Any]]
    frames: list[np.ndarray]
    info: dict[str, Any]


def parse_replay(result: subprocess.CompletedProcess[str]) -> tuple[Path, list[dict[str, Any]]]:
    """The video path (first line) and the per-episode lines of `mario replay`'s output."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    episodes = []
    for k, line in enumerate(lines[1:], start=1):
        match = EPISODE_LINE.match(line)
        assert match, line
        number, stage, x_pos, ret, flag, steps, frames = match.groups()
        assert int(number) == k
        episodes.append(
            {
                "stage": stage,
                "x_pos": int(x_pos),
                "ret": float(ret),
                "flag": flag == "True",
                "steps": int(steps),
                "frames": int(frames),
            }
        )
    return Path(lines[0]), episodes


def replay(*args: str, run: Run, cwd: Path | None = None) -> Replay:
    result = run_cli("replay", *args, home=run.home, cwd=cwd)
    out, episodes = parse_replay(result)
    if not out.is_absolute() and cwd is not None:
        out = cwd / out
    frames, info = decode_video(out)
    return Replay(result, out, episodes, frames, dict(info))


def assert_frames_match_steps(episode: dict[str, Any], max_steps: int) -> None:
    """Every emulator frame is counted: the reset frame plus frame_skip per agent step (the
    last step of an episode that ends in a death or the flag may stop early)."""
    steps, frames = episode["steps"], episode["frames"]
    assert 1 <= steps <= max_steps
    if steps == max_steps:  # truncated: every step ran its frame_skip frames
        assert frames in range(1 + FRAME_SKIP * (steps - 1) + 1, 1 + FRAME_SKIP * steps + 1)
    else:  # terminated during the last step
        assert 1 + FRAME_SKIP * (steps - 1) < frames <= 1 + FRAME_SKIP * steps


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def checkpoint_files(run_dir: Path) -> dict[Path, str]:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run_dir / "checkpoints").rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A real 200-step run: checkpoints at 100 and 200, a greedy evaluation (1 episode, with a
    video, and the robust ones beside) at each, W&B offline."""
    base = tmp_path_factory.mktemp("play")
    home = base / "home"
    home.mkdir()
    path = base / "run"
    result = run_cli(
        "train",
        "--preset",
        "quickstart",
        "--total-steps",
        "200",
        "--burn-in",
        "100",
        "--num-envs",
        "2",
        "--replay-size",
        "3000",
        "--checkpoint-every",
        "100",
        "--log-every",
        "100",
        "--max-episode-steps",
        "60",
        "--eval-every",
        "100",
        "--eval-episodes",
        "1",
        "--eval-robust",
        "--wandb-mode",
        "offline",
        "--run-dir",
        str(path),
        home=home,
    )
    assert result.returncode == 0, result.stderr
    return Run(path, home, result)


@pytest.fixture(scope="module")
def plain(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """The greedy replay (seed 0, 40 steps, default scale 2, no overlay) others compare with."""
    out = tmp_path_factory.mktemp("plain") / "plain.mp4"
    return replay(str(run.path), "--out", str(out), "--max-steps", "40", "--episodes", "1", run=run)


# --------------------------------------------------------------------------------- replay


@pytest.mark.slow
def test_replay_writes_an_h264_mp4_with_every_emulator_frame(run: Run, plain: Replay) -> None:
    assert plain.out.name == "plain.mp4" and plain.out.is_file()
    [episode] = plain.episodes
    assert episode["stage"] == "1-1"
    assert_frames_match_steps(episode, max_steps=40)
    info = plain.info
    assert "mp4" in info["format"].split(",")
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"]) == (512, 480)
    assert info["fps"] == pytest.approx(60.0)
    assert info["n_frames"] == len(plain.frames) == episode["frames"]
    assert plain.frames[0].shape == (480, 512, 3)
    # not a still image: later frames differ from the first one (beyond codec noise)
    assert max(mean_abs_diff(plain.frames[0], f) for f in plain.frames[1:]) > 1.0
    # nearest-neighbour upscale: 2x2 blocks of equal pixels (up to codec noise)
    frame = plain.frames[len(plain.frames) // 2].astype(np.int16)
    assert np.abs(frame[0::2, 0::2] - frame[1::2, 1::2]).mean() < 3.0


@pytest.mark.slow
def test_replay_default_path_and_scale_1(run: Run) -> None:
    step = list_checkpoints(run.path)[-1].step
    result = replay(str(run.path), "--scale", "1", "--max-steps", "12", run=run)
    assert result.out == run.path / "videos" / f"replay-step-{step:09d}.mp4"
    assert (result.info["width"], result.info["height"]) == (256, 240)
    assert result.info["codec"] == "h264" and result.info["pix_fmt"] == "yuv420p"
    [episode] = result.episodes
    assert_frames_match_steps(episode, max_steps=12)
    assert result.info["n_frames"] == episode["frames"]


@pytest.mark.slow
def test_the_overlay_is_a_strip_below_the_game_from_frame_0(
    run: Run, plain: Replay, tmp_path: Path
) -> None:
    out = tmp_path / "overlay.mp4"
    over = replay(str(run.path), "--out", str(out), "--max-steps", "40", "--overlay", run=run)
    assert over.episodes == plain.episodes  # same seed, same greedy play
    assert len(over.frames) == len(plain.frames)
    assert (over.info["width"], over.info["height"]) == (512, 480 + 64)
    x0, y0, x1, y1 = hud_box(2)
    for a, b in zip(plain.frames, over.frames, strict=True):
        assert mean_abs_diff(a, b[:y0]) < 2.0  # the whole game, pits included: codec noise
        assert b[y0:y1, x0:x1].std() > 10.0  # text and Q-value bars, frame 0 included


@pytest.mark.slow
def test_agent_view_adds_the_network_input_panel(run: Run, plain: Replay, tmp_path: Path) -> None:
    out = tmp_path / "agent.mp4"
    view = replay(str(run.path), "--out", str(out), "--max-steps", "10", "--agent-view", run=run)
    assert (view.info["width"], view.info["height"]) == (512 + PANEL_WIDTH * 2, 480)
    assert view.info["n_frames"] == view.episodes[0]["frames"]
    # the game part is the plain replay's first frames; the tiles hold the network's input
    # from frame 0 on (the reset's frames show the stack the first decision was made on)
    for a, b in zip(view.frames, plain.frames, strict=False):
        assert mean_abs_diff(a[:, :512], b) < 2.0
    writer = VideoWriter(tmp_path / "layout.mp4", scale=2, agent_view=True)
    writer.abort()
    for frame in (view.frames[0], view.frames[-1]):
        for x0, y0, x1, y1 in writer.tile_boxes:
            assert frame[y0:y1, x0:x1].mean() > 40  # the game in grayscale, not an empty tile


@pytest.mark.slow
def test_gif_keeps_every_other_frame(run: Run) -> None:
    step = list_checkpoints(run.path)[-1].step
    result = replay(str(run.path), "--gif", "--scale", "1", "--max-steps", "10", run=run)
    assert result.out == run.path / "videos" / f"replay-step-{step:09d}.gif"
    assert result.info["format"] == "gif" and result.info["loop"] == 0
    assert (result.info["width"], result.info["height"]) == (256, 240)
    frames = result.episodes[0]["frames"]
    # 60 fps in, gif_fps 30: frames 0, 2, 4, ... are kept
    assert result.info["n_frames"] == (frames + 1) // 2
    assert result.info["fps"] == pytest.approx(30.0, abs=0.5)


def test_random_agent_replay_needs_no_checkpoint(tmp_path: Path, home: Path) -> None:
    result = run_cli(
        "replay", "--random", "--scale", "1", "--max-steps", "15", home=home, cwd=tmp_path
    )
    out, [episode] = parse_replay(result)
    assert out == Path("videos/random-1-1.mp4")  # in the working folder's videos/
    root = Path(__file__).parents[1]  # which a clone ignores: no untracked files in its root
    ignored = subprocess.run(["git", "check-ignore", "-q", str(out)], cwd=root, check=False)
    assert ignored.returncode == 0
    frames, info = decode_video(tmp_path / out)
    assert info["codec"] == "h264" and (info["width"], info["height"]) == (256, 240)
    assert len(frames) == episode["frames"]
    assert_frames_match_steps(episode, max_steps=15)


@pytest.mark.slow
def test_epsilon_replay_plays_differently(run: Run, plain: Replay, tmp_path: Path) -> None:
    out = tmp_path / "eps.mp4"
    noisy = replay(
        str(run.path), "--out", str(out), "--max-steps", "25", "--epsilon", "0.5", run=run
    )
    assert noisy.info["n_frames"] == noisy.episodes[0]["frames"]
    # compare with the greedy replay (same seed) over the frames both have
    different = [
        mean_abs_diff(a, b) > 3.0 for a, b in zip(noisy.frames, plain.frames, strict=False)
    ]
    assert any(different), "--epsilon 0.5 played exactly like the greedy agent"


# ----------------------------------------------------------------------------------- eval

STAGE_KEYS = {"return_mean", "return_median", "x_pos_mean", "x_pos_max", "flag_rate"}


def eval_json(*args: str, home: Path) -> dict[str, Any]:
    result = run_cli("eval", *args, "--json", home=home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    return report


def check_stage(summary: dict[str, Any], episodes: int) -> None:
    assert summary.keys() >= STAGE_KEYS
    runs = summary["runs"]
    assert len(runs) == summary["episodes"] == episodes
    returns = [r["ret"] for r in runs]
    xs = [r["x_pos"] for r in runs]
    assert summary["return_mean"] == pytest.approx(np.mean(returns), abs=1e-3)
    assert summary["return_median"] == pytest.approx(np.median(returns), abs=1e-3)
    assert summary["x_pos_mean"] == pytest.approx(np.mean(xs), abs=1e-2)
    assert summary["x_pos_max"] == max(xs)
    assert 0.0 <= summary["flag_rate"] <= 1.0
    assert summary["flag_rate"] == pytest.approx(np.mean([r["flag"] for r in runs]))
    # by default evaluation seeds start above every training env's (mario.config.EVAL_SEED)
    assert [r["seed"] for r in runs] == [EVAL_SEED + k for k in range(episodes)]


@pytest.mark.slow
def test_eval_json_matches_the_replay(run: Run, plain: Replay) -> None:
    report = eval_json(str(run.path), "--episodes", "2", "--max-steps", "40", home=run.home)
    newest = list_checkpoints(run.path)[-1]
    assert Path(report["checkpoint"]).resolve() == newest.path.resolve()
    assert report["step"] == newest.step == 200
    assert report["episodes"] == 2
    assert list(report["stages"]) == ["1-1"]
    summary = report["stages"]["1-1"]
    check_stage(summary, 2)
    # eval and replay share one path: same seed, same greedy episode
    first = summary["runs"][0]
    [episode] = plain.episodes
    for key in ("stage", "x_pos", "flag", "steps", "frames"):
        assert first[key] == episode[key], key
    assert first["ret"] == pytest.approx(episode["ret"], abs=0.05)  # printed with 1 decimal


@pytest.mark.slow
def test_eval_several_stages(run: Run) -> None:
    report = eval_json(
        str(run.path),
        "--stages",
        "1-1",
        "1-2",
        "--episodes",
        "1",
        "--max-steps",
        "20",
        home=run.home,
    )
    assert list(report["stages"]) == ["1-1", "1-2"]
    for stage, summary in report["stages"].items():
        check_stage(summary, 1)
        assert summary["runs"][0]["stage"] == stage


@pytest.mark.slow
def test_trace_script_follows_the_eval_episode(run: Run) -> None:
    """scripts/trace_episode.py plays the same greedy episode as `mario eval` and marks A as
    held exactly after a step whose buttons had A."""
    script = Path(__file__).parents[1] / "scripts" / "trace_episode.py"
    [episode] = eval_json(
        str(run.path), "--episodes", "1", "--max-steps", "40", "--seed", "7", home=run.home
    )["stages"]["1-1"]["runs"]
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            str(run.path),
            "--seed",
            "7",
            "--max-steps",
            "40",
            "--steps",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=mario_env(run.home),
    )
    assert result.returncode == 0, result.stderr
    summary, header, *rows = result.stdout.strip().splitlines()
    assert summary == f"1-1 seed 7: {episode['steps']} steps, x_pos {episode['x_pos']}, flag False"
    assert header.split()[:6] == ["step", "x", "y", "state", "A", "held"]
    assert len(rows) == episode["steps"]
    cells = [row.split() for row in rows]  # the A-held cell is empty when not held
    held = [c[4] == "yes" for c in cells]
    actions = [c[5] if h else c[4] for c, h in zip(cells, held, strict=True)]
    assert held == [False] + ["A" in a for a in actions[:-1]]
    assert [int(c[0]) for c in cells] == list(range(episode["steps"]))
    assert {c[3] for c in cells} <= {"ground", "jump", "fall"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["/nonexistent-run"], "no such run folder or checkpoint"),
        (["--pretrained", "nope"], "unknown pretrained agent 'nope'"),
        (["--pretrained", "1-1", "--stage", "9-9"], "unknown stage '9-9'"),
    ],
)
def test_trace_script_bad_input(home: Path, args: list[str], needle: str) -> None:
    """scripts/trace_episode.py answers bad input like the CLI: one line, exit status 2."""
    script = Path(__file__).parents[1] / "scripts" / "trace_episode.py"
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=mario_env(home),
    )
    assert_one_line_error(result, "trace_episode.py: error:", needle)


def test_a_robust_eval_gives_the_perturbed_flag_rates_beside(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--robust``: the same seeds deterministic, with ε 0.05 and with sticky actions 0.25,
    the perturbed flag rates beside the deterministic one (JSON and text)."""
    args = ["eval", "--pretrained", "1-1", "--episodes", "2", "--max-steps", "40"]
    result = cli(capsys, *args, "--robust", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stages"]["1-1"]["episodes"] == 2 and len(report["stages"]["1-1"]["runs"]) == 2
    assert set(report["robust"]) == {"epsilon_0.05", "sticky_0.25"}
    for summary in report["robust"].values():
        assert summary["1-1"]["episodes"] == len(summary["1-1"]["runs"]) == 2
    # the same episodes as an evaluation with that setting alone, each run where it ended
    sticky = cli(capsys, *args, "--sticky", "0.25", "--json")
    assert json.loads(sticky.stdout)["stages"] == report["robust"]["sticky_0.25"]
    text = cli(capsys, *args, "--robust").stdout.splitlines()[-1]
    assert "flag rate" in text and "(epsilon 0.05: " in text and ", sticky 0.25: " in text
    plain = cli(capsys, *args)  # without --robust: the flag rate alone
    assert plain.returncode == 0, plain.stderr
    last = plain.stdout.splitlines()[-1]
    assert last.startswith("1-1: return mean ") and "flag rate" in last and "sticky" not in last
    both = cli(capsys, *args, "--robust", "--sticky", "0.1")
    assert_one_line_error(both, "--robust runs its own settings")


def test_eval_random_agent(home: Path) -> None:
    report = eval_json("--random", "--episodes", "2", "--max-steps", "30", home=home)
    assert report["checkpoint"] == "random" and report["step"] is None
    check_stage(report["stages"]["1-1"], 2)


# ------------------------------------------------------------------------ shipped agents


@pytest.mark.slow
def test_a_shipped_agent_acts_like_its_checkpoint(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """export() keeps the acting head in float16 with the config and provenance; the loaded
    agent's Q-values match the checkpoint's to float16 precision on real observations."""
    import torch

    from mario.game.env import make_env
    from mario.playing import pretrained
    from mario.playing.agents import load_agent, load_pretrained
    from mario.storage.checkpoints import load_checkpoint

    monkeypatch.setattr(pretrained, "_HERE", tmp_path)
    state, info, _ = load_checkpoint(run.path, fallback=True)
    pretrained.export(state, {"command": "mario train --preset quickstart"}, tmp_path / "t.pt")
    assert pretrained.names() == ["t"]
    data = pretrained.read("t")
    assert data["step"] == 200 and data["provenance"]["command"].startswith("mario train")
    assert {v.dtype for v in data["weights"].values()} == {torch.float16}
    assert not any(k.startswith("target.") for k in data["weights"])

    shipped, original = load_pretrained("t", device="cpu"), load_agent(info.path, device="cpu")
    assert shipped.name == "t" and shipped.step == 200
    env = make_env("1-1", **original.config.env.kwargs())
    obs, _ = env.reset(seed=5)
    for _ in range(20):
        _, ours = shipped.policy.act(obs[None])
        _, theirs = original.policy.act(obs[None])
        assert ours is not None and theirs is not None
        np.testing.assert_allclose(ours[0].values, theirs[0].values, rtol=2e-2, atol=2e-2)
        obs, *_ = env.step(int(np.argmax(theirs[0].values)))
    env.close()
    with pytest.raises(pretrained.UnknownAgent, match="shipped agents are t"):
        pretrained.read("nope")


def test_a_damaged_shipped_agent_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shipped agent's file cut short, overwritten with noise, emptied or holding another
    object (a broken install) gets one line saying to reinstall, from eval and replay; a
    name is a name, never a path to some other .pt file."""
    import torch

    from mario.playing import pretrained

    good = pretrained.path_of("1-1").read_bytes()
    monkeypatch.setattr(pretrained, "_HERE", tmp_path)
    torch.save({"format": 1, "algo": "dqn", "weights": {}}, tmp_path / "hollow.pt")
    damaged = {"cut": good[: len(good) // 2], "empty": b""}
    # noise makes torch's safe unpickler raise UnpicklingError, IndexError or KeyError (about
    # 1 file in 10 is not an UnpicklingError; os.urandom here failed 1 suite run in ~15)
    damaged |= {f"noise{seed}": np.random.default_rng(seed).bytes(4096) for seed in (0, 17, 62)}
    for name, data in damaged.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
    for name in [*damaged, "hollow"]:
        for command in ("eval", "replay"):
            out = ["--out", str(tmp_path / "x.mp4")] if command == "replay" else []
            result = cli(capsys, command, "--pretrained", name, "--max-steps", "5", *out)
            assert_one_line_error(result, f"the shipped agent {name}", "damaged", "reinstall")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.pt").write_bytes(good)
    result = cli(capsys, "eval", "--pretrained", "elsewhere/x", "--max-steps", "5")
    assert_one_line_error(result, "unknown pretrained agent 'elsewhere/x'")


@pytest.mark.slow
def test_every_shipped_agent_plays_from_the_cli(home: Path) -> None:
    """What the README tells a newcomer to run works for each agent in mario/pretrained."""
    from mario.playing import pretrained

    assert "1-1" in pretrained.names()  # the one the README and the quickstart show
    for name in pretrained.names():
        report = eval_json("--pretrained", name, "--episodes", "1", "--max-steps", "30", home=home)
        assert report["checkpoint"] == f"pretrained {name}"
        check_stage(report["stages"][pretrained.read(name)["config"]["stage"]], 1)


@pytest.mark.slow
def test_the_shipped_1_1_agent_clears_the_stage(home: Path) -> None:
    """The README's picture and the quickstart's video: greedy, from the real start, on the
    first default evaluation seeds (docs/pretrained-1-1-eval-20.json: 16 of 20 clear)."""
    report = eval_json("--pretrained", "1-1", "--episodes", "2", "--max-steps", "800", home=home)
    summary = report["stages"]["1-1"]
    check_stage(summary, 2)
    assert summary["flag_rate"] == 1.0, summary["runs"]


# ------------------------------------------------------------------- eval during training


@pytest.mark.slow
def test_training_evaluates_with_videos_and_picks_best(run: Run) -> None:
    records = read_metrics(run.path / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [100, 200]
    for r in evals:
        assert r["episodes"] == 1
        assert 0.0 <= r["flag_rate"] <= 1.0
        assert r["x_pos_mean"] == r["x_pos_max"] > 0
        for robust in ("epsilon_0.05", "sticky_0.25"):  # the same seed, perturbed
            assert 0.0 <= r[f"{robust}/flag_rate"] <= 1.0 and r[f"{robust}/x_pos_mean"] > 0
    logged = {r["step"]: Path(r["eval/video"]) for r in records if r["kind"] == "video"}
    assert sorted(logged) == [100, 200]
    videos = sorted((run.path / "videos").glob("eval-step-*.mp4"))
    assert [p.name for p in videos] == ["eval-step-000000100.mp4", "eval-step-000000200.mp4"]
    assert sorted(logged.values()) == videos
    for video in videos:
        frames, info = decode_video(video)
        assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
        assert (info["width"], info["height"]) == (256, 240 + 32)  # the game + the HUD strip
        assert 1 < len(frames) <= 1 + FRAME_SKIP * 60  # max_episode_steps 60
    # W&B (offline) holds a copy of each logged video
    [wandb_run] = (run.path / "wandb").glob("offline-run-*")
    media = sorted((wandb_run / "files" / "media" / "videos").rglob("*.mp4"))
    assert len(media) == 2
    assert {p.read_bytes() for p in media} == {p.read_bytes() for p in videos}
    # best.json: the evaluation with the highest sticky flag rate, then flag rate, then x_pos
    # (the first of ties)
    best = json.loads((run.path / "best.json").read_text())

    def score(r: dict) -> float:
        return r["sticky_0.25/flag_rate"] * 1e8 + r["flag_rate"] * 1e4 + r["x_pos_mean"]

    top = max(evals, key=score)
    assert best["step"] == top["step"]
    assert best["metric"] == pytest.approx(score(top))
    assert (run.path / best["path"] / "MANIFEST.json").is_file()
    assert best["path"] == f"checkpoints/step-{top['step']:09d}"


# ------------------------------------------------------------------------------ bad input


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real `mario` entry point in this process (a subprocess per case costs seconds)."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["mario", *args], code, captured.out, captured.err)


def leftovers(folder: Path, name: str) -> list[Path]:
    """The file itself and any temporary file the video writer would have made for it."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name == name or p.name.startswith(f".{name}.")]


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checkpoint_files(run.path)
    metrics, best = (run.path / "metrics.jsonl").read_bytes(), (run.path / "best.json").read_bytes()
    newest = list_checkpoints(run.path)[-1].path
    empty = tmp_path / "empty"
    empty.mkdir()
    no_manifest = tmp_path / "no-manifest"
    shutil.copytree(newest, no_manifest / "checkpoints" / newest.name)
    (no_manifest / "checkpoints" / newest.name / "MANIFEST.json").unlink()
    corrupt = tmp_path / "corrupt" / newest.name
    shutil.copytree(newest, corrupt, ignore=shutil.ignore_patterns("replay"))
    state = corrupt / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = tmp_path / "out.mp4"
    good = str(run.path)
    cases: list[tuple[list[str], list[str], Path]] = [
        (["replay", str(tmp_path / "nope")], ["nope", "no such run folder"], out),
        (["replay", str(empty)], [str(empty), "no complete checkpoint"], out),
        (["replay", str(no_manifest)], [str(no_manifest), "no complete checkpoint"], out),
        (["replay", str(corrupt)], [str(state), "truncated"], out),
        (["replay", str(state)], [str(state), "truncated"], out),
        (["replay", good], ["not a folder", str(a_file)], a_file / "x.mp4"),
        (["replay", good], ["/nonexistent", "does not exist"], Path("/nonexistent/x.mp4")),
        (["replay", good, "--stage", "9-1"], ["unknown stage '9-1'", "1-1"], out),
        (["replay", good, "--random"], ["only one of", "not both"], out),
        (["replay"], ["missing PATH", "--random"], out),
        (["replay", "--random", "--stage", "0-0"], ["unknown stage '0-0'"], out),
        (["replay", good, "--device", "tpu"], ["unknown device 'tpu'", "cpu"], out),
        (["replay", good, "--gif"], ["--gif", ".gif"], out),
        (["replay", good], ["inside the run folder"], run.path / "checkpoints" / "x.mp4"),
        (["replay", good], ["inside the run folder", "videos"], run.path / "metrics.jsonl"),
        (["replay", good], ["inside the run folder"], run.path / "best.json"),
        (["replay", good, "--scale", "100000"], ["scale", "1..8", "100000"], out),
        (["replay", good, "--gif", "--scale", "40"], ["scale", "1..8"], tmp_path / "x.gif"),
        (["replay", good, "--fps", "1000000"], ["fps", "240"], out),
        (["replay", good, "--stage", "1-1\n"], ["unknown stage '1-1\\n'"], out),
        (["eval", "--pretrained", "../../x"], ["unknown pretrained agent '../../x'"], out),
        (["eval", str(tmp_path / "nope")], ["no such run folder"], out),
        (["eval", str(empty)], ["no complete checkpoint"], out),
        (["eval", str(no_manifest)], ["no complete checkpoint"], out),
        (["eval", str(state)], [str(state), "truncated"], out),
        (["eval", good, "--stages", "1-1", "9-1"], ["unknown stage '9-1'"], out),
        (["eval", good, "--random"], ["not both"], out),
        (["eval"], ["missing PATH"], out),
        (["eval", "--random", "--actions", "all"], ["'all'", "right_only"], out),
        (["eval", "--pretrained", "nope"], ["unknown pretrained agent 'nope'", "shipped"], out),
        (["replay", "--pretrained", "nope"], ["unknown pretrained agent 'nope'"], out),
        (["eval", good, "--pretrained", "nope"], ["only one of", "not both"], out),
    ]
    for args, needles, target in cases:
        existed = target.exists()  # a run's own file: checked below to be unchanged
        full = [*args, "--max-steps", "5"]
        if args[0] == "replay":
            full += ["--out", str(target)]
        result = cli(capsys, *full)
        assert_one_line_error(result, *needles)
        assert result.stderr.startswith(f"mario {args[0]}: error: "), result.stderr
        assert existed or not leftovers(target.parent, target.name), (args, target)
    assert checkpoint_files(run.path) == before
    assert (run.path / "metrics.jsonl").read_bytes() == metrics  # --out never overwrote it
    assert (run.path / "best.json").read_bytes() == best


def test_bad_input_through_the_console_script(tmp_path: Path, home: Path) -> None:
    """The installed `mario` script: exit status 2, one line, nothing written."""
    out = tmp_path / "x.mp4"
    missing = run_mario("replay", str(tmp_path / "nope"), "--out", str(out), home=home)
    assert_one_line_error(missing, "no such run folder")
    neither = run_mario("eval", "--episodes", "1", home=home)
    assert_one_line_error(neither, "missing PATH")
    negative = run_mario("eval", "--random", "--seed", "-1", home=home)
    assert_one_line_error(negative, "argument --seed", "must be in [0, 4294967295], got -1")
    word = run_mario("replay", "--random", "--seed", "x", "--out", str(out), home=home)
    assert_one_line_error(word, "argument --seed", "expected a whole number, got 'x'")
    big = run_mario("eval", "--random", "--seed", "4294967296", home=home)
    assert_one_line_error(big, "argument --seed", "must be in [0, 4294967295]")
    many = run_mario("eval", "--random", "--episodes", "100000", home=home)
    assert_one_line_error(many, "argument --episodes", "must be in [1, 10000]")
    sticky = run_mario("replay", "--random", "--sticky", "1", "--out", str(out), home=home)
    assert_one_line_error(sticky, "argument --sticky", "must be in [0, 0.99]")
    assert not leftovers(tmp_path, out.name)
