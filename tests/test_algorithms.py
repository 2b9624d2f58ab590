"""Both algorithms through `mario train`: --algo, bad input, resume, num_envs changes, old
checkpoints, TensorBoard, and `import mario` staying cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mario import backend
from mario.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from mario.tracking import read_metrics
from tests.conftest import assert_one_line_error, run_mario, snapshot

PPO_SMALL = [
    "--algo",
    "ppo",
    "--preset",
    "quickstart-ppo",
    "--num-envs",
    "2",
    "--n-steps",
    "32",
    "--log-every",
    "64",
    "--checkpoint-every",
    "128",
    "--max-episode-steps",
    "60",
    "--wandb-mode",
    "disabled",
]


def test_import_mario_loads_neither_torch_nor_the_emulator() -> None:
    code = (
        "import sys, mario; mods = set(sys.modules); "
        "print(sorted(m for m in ('torch', 'nes_py', 'gymnasium', 'cv2') if m in mods))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
    assert out.stderr == ""


def test_bad_algorithm_options_get_one_line(tmp_path: Path, home: Path) -> None:
    cases = [
        (["--algo", "a3c"], ["--algo", "a3c", "dqn", "ppo"]),
        (["--algo", "ppo", "--replay-size", "1000"], ["replay_size is a DQN option", "ppo"]),
        (["--n-steps", "64"], ["n_steps is a PPO option", "dqn"]),
        (["--algo", "ppo", "--n-steps", "0"], ["n_steps", ">= 1"]),
    ]
    for args, needles in cases:
        result = run_mario("train", *args, "--run-dir", str(tmp_path / "r"), home=home)
        assert_one_line_error(result, *needles)
    assert not list_checkpoints(tmp_path / "r")


@pytest.mark.slow
def test_ppo_trains_resumes_evaluates_and_replays(tmp_path: Path, home: Path) -> None:
    run = tmp_path / "run"
    # 9.x's reward (its info carries a reward_components dict through the vector env)
    result = run_mario(
        "train", *PPO_SMALL, "--total-steps", "256", "--reward", "upstream",
        "--run-dir", str(run), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    train = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "lr"):
        assert key in train[-1], key
    info = json.loads(run_mario("info", str(run), home=home).stdout)
    assert info["algo"] == "ppo" and info["step"] == 256 and info["updates"] > 0
    assert info["network"]["kind"] == "actor_critic"
    assert info["game_backend"] == info["versions"]["game_backend"] == backend.NAME
    assert load_checkpoint(run)[0]["config"]["reward"] == "upstream"

    # resuming a PPO run as DQN is refused, nothing touched
    before = snapshot(run)
    refused = run_mario("train", "--resume", str(run), "--algo", "dqn", home=home)
    assert_one_line_error(refused, "trained with algo ppo", "can't change its algorithm")
    assert snapshot(run) == before

    resumed = run_mario("train", "--resume", str(run), "--total-steps", "384", home=home)
    assert resumed.returncode == 0, resumed.stderr
    state, _, _ = load_checkpoint(run)
    assert state["algo"] == "ppo" and state["counters"]["step"] == 384
    assert state["algorithm"]["updates"] > info["updates"]

    report = json.loads(
        run_mario("eval", str(run), "--episodes", "2", "--max-steps", "50", "--json").stdout
    )
    assert report["algo"] == "ppo" and report["stages"]["1-1"]["episodes"] == 2
    video = tmp_path / "ppo.mp4"
    replay = run_mario(
        "replay", str(run), "--overlay", "--max-steps", "30", "--out", str(video), home=home
    )
    assert replay.returncode == 0, replay.stderr
    assert video.stat().st_size > 0


@pytest.mark.slow
def test_a_dqn_run_resumes_with_more_envs_replay_included(tmp_path: Path, home: Path) -> None:
    """The move from a laptop to a GPU machine: 2 envs, then 8."""
    run = tmp_path / "run"
    args = ["--preset", "quickstart", "--num-envs", "2", "--burn-in", "200", "--wandb-mode"]
    result = run_mario(
        "train", *args, "disabled", "--total-steps", "600", "--run-dir", str(run), home=home
    )
    assert result.returncode == 0, result.stderr
    resumed = run_mario(
        "train", "--resume", str(run), "--num-envs", "8", "--total-steps", "800", home=home
    )
    assert resumed.returncode == 0, resumed.stderr
    restored = [line for line in resumed.stderr.splitlines() if "replay memory restored" in line]
    assert restored and int(restored[0].split(":")[1].split()[0]) > 400, resumed.stderr
    state, _, _ = load_checkpoint(run)
    assert state["config"]["num_envs"] == 8 and state["counters"]["step"] >= 800


@pytest.mark.slow
def test_a_checkpoint_of_the_dqn_only_trainer_still_resumes(tmp_path: Path, home: Path) -> None:
    """State format 1 (before algorithms were pluggable) is upgraded on load."""
    run = tmp_path / "run"
    result = run_mario(
        "train", "--preset", "quickstart", "--total-steps", "300", "--burn-in", "100",
        "--wandb-mode", "disabled", "--run-dir", str(run), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state, info, _ = load_checkpoint(run)
    algorithm = state.pop("algorithm")
    old = {  # the old trainer's layout
        **{k: v for k, v in state.items() if k not in ("algo", "status")},
        "format": 1,
        "net": algorithm["net"],
        "learner": algorithm["learner"],
        "policy_rng": algorithm["policy_rng"],
        "exploration": {"kind": "epsilon", "epsilon": 0.5, "schedule": "linear"},
        "config": {k: v for k, v in state["config"].items() if k not in ("algo", "tensorboard")},
    }
    old_run = tmp_path / "old"
    save_checkpoint(old_run, info.step, old, write_replay=None)
    shown = json.loads(run_mario("info", str(old_run), home=home).stdout)
    assert shown["algo"] == "dqn" and shown["epsilon"] == 0.5 and shown["step"] == 300
    resumed = run_mario("train", "--resume", str(old_run), "--total-steps", "400", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from step 300" in resumed.stderr
    evaluated = run_mario("eval", str(old_run), "--episodes", "1", "--max-steps", "20")
    assert evaluated.returncode == 0, evaluated.stderr

    future = {**old, "format": 99}
    save_checkpoint(tmp_path / "future", 5, future, write_replay=None)
    assert_one_line_error(run_mario("info", str(tmp_path / "future")), "format 99")


@pytest.mark.slow
def test_tensorboard_logs_the_same_metrics(tmp_path: Path, home: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = run_mario(
        "train", "--preset", "quickstart", "--total-steps", "400", "--burn-in", "100",
        "--log-every", "100", "--max-episode-steps", "50", "--tensorboard", "--wandb-mode",
        "disabled",
        "--run-dir", str(run), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "train/epsilon" in tags and "episode/return" in tags
    losses = [m["loss"] for m in read_metrics(run / "metrics.jsonl") if "loss" in m]
    logged = [e.value for e in events.Scalars("train/loss")]
    assert logged == pytest.approx(losses, rel=1e-5)
    assert torch.is_tensor(load_checkpoint(run)[0]["rng"]["torch"])


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook example in README.md, exactly as printed there."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Python (notebooks)", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    run, episode = namespace["run"], namespace["episode"]
    assert (tmp_path / run / "videos" / "notebook.mp4").stat().st_size > 0
    assert len(episode.screens) == episode.frames > 0
    assert episode.screens[0].shape == (240, 256, 3)
