"""Never lose a run: each way a run could be lost or looped without a crash, reproduced.

Every test here failed before its fix (docs/RELIABILITY.md lists the guarantees and these
tests). Real `mario train` processes on the real emulator; the disk-full cases run on a small
tmpfs mounted for the test (root, or a mount namespace, is needed to mount it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mario.storage.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from mario.training.pause_points import ENV
from mario.training.runner import EXIT_DISK_FULL, EXIT_DIVERGED, REPEAT_WINDOW_S, Runner
from mario.training.setup import prepare_run
from tests.helpers import (
    TINY,
    assert_one_line_error,
    mario_env,
    run_cli,
    snapshot,
    start_mario,
    stop_waiting,
    wait_for_checkpoint,
)
from tests.toy_env import make_corridor_vec

# ------------------------------------------------------------------- 1. forgetting --resume


@pytest.mark.slow
def test_a_new_run_refuses_a_folder_that_holds_one(run_copy: Path) -> None:
    before = snapshot(run_copy)
    result = run_cli("train", *TINY, "--total-steps", "400", "--run-dir", str(run_copy))
    assert_one_line_error(result, "already holds a run", "step 400", f"--resume {run_copy}")
    assert snapshot(run_copy) == before


# ------------------------------------------------- 2. resuming an older checkpoint: a fork


@pytest.mark.slow
def test_resuming_an_older_checkpoint_forks_into_a_new_folder(
    run_copy: Path, tmp_path: Path
) -> None:
    before = snapshot(run_copy)
    old = list_checkpoints(run_copy)[-3].path  # step 200
    in_place = run_cli("train", "--resume", str(old), "--total-steps", "250")
    assert_one_line_error(in_place, "not the newest", "--run-dir NEW", f"--resume {run_copy}")
    assert snapshot(run_copy) == before

    fork = tmp_path / "fork"
    result = run_cli("train", "--resume", str(old), "--total-steps", "250", "--run-dir", str(fork))
    assert result.returncode == 0, result.stderr
    assert f"forking {old} (step 200) into the new run {fork}" in result.stderr
    assert snapshot(run_copy) == before  # the original run is untouched
    assert [c.step for c in list_checkpoints(fork)] == [250]
    info = {p: json.loads(run_cli("info", str(p)).stdout) for p in (run_copy, fork)}
    assert info[run_copy]["step"] == 400 and info[fork]["step"] == 250
    assert info[fork]["wandb_run_id"] != info[run_copy]["wandb_run_id"]  # a new W&B run

    # --resume A --run-dir B is a fork too (it was silently ignored), and B must be new
    again = run_cli("train", "--resume", str(run_copy), "--run-dir", str(fork))
    assert_one_line_error(again, f"run folder {fork} already holds a run")


@pytest.mark.slow
def test_refused_resumes_write_nothing(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume refused for any reason leaves the run folder byte for byte: TensorBoard
    asked for but not installed (it rewrote config.yaml and appended to command.txt), a W&B
    project W&B would refuse, another reward (the replay memory holds the old scale)."""
    import sys

    from mario import cli

    before = snapshot(run_copy)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    resume = ["train", "--resume", str(run_copy), "--total-steps", "500", "--tensorboard"]
    assert cli.main(resume) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "mario[tensorboard]"' in err, err
    for args, needle in (
        (["--wandb-project", "a#b"], "wandb_project"),
        (["--reward", "upstream"], "can't change its reward"),
    ):
        result = run_cli("train", "--resume", str(run_copy), "--total-steps", "500", *args)
        assert_one_line_error(result, needle)
    assert snapshot(run_copy) == before


@pytest.mark.slow
def test_a_damaged_metrics_line_does_not_stop_a_run(run_copy: Path) -> None:
    """One bad line in metrics.jsonl (a --out into it, a disk error) crashed every later
    checkpoint in Tracker.plot: the curves leave it out and the run goes on."""
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write("garbage that is not JSON\n")
    result = run_cli("train", "--resume", str(run_copy), "--total-steps", "600")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [c.step for c in list_checkpoints(run_copy)][-1] == 600
    assert (run_copy / "curves.png").stat().st_size > 10_000


def test_pruning_never_deletes_the_checkpoint_just_written_or_newer(tmp_path: Path) -> None:
    state = {"x": torch.zeros(1)}
    for step in (100, 200, 300, 400):
        info = save_checkpoint(tmp_path, step, state, keep_last=3, is_best=step == 100)
    assert [c.step for c in list_checkpoints(tmp_path)] == [100, 200, 300, 400]
    info = save_checkpoint(tmp_path, 150, state, keep_last=3)
    assert info.path.is_dir()
    assert [c.step for c in list_checkpoints(tmp_path)] == [100, 150, 200, 300, 400]


# ------------------------------------------------------------------- 3. disk full


