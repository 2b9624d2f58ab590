"""Shared test helpers: the real `mario` console script in a subprocess (or its entry point
in this process, where only the answer matters), one-line error checks, run folders."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

MARIO = str(Path(sys.executable).parent / "mario")

# The smallest real run: one env, short burn-in, a checkpoint every 100 steps (the
# conftest's `finished` run and the reliability tests).
TINY = [
    "--preset",
    "quickstart",
    "--num-envs",
    "1",
    "--device",
    "cpu",
    "--burn-in",
    "100",
    "--checkpoint-every",
    "100",
    "--replay-size",
    "2000",
    "--log-every",
    "100",
    "--wandb-mode",
    "disabled",
]


def mario_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env.update(WANDB_SILENT="true", MARIO_NO_PROGRESS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.pop("WANDB_API_KEY", None)
    if home is not None:
        env["HOME"] = str(home)
    return env


def run_mario(
    *args: str, cwd: Path | None = None, timeout: float = 300, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARIO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=mario_env(home),
    )


def start_mario(
    *args: str,
    cwd: Path | None = None,
    home: Path | None = None,
    new_session: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``mario ARGS`` in the background; ``new_session``: in its own process group (whose id
    is the process's pid), as under ``timeout``, systemd or a shell job; ``env``: variables
    to add (e.g. a pause point, mario/training/pause_points.py)."""
    return subprocess.Popen(
        [MARIO, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=mario_env(home, **(env or {})),
        start_new_session=new_session,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def wait_for_checkpoint(proc: subprocess.Popen[str], run: Path, after: int = -1) -> int:
    """Wait (up to 240 s) for a complete checkpoint newer than step ``after``; its step."""
    from mario.storage.checkpoints import list_checkpoints

    deadline = time.time() + 240
    while time.time() < deadline:
        found = list_checkpoints(run)
        if found and found[-1].step > after:
            return found[-1].step
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint after step {after} in {run} within 240 s")


def stop_waiting(proc: subprocess.Popen[str], after: float) -> tuple[str, str]:
    """Once the process says it waits for a stop signal (within 120 s: a loaded machine can
    take seconds to get there), ``after`` seconds on it must still be running (waiting);
    SIGTERM it and return its output."""
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    waiting = threading.Event()

    def read(stream: IO[str]) -> None:
        for line in stream:
            lines.append(line)
            if "waiting for a stop signal" in line:
                waiting.set()

    reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        if not waiting.wait(120):
            raise AssertionError(f"never waited for a stop signal: {''.join(lines)}")
        time.sleep(after)
        assert proc.poll() is None, (proc.returncode, "".join(lines))
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        return out, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run folder (but the lock) and its bytes."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def run_cli(
    *args: str, cwd: Path | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``mario ARGS`` through its entry point in this process, answered like
    :func:`run_mario` (exit status, stdout, stderr): a subprocess spends ~2 s of CPU importing
    torch, which the bad-input cases do not need. For what only the real script shows
    (process groups, signals, environment), use :func:`run_mario`."""
    from mario import cli

    out, err = io.StringIO(), io.StringIO()
    here, old_home = os.getcwd(), os.environ.get("HOME")
    try:
        if cwd is not None:
            os.chdir(cwd)
        if home is not None:
            os.environ["HOME"] = str(home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exit:  # argparse's errors
                code = exit.code if isinstance(exit.code, int) else 1
    finally:
        os.chdir(here)
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home
    return subprocess.CompletedProcess(["mario", *args], code, out.getvalue(), err.getvalue())
