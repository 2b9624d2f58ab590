"""The training loop: a toy pixel game both algorithms must learn, and real `mario train`
processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mario.config import ConfigError
from mario.playing.agents import RandomPolicy
from mario.storage.checkpoints import list_checkpoints, load_checkpoint
from mario.storage.metrics import read_metrics
from mario.training.runner import Runner, StopNow
from mario.training.setup import prepare_run
from tests.helpers import (
    TINY,
    assert_one_line_error,
    run_cli,
    start_mario,
    wait_for_checkpoint,
)
from tests.toy_env import TOY, greedy_success, make_corridor_vec

SMALL = [
    "--preset",
    "quickstart",
    "--num-envs",
    "2",
    "--burn-in",
    "100",
    "--replay-size",
    "3000",
    "--log-every",
    "100",
    "--max-episode-steps",
    "60",
    "--wandb-mode",
    "offline",
]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_both_algorithms_learn_the_toy_corridor(tmp_path: Path, algo: str) -> None:
    """DQN (real replay, learner, loop) and PPO (real rollouts, GAE, loss) must both solve a
    small pixel game, to the same threshold."""
    setup = prepare_run(
        {
            **TOY[algo],
            "run_dir": str(tmp_path / "toy"),
            "num_envs": 4,
            "checkpoint_every": 5000,
            "log_every": 500,
            "wandb_mode": "disabled",
            "seed": 3,
        }
    )
    random_rate = greedy_success(RandomPolicy(3, seed=0))  # a random agent, as the baseline
    runner = Runner(setup, env_factory=lambda seed: make_corridor_vec(4, seed), n_actions=3)
    assert runner.run() == 0
    rate = greedy_success(runner.algo.policy())
    print(f"toy corridor, {algo}: random {random_rate:.2f} -> trained greedy {rate:.2f}")
    assert random_rate <= 0.3
    assert rate >= 0.9
    episodes = [
        m for m in read_metrics(tmp_path / "toy" / "metrics.jsonl") if m["kind"] == "episode"
    ]
    assert episodes and all("step" in m for m in episodes)


@pytest.mark.slow
def test_train_writes_run_folder_and_resumes_after_sigterm(tmp_path: Path, home: Path) -> None:
    run = tmp_path / "run"
    proc = start_mario(
        "train",
        *SMALL,
        "--total-steps",
        "100000",
        "--checkpoint-every",
        "200",
        "--run-dir",
        str(run),
        home=home,
    )
    try:
        first = wait_for_checkpoint(proc, run)
        proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        _, err = proc.communicate(timeout=30)
        stop_seconds = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert stop_seconds < 10, f"took {stop_seconds:.1f} s to save and exit"
    assert "received SIGTERM" in err
    stopped = list_checkpoints(run)[-1]
    assert stopped.step >= first
    state, _, _ = load_checkpoint(run)
    assert state["counters"]["step"] == stopped.step
    for name in ("config.yaml", "command.txt", "metrics.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    assert "--run-dir" in (run / "command.txt").read_text()
    assert all("step" in m for m in read_metrics(run / "metrics.jsonl"))
    wandb_id = state["wandb_run_id"]
    assert list((run / "wandb").glob(f"offline-run-*-{wandb_id}"))

    info = json.loads(run_cli("info", str(run), home=home).stdout)
    for key in (
        "step",
        "episodes",
        "updates",
        "epsilon",
        "stage",
        "actions",
        "wandb_run_id",
        "versions",
        "created",
        "path",
    ):
        assert key in info
    assert info["step"] == stopped.step

    # resume: counters, epsilon, optimizer and replay continue; same W&B run
    total = stopped.step + 200
    result = run_cli("train", "--resume", str(run), "--total-steps", str(total), home=home)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} from step {stopped.step}" in result.stderr
    assert "replay memory restored" in result.stderr
    resumed, _, _ = load_checkpoint(run)
    assert resumed["counters"]["step"] >= total
    assert resumed["counters"]["updates"] > state["counters"]["updates"]
    assert resumed["counters"]["episodes"] >= state["counters"]["episodes"]
    assert resumed["status"]["epsilon"] < state["status"]["epsilon"]
    assert (
        resumed["algorithm"]["learner"]["optimizer"]["state"][0]["step"]
        > (state["algorithm"]["learner"]["optimizer"]["state"][0]["step"])
    )
    assert resumed["wandb_run_id"] == wandb_id
    assert len(list((run / "wandb").glob(f"offline-run-*-{wandb_id}"))) == 2
    steps = [m["step"] for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    assert steps[-1] > stopped.step  # the resumed run logs on, at multiples of log_every


@pytest.mark.slow
def test_a_process_group_sigterm_saves_once_and_exits_0(tmp_path: Path, home: Path) -> None:
    """``timeout``, systemd and ``kill -- -PGID`` signal the trainer and then its whole process
    group: the trainer gets SIGTERM twice and each emulator worker once. On the GPU host
    that second signal raised KeyboardInterrupt mid-step and the run ended unsaved."""
    run = tmp_path / "run"
    proc = start_mario(
        "train",
        *SMALL,
        "--total-steps",
        "100000",
        "--checkpoint-every",
        "200",
        "--run-dir",
        str(run),
        home=home,
        new_session=True,
    )
    try:
        first = wait_for_checkpoint(proc, run)
        time.sleep(1.0)  # into the next steps
        proc.send_signal(signal.SIGTERM)  # what coreutils timeout does: the child, then
        os.killpg(proc.pid, signal.SIGTERM)  # the group, the child included
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.count("received SIGTERM") == 1, err  # the trainer speaks, the workers don't
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "Calling `close`" not in err, err
    stopped = list_checkpoints(run)[-1]
    assert stopped.step > first
    state, _, _ = load_checkpoint(run)
    assert state["counters"]["step"] == stopped.step


def test_repeated_stop_signals(tmp_path: Path) -> None:
    """A repeated SIGTERM (a process group's, a supervisor's) never aborts the save; Ctrl-C
    pressed again after a moment does, as a user expects."""
    setup = prepare_run({"run_dir": str(tmp_path / "run"), "num_envs": 2, "wandb_mode": "disabled"})
    trainer = Runner(setup, env_factory=lambda seed: make_corridor_vec(2, seed), n_actions=3)
    try:
        trainer._on_signal(signal.SIGTERM, None)
        assert trainer.stop_requested
        trainer._on_signal(signal.SIGTERM, None)  # at once: the group's copy
        trainer._on_signal(signal.SIGINT, None)  # a terminal's Ctrl-C reaching both: at once
        trainer._stop_requested_at -= 5.0  # a moment later ...
        trainer._on_signal(signal.SIGTERM, None)  # ... SIGTERM still waits for the save
        with pytest.raises(StopNow):
            trainer._on_signal(signal.SIGINT, None)  # ... Ctrl-C again: stop now
    finally:
        trainer.tracker.close()
        setup.release()


@pytest.mark.slow
def test_kill_9_leaves_the_newest_complete_checkpoint_loadable(tmp_path: Path, home: Path) -> None:
    """A fresh run and its resume, each killed at a random moment after a new checkpoint
    (the checkpoint writer alone: tests/test_checkpoint.py, at many more moments)."""
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    for attempt in range(2):
        args = ["train", *TINY, "--total-steps", "100000", "--run-dir", str(run)]
        if attempt:
            args.append("--resume")
        proc = start_mario(*args, home=home)
        try:
            before = len(list_checkpoints(run))
            deadline = time.time() + 240
            while len(list_checkpoints(run)) <= before and time.time() < deadline:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
            time.sleep(float(rng.uniform(0.0, 3.0)))  # a random moment, maybe mid-save
        finally:
            proc.kill()  # SIGKILL
            proc.communicate()
        state, info, _ = load_checkpoint(run, fallback=True)
        assert state["counters"]["step"] == info.step > 0
        assert torch.is_tensor(next(iter(state["algorithm"]["net"].values())))


def test_bad_inputs_get_one_line_and_exit_2(tmp_path: Path, home: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("stage: 1-1\nlearning_rate: 0.1\n")
    cases = [
        (["train", "--config", str(bad_yaml)], ["unknown config key 'learning_rate'", "lr"]),
        (["train", "--lr", "fast"], ["bad value 'fast' for lr", "float"]),
        (["train", "--stage", "9-1"], ["unknown stage '9-1'"]),
        (["train", "--num-envs", "0"], ["num_envs", ">= 1"]),
        (["train", "--config", str(tmp_path / "missing.yaml")], ["does not exist"]),
        (["train", "--preset", "nope"], ["unknown preset 'nope'", "quickstart"]),
        (["train", "--run-dir", "/proc/mario-run"], ["/proc/mario-run"]),
        (["train", "--resume", str(tmp_path / "nothing")], ["no such run folder"]),
        (
            ["train", "--device", "cuda:0"]
            if not torch.cuda.is_available()
            else ["train", "--device", "tpu"],
            ["device"],
        ),
        (["info", str(tmp_path)], [str(tmp_path)]),
    ]
    hostile = [  # options that passed their check and failed later, or named no option
        (["train", "--net-width", "0.01"], ["net_width", "[0.125, 4.0]"]),
        (["train", "--seed", "1e30"], ["seed", "whole numbers up to 1e+15"]),
        (["train", "--seed", "4294967296"], ["seed", "[0, 4294967295]"]),
        (["train", "--stage", "1-1\n"], ["unknown stage '1-1\\n'"]),
        (["train", "--wandb-project", "a/b"], ["wandb_project", "none of / \\ # ? % :"]),
        (["train", "--wandb-project", "x" * 129], ["wandb_project", "1 to 128"]),
        (["train", "--total-steps", "9" * 5000], ["total_steps", "expected int"]),
        (["train", "--run-dir", "r" * 5000], ["run_dir", "at most 4,096 characters"]),
        (["train", "--run-dir", "r" * 3000], ["File name too long"]),
        (["train", "--resume", "r" * 3000], ["File name too long"]),
        (["info", "r" * 3000], ["File name too long"]),
        (["eval", "r" * 3000], ["File name too long"]),
        (["train", "--num-envs", "100"], ["num_envs", "emulator processes"]),  # wrote RUN/
        (["train", "--ray-address", "auto", "--envs-per-actor", "100"], ["envs_per_actor"]),
        (["train", "--ray-address", "auto", "--actor-steps", "100000000"], ["actor_steps"]),
        (["train", "--ray-address", "auto", "--actor-inflight", "200000"], ["actor_inflight"]),
    ]
    for args, needles in cases + hostile:
        result = run_cli(*args, home=home, cwd=tmp_path)
        assert_one_line_error(result, *needles)
        short = (args, needles) not in cases  # (an unknown key's line lists the valid keys)
        assert not short or len(result.stderr) < 400, result.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing was started


def _copy_state_files(run: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "checkpoints" in p.parts}


@pytest.mark.slow
def test_bad_resumes_leave_checkpoints_untouched(run_copy: Path, home: Path) -> None:
    run = run_copy  # checkpoints 200, 300, 400
    snapshot = _copy_state_files(run)
    mismatch = run_cli("train", "--resume", str(run), "--actions", "complex", home=home)
    assert_one_line_error(mismatch, "actions='right_only'", "network")
    stack = run_cli("train", "--resume", str(run), "--stack", "2", home=home)
    assert_one_line_error(stack, "stack=4")
    shown = run_cli("train", "--resume", str(run), "--prev-action", home=home)
    assert_one_line_error(shown, "prev_action=False", "network")
    assert _copy_state_files(run) == snapshot

    # a corrupt newest checkpoint: named, and --resume falls back to the previous one
    newest = list_checkpoints(run)[-1]
    state_file = newest.path / "state.pt"
    state_file.write_bytes(state_file.read_bytes()[: state_file.stat().st_size // 2])
    info = run_cli("info", str(newest.path), home=home)
    assert_one_line_error(info, str(state_file))
    resumed = run_cli("train", "--resume", str(run), "--total-steps", "500", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert "warning: skipped checkpoint step 400" in resumed.stderr
    assert "resuming" in resumed.stderr and "from step 300" in resumed.stderr


def test_stage_change_on_resume_is_explicit(tmp_path: Path) -> None:
    """Resuming keeps the checkpoint's stage unless --stage asks for another one."""
    run = tmp_path / "run"
    setup = prepare_run(
        {
            "run_dir": str(run),
            "total_steps": 64,
            "num_envs": 2,
            "burn_in": 32,
            "replay_size": 1000,
            "checkpoint_every": 64,
            "log_every": 64,
            "wandb_mode": "disabled",
            "max_episode_steps": 20,
        }
    )
    assert Runner(setup).run() == 0
    same = prepare_run({}, resume=str(run))
    assert same.config.run.stage == "1-1"
    # one trainer per run folder
    with pytest.raises(ConfigError, match=r"in use by another trainer \(pid \d+\)"):
        prepare_run({}, resume=str(run))
    same.release()
    moved = prepare_run({"stage": "1-2"}, resume=str(run))
    assert moved.config.run.stage == "1-2"
    assert "continuing training on stage 1-2 (was 1-1)" in moved.notes