def _mount_tmpfs(path: Path, size: str, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"mounting a test tmpfs needs root: {result.stderr}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points of tmpfs file systems the test mounts; unmounted afterwards."""
    mounts: list[Path] = []
    yield mounts
    for path in reversed(mounts):
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_run_folder_without_room_for_a_checkpoint_is_refused(
    tmp_path: Path, small_disk: list[Path]
) -> None:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "30m")
    small_disk.append(disk)
    result = run_cli("train", *TINY, "--run-dir", str(disk / "run"))
    assert_one_line_error(result, "free on its disk", "a checkpoint needs", "--no-save-replay")
    assert not list_checkpoints(disk / "run")

    # a read-only RUN/checkpoints is found at start too (it was found at the first save)
    run = tmp_path / "ro-run"
    (run / "checkpoints").mkdir(parents=True)
    _mount_tmpfs(run / "checkpoints", "10m", "ro")
    small_disk.append(run / "checkpoints")
    result = run_cli("train", *TINY, "--run-dir", str(run))
    assert_one_line_error(result, str(run / "checkpoints"), "not writable")


def _fill(disk: Path, leave_mb: int) -> None:
    """Fill ``disk`` with a file until ``leave_mb`` MiB are free."""
    free = shutil.disk_usage(disk).free - leave_mb * 2**20
    with open(disk / "filler", "wb") as f:
        f.truncate(0)
        block = b"\0" * 2**20
        for _ in range(max(0, free // 2**20)):
            f.write(block)


@pytest.mark.slow
@pytest.mark.parametrize(("leave_mb", "kept"), [(35, "without its replay memory"), (5, None)])
def test_a_full_disk_during_a_save_keeps_what_fits_and_exits_4(
    tmp_path: Path, small_disk: list[Path], leave_mb: int, kept: str | None
) -> None:
    """A checkpoint here is ~27 MB of state plus ~14 MB of replay memory."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "200m")
    small_disk.append(disk)
    run = disk / "run"
    proc = start_mario("train", *TINY, "--total-steps", "100000", "--run-dir", str(run))
    try:
        first = wait_for_checkpoint(proc, run)
        _fill(disk, leave_mb)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_DISK_FULL, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "disk full" in lines[0] and "Traceback" not in err, err
    state, info, _ = load_checkpoint(run)  # the newest complete checkpoint loads
    if kept:  # the weights, optimizer and counters of the last step, without the replay
        assert kept in lines[0] and info.step > first and info.replay_path is None
        assert "MiB more" in lines[0]
    else:  # nothing fitted: the previous checkpoint is still the newest, intact
        assert "could not save" in lines[0] and info.step == first
    assert state["counters"]["step"] == info.step


# ------------------------------------------------------------------- 4. non-finite numbers


@pytest.mark.parametrize(
    ("option", "value"),
    [("--lr", "inf"), ("--lr", "nan"), ("--replay-ratio", "nan"), ("--gamma", "-inf")],
)
def test_non_finite_options_are_refused(
    tmp_path: Path, home: Path, option: str, value: str
) -> None:
    result = run_cli("train", f"{option}={value}", "--run-dir", str(tmp_path / "r"), home=home)
    assert_one_line_error(result, f"bad value {value!r}", "finite")
    yaml = tmp_path / "c.yaml"
    yaml.write_text("lr: .inf\n")
    assert_one_line_error(run_cli("train", "--config", str(yaml), home=home), "finite")


def test_a_diverging_run_stops_before_saving_over_good_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    setup = prepare_run(
        {
            "run_dir": str(run),
            "num_envs": 2,
            "burn_in": 100,
            "checkpoint_every": 100,
            "log_every": 50,
            "total_steps": 2000,
            "replay_size": 1000,
            "batch_size": 8,
            "replay_ratio": 0.5,
            "lr": 1e12,  # finite, and enough to blow the weights up within a few updates
            "grad_clip": 1e30,
            "wandb_mode": "disabled",
        }
    )
    trainer = Runner(setup, env_factory=lambda seed: make_corridor_vec(2, seed), n_actions=3)
    assert trainer.run() == EXIT_DIVERGED
    err = capsys.readouterr().err
    assert "training diverged at step" in err and "NaN/inf" in err, err
    saved = list_checkpoints(run)
    assert saved and saved[-1].step < trainer.step  # nothing saved at the end
    for info in saved:
        state, _, _ = load_checkpoint(info.path)
        weights = state["algorithm"]["net"].values()
        assert all(torch.isfinite(t).all() for t in weights), info.step
    metrics = (run / "metrics.jsonl").read_text()
    assert "NaN" not in metrics and "Infinity" not in metrics


# ------------------------------------------------------- 7. a finished run under a restart


@pytest.mark.slow
def test_a_finished_run_restarts_as_a_no_op(run_copy: Path) -> None:
    before = snapshot(run_copy)
    result = run_cli("train", "--run-dir", str(run_copy), "--resume")
    assert result.returncode == 0, result.stderr
    assert "run already complete: step 400" in result.stdout
    assert snapshot(run_copy) == before  # no command.txt line, no config.yaml, no metrics
    assert not (run_copy / "wandb").exists()

    # in a container (--idle-when-done) it waits for the stop instead of exiting
    proc = start_mario("train", "--run-dir", str(run_copy), "--resume", "--idle-when-done")
    out, err = stop_waiting(proc, after=3)
    assert proc.returncode == 0, err
    assert "run already complete" in out and "waiting for a stop signal" in err
    assert snapshot(run_copy) == before


def test_bad_input_in_a_container_waits_instead_of_looping(tmp_path: Path, home: Path) -> None:
    proc = start_mario("train", "--lr", "fast", "--idle-when-done", home=home)
    _, err = stop_waiting(proc, after=2)
    assert proc.returncode == 2 and "bad value 'fast' for lr" in err


# ------------------------------------------------------------------------ 8. upper bounds


def test_limits_are_checked_before_anything_starts(tmp_path: Path, home: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    cases = [
        (["--num-envs", "10000"], [f"{cores} CPU cores", "emulator processes"]),
        (["--replay-size", str(10**12)], ["replay_size", "GiB", "available"]),
        (["--seed", "-1"], ["bad value -1 for seed", "[0, 4294967295]"]),
        (["--config", str(binary)], [str(binary), "not a text (YAML) file"]),
    ]
    for args, needles in cases:
        result = run_cli("train", *args, "--run-dir", str(tmp_path / "r"), home=home)
        assert_one_line_error(result, *needles)
    assert not list_checkpoints(tmp_path / "r")


def _laughs(key: str, levels: int) -> str:
    """A "billion laughs" YAML: ``levels`` lists of aliases inside the value of ``key``, each
    nine times the one before (9 levels: 9**9 items in under 500 bytes)."""
    lists = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lists.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return f"{key}: [{', '.join(lists)}]\n"


def test_hostile_config_files_get_one_short_line(tmp_path: Path, home: Path) -> None:
    """A few hundred bytes of YAML aliases describe 9**9 items; a file can be endless, huge
    or deeply nested: each is one short line, exit 2, within a 2 GiB address-space limit."""
    import resource

    files = {
        "laughs.yaml": _laughs("stages", 9),
        "six.yaml": _laughs("lr", 6),
        "keys.yaml": "1: 2\n",  # a key that is not a name
        "deep.yaml": "stages: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "digits.yaml": "seed: " + "9" * 5_000 + "\n",
        "big.yaml": "stages:\n" + "  - 1-1\n" * 20_000,  # 160 KB: larger than any config
        "list.yaml": "stages: [" + ", ".join(["1-1"] * 100) + "]\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    needles = {
        "laughs.yaml": ["stages", "a list of 9 items"],
        "six.yaml": ["lr", "expected float"],
        "keys.yaml": ["is not a name"],
        "deep.yaml": ["cannot read config file"],
        "digits.yaml": ["cannot read config file"],
        "big.yaml": ["larger than 64 KiB"],
        "list.yaml": ["stages", "at most 64"],
    }
    paths = [*(str(tmp_path / n) for n in files), "/dev/zero"]
    needles["/dev/zero"] = ["larger than 64 KiB"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    # one process reads them all, through the CLI's entry point, under the memory limit
    code = (
        "import contextlib, io, json, sys\n"
        "from mario import cli\n"
        "answers = []\n"
        "for path in sys.argv[2:]:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        status = cli.main(['train', '--config', path, '--run-dir', sys.argv[1]])\n"
        "    answers.append([status, err.getvalue()])\n"
        "print(json.dumps(answers))\n"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "r"), *paths]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env=mario_env(home), preexec_fn=limit
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for path, (status, err) in zip(paths, json.loads(result.stdout), strict=True):
        answer = subprocess.CompletedProcess([path], status, "", err)
        assert_one_line_error(answer, *needles[Path(path).name if path != "/dev/zero" else path])
        assert len(err) < 300, err[:500]
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------ 9. signals


@pytest.mark.slow
def test_ctrl_c_twice_during_a_save_stops_in_one_line(tmp_path: Path) -> None:
    """The second Ctrl-C lands inside a save: the test holds the save at its pause point
    (mario/training/pause_points.py) for as long as ``hold`` exists, so no clock decides whether the
    save is still running when the signal comes."""
    run, hold = tmp_path / "run", tmp_path / "hold"
    args = [*TINY, "--total-steps", "100000", "--run-dir", str(run)]
    proc = start_mario("train", *args, env={ENV: f"checkpoint-save:{hold}"})
    try:
        first = wait_for_checkpoint(proc, run)
        hold.touch()  # from now on every save stops before its rename
        proc.send_signal(signal.SIGINT)
        while not list((run / "checkpoints").glob(".tmp-*")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        # the save waits in a Python loop, so the first signal has been handled within
        # ~10 ms; the second must come after the window in which repeats count as one
        time.sleep(REPEAT_WINDOW_S + 0.5)
        assert list((run / "checkpoints").glob(".tmp-*")), "the held save ended"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # the held save was abandoned: the line names the newest complete checkpoint, and it loads
    state, info, _ = load_checkpoint(run)
    assert info.step >= first and math.isfinite(float(state["counters"]["step"]))
    line = f"stopped without saving (Ctrl-C twice): the newest checkpoint is step {info.step}"
    assert line in err, err
    assert not list((run / "checkpoints").glob(".tmp-*"))  # no half-written leftovers
