"""Preparing a run before anything trains: its config, its folder, what it resumes from.

``prepare_run`` does everything that can fail because of the user's input (config, resume
checkpoint, run folder, the machine's room for the run) before any training starts, and
writes nothing but the folder and its lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mario import algos
from mario.config import (
    ConfigError,
    TrainConfig,
    build_config,
    check_algo,
    check_resumable,
)
from mario.device import resolve_device
from mario.game.options import ACTION_SET_NAMES
from mario.storage.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    check_writable,
    list_checkpoints,
    load_checkpoint,
    upgrade_state,
)
from mario.storage.run_folders import CHECKPOINTS, MANIFEST, STEP_DIR, check_exists, newest_run
from mario.storage.tracker import check_tensorboard
from mario.storage.wandb_setup import resolve_wandb_mode
from mario.training.preflight import check_resources

DEFAULT_ROOT = Path("checkpoints")
#: Button combinations per action set (what the networks' outputs are sized for).
N_ACTIONS = dict(zip(ACTION_SET_NAMES, (5, 7, 12), strict=True))


def action_set_size(name: str) -> int:
    return N_ACTIONS[name]


@dataclass
class RunSetup:
    """A validated run, ready to train: config, folder, and the state to resume (if any)."""

    config: TrainConfig
    run_dir: Path
    state: dict[str, Any] | None = None
    checkpoint: CheckpointInfo | None = None
    notes: list[str] = field(default_factory=list)
    lock: TextIO | None = None
    fork_of: CheckpointInfo | None = None
    """The checkpoint a forked run started from (a new folder and W&B run); None otherwise."""
    wandb_mode: str = "disabled"
    """``online``, ``offline`` or ``disabled``: ``config.wandb_mode`` resolved."""

    def release(self) -> None:
        """Let another trainer use the run folder."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def lock_run_dir(run_dir: Path) -> TextIO:
    """Hold ``RUN/.lock`` for this process's lifetime: one trainer per run folder.

    ``flock`` is released by the kernel when the process dies (even by ``kill -9``), so a
    stale lock never blocks a resume.
    """
    try:
        handle = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held until the process exits
    except OSError as error:  # e.g. RUN/.lock is a folder
        raise ConfigError(
            f"run folder {run_dir}: cannot use its lock file {run_dir / '.lock'} "
            f"({error.strerror or type(error).__name__}): remove it, or choose another --run-dir"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(
            f"run folder {run_dir} is in use by another trainer (pid {owner}); "
            "stop it first or choose another --run-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def prepare_run(
    overrides: dict[str, Any],
    *,
    yaml_values: dict[str, Any] | None = None,
    resume: str | None = None,
) -> RunSetup:
    """Resolve the config and the run folder, load the checkpoint to resume from, and check
    that the machine can hold the run; nothing is written but the folder and its lock.

    ``resume``: ``None`` (a new run), ``"auto"`` (the run in ``--run-dir``, else the newest
    run under ``checkpoints/``; a new run when there is none), or a run folder / checkpoint.
    Values from the checkpoint's config are the base; ``yaml_values`` and ``overrides``
    (only what the user gave explicitly) replace them.

    Run folders are never mixed: a new run refuses a folder that holds checkpoints, and
    resuming a checkpoint that is not its run's newest (which would abandon the newer ones),
    or any checkpoint into another ``--run-dir``, *forks*: the run continues from it in a
    new folder, with a new W&B run. Raises ConfigError / CheckpointError.
    """
    notes: list[str] = []
    yaml_values = yaml_values or {}
    given = overrides.get("run_dir") or yaml_values.get("run_dir")
    state, info = _load_resume(resume, given, notes)
    fork_of: CheckpointInfo | None = None
    if state is not None and info is not None:
        saved = dict(state["config"])
        check_algo(saved, overrides.get("algo", yaml_values.get("algo")), info.path)
        config = build_config(saved, **{**yaml_values, **overrides})
        check_resumable(saved, config, info.path)
        if config.run.stage != saved["stage"]:
            notes.append(f"continuing training on stage {config.run.stage} (was {saved['stage']})")
        run_dir = info.run_dir
        if given and Path(given).resolve() != run_dir.resolve():
            fork_of, run_dir = info, Path(given)
        elif resume not in (None, "auto") and _is_checkpoint(Path(resume)):
            newest = list_checkpoints(run_dir, verify=True)
            if newest and newest[-1].step > info.step:
                raise ConfigError(
                    f"checkpoint {info.path} (step {info.step}) is not the newest of its run "
                    f"(step {newest[-1].step}): continuing it in {run_dir} would abandon the "
                    "newer ones. Continue it in a new run folder with --run-dir NEW, or the "
                    f"newest with --resume {run_dir}"
                )
        if fork_of is None:
            notes.append(f"resuming {run_dir} from step {state['counters']['step']}")
        else:
            notes.append(f"forking {info.path} (step {info.step}) into the new run {run_dir}")
    else:
        config = build_config(yaml_values, **overrides)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(given) if given else DEFAULT_ROOT / f"{config.run.stage}-{stamp}"
    if (state is None or fork_of is not None) and (held := list_checkpoints(run_dir)):
        raise ConfigError(
            f"run folder {run_dir} already holds a run (newest checkpoint: step "
            f"{held[-1].step}): continue it with --resume {run_dir}, or start a new run in "
            "another --run-dir"
        )
    config.run.run_dir = str(run_dir)
    # Everything that can refuse the run comes before the folder is made: a refused start
    # writes nothing (docs/RELIABILITY.md).
    device = resolve_device(config.run.device)
    n_actions = action_set_size(config.env.actions)
    spec = algos.get(config.algo)
    notes += spec.notes(config.algorithm, config.context(n_actions, device))
    if config.run.tensorboard:
        try:
            check_tensorboard()
        except ValueError as error:
            raise ConfigError(str(error)) from None
    wandb_mode, message = resolve_wandb_mode(config.run.wandb_mode, run_dir)  # online needs a key
    if message:
        notes.append(message)
    check_resources(config, run_dir, device, n_actions)
    if config.distributed:  # join the Ray cluster; it must have a CPU per actor
        from mario.distributed.cluster import connect

        connect(config)
    if state is not None and config.env.archive_share > 0:
        was = int(state["config"].get("archive_cell", config.env.archive_cell))
        if was != config.env.archive_cell:
            notes.append(
                f"the start archive's cells are rebuilt {config.env.archive_cell} px wide "
                f"(were {was}): each keeps its shortest path, its death counts start over"
            )
    new = _first_missing(run_dir / CHECKPOINTS)  # run_dir too, if it is new
    try:
        check_writable(run_dir)
        check_writable(run_dir / CHECKPOINTS)
        lock = lock_run_dir(run_dir)
    except CheckpointError as error:
        _remove_empty_tree(new)
        raise ConfigError(str(error)) from None
    except BaseException:
        _remove_empty_tree(new)
        raise
    return RunSetup(config, run_dir, state, info, notes, lock, fork_of, wandb_mode)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_empty_tree(top: Path | None) -> None:
    """Remove ``top`` and the folders under it if they hold no files (what a refused start
    made); anything else is left alone."""
    if top is None or not top.is_dir():
        return
    walked = list(os.walk(top, topdown=False))  # children before their parents
    if not any(files for _, _, files in walked):
        for root, _, _ in walked:
            os.rmdir(root)


def _is_checkpoint(path: Path) -> bool:
    """Whether ``path`` names one checkpoint (its folder or state.pt), not a run folder."""
    return path.is_file() or (path / MANIFEST).exists() or bool(STEP_DIR.match(path.name))


def _load_resume(
    resume: str | None, given: str | None, notes: list[str]
) -> tuple[dict[str, Any] | None, CheckpointInfo | None]:
    """The state and checkpoint ``--resume`` names (None, None: a new run)."""
    if resume is None:
        return None, None
    if resume == "auto":
        target = Path(given) if given else newest_run(DEFAULT_ROOT)
        if target is None or not list_checkpoints(target):
            notes.append("nothing to resume: starting a new run")
            return None, None
    else:
        target = Path(resume)
        check_exists(target)
    state, info, warnings = load_checkpoint(target, fallback=True)
    notes.extend(f"warning: {w}" for w in warnings)
    return upgrade_state(state, info.state_path), info
