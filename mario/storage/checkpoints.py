"""Atomic, verifiable training checkpoints that survive ``kill -9``.

Layout inside a run folder::

    RUN/checkpoints/step-000050000/
        state.pt        torch.save of plain data (tensors, numbers, strings, lists, dicts)
        replay/         optional, written by the trainer's callback
        MANIFEST.json   written last: step, time, files with sizes, sha256 of state.pt

A checkpoint is built in ``RUN/checkpoints/.tmp-step-XXXXXXXXX-<pid>/``; every file is
fsynced, the manifest is written and fsynced, and the folder is renamed to its final name
(then the parent folder is fsynced). A crash at any moment therefore leaves either the old
set of checkpoints or the old set plus one complete new one; leftovers (``.tmp-*``,
``.old-*``, ``.del-*``) are ignored by readers and cleaned by the next save.

``state.pt`` holds only types that ``torch.load(weights_only=True)`` accepts, so loading a
checkpoint never runs pickled code. ``save_checkpoint`` checks this before writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from mario.errors import first_line
from mario.game import backends
from mario.storage.run_folders import (
    BEST,
    FORMAT_VERSION,
    MANIFEST,
    OLD_DIR,
    REPLAY,
    STATE,
    STEP_DIR,
    CheckpointError,
    CheckpointInfo,
    RunDirError,
    candidates,
    checkpoints_dir,
    info_for,
    list_checkpoints,
    resolve_checkpoint,
    scan,
    verify_files,
)
from mario.training.pause_points import pause_point

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointInfo",
    "RunDirError",
    "check_writable",
    "list_checkpoints",
    "load_checkpoint",
    "mark_best",
    "package_versions",
    "resolve_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "upgrade_state",
]

_TMP_DIR = re.compile(r"^\.(?:tmp|old|del)-.*-(\d+)$")
#: Layout of a training state (``state.pt``): 2 bundles each part of a run (``algorithm``,
#: ``counters``, ``rng``, ...); 1 was the DQN-only trainer's flat layout (read, upgraded).
STATE_FORMAT = 2

_DISTRIBUTIONS = (
    "torch",
    "numpy",
    "gymnasium",
    "nes-py",
    "gym-super-mario-bros",
    "mario",
    "wandb",
)


# --------------------------------------------------------------------------- fs helpers


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> list[dict[str, Any]]:
    """Fsync every file and folder under ``root``; return its files as manifest entries."""
    entries: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            entries.append({"path": file.relative_to(root.parent).as_posix(), "size": size})
        _fsync_dir(Path(dirpath))
    return entries


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_tree(path: Path, ckpt_dir: Path) -> None:
    """Delete a folder so that no half-deleted checkpoint is ever visible under its name."""
    doomed = ckpt_dir / f".del-{path.name.lstrip('.')}-{os.getpid()}"
    os.rename(path, doomed)
    _fsync_dir(ckpt_dir)
    shutil.rmtree(doomed, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: we are not saving right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _HashingWriter:
    """File wrapper that hashes what torch.save writes, so state.pt is never read back."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        try:
            return self._f.write(data)
        except OSError as err:  # torch.save turns it into "enforce fail ...": keep the cause
            self.error = err
            raise

    def flush(self) -> None:
        self._f.flush()


# --------------------------------------------------------------------------- state checks

_LEAF_TYPES = (bool, int, float, str, bytes, type(None), torch.Tensor, torch.dtype, torch.Size)


def _check_loadable(value: Any, where: str) -> None:
    """Raise ValueError if ``value`` holds something ``torch.load(weights_only=True)`` rejects."""
    if isinstance(value, _LEAF_TYPES):
        if isinstance(value, torch.Tensor) and value.is_sparse:
            raise ValueError(f"state{where}: sparse tensors are not supported in checkpoints")
        return
    if isinstance(value, (dict, OrderedDict)):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise ValueError(
                    f"state{where}: dict key {key!r} has type {type(key).__name__}; "
                    "checkpoint dict keys must be str or int"
                )
            _check_loadable(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]")
        return
    raise ValueError(
        f"state{where} has type {type(value).__module__}.{type(value).__qualname__}, which "
        "weights_only loading rejects; valid: tensor, bool, int, float, str, bytes, None, "
        "list, tuple, dict (convert NumPy values with .tolist() or torch.from_numpy)"
    )


def load_checkpoint(
    path: Path, *, fallback: bool = False
) -> tuple[dict[str, Any], CheckpointInfo, list[str]]:
    """Load a checkpoint's state after checking sizes and the sha256 of state.pt.

    With ``fallback`` and a run folder, a newest checkpoint that fails the check (or fails
    to load) is skipped for the previous one; each skip adds a one-line warning naming the
    file. Returns ``(state, info, warnings)``.
    """
    found, is_run = candidates(path)
    warnings: list[str] = []
    for info in found:
        try:
            verify_files(info)
            state = _torch_load(info.state_path)
        except CheckpointError as err:
            if not (fallback and is_run):
                raise
            warnings.append(f"skipped checkpoint step {info.step}: {err}")
            continue
        return state, info, warnings
    raise CheckpointError(f"{found[0].path.parent}: no intact checkpoint: " + "; ".join(warnings))


def upgrade_state(state: dict[str, Any], where: Path) -> dict[str, Any]:
    """A training state in the current layout (:data:`STATE_FORMAT`): format 1 (the DQN-only
    trainer's) is converted; an unknown format is a CheckpointError naming it."""
    fmt = state.get("format")
    if fmt == STATE_FORMAT:
        return state
    if fmt == 1:
        moved = ("net", "learner", "policy_rng", "exploration")
        upgraded = {k: v for k, v in state.items() if k not in moved}
        upgraded.update(
            format=STATE_FORMAT,
            algo="dqn",
            algorithm={k: state[k] for k in ("net", "learner", "policy_rng")},
            status={"epsilon": state["exploration"]["epsilon"]},
        )
        return upgraded
    raise CheckpointError(
        f"{where}: incompatible training state format {fmt!r} (this version of mario reads "
        f"formats 1 and {STATE_FORMAT}: update mario to load it)"
    )


def acting_state(algorithm: dict[str, Any]) -> dict[str, Any]:
    """The weights a checkpoint's agent plays, from its algorithm state: ``acting`` where the
    algorithm keeps them apart from the network it learns with (DQN's averaged policy), else
    ``net``."""
    return algorithm.get("acting") or algorithm["net"]


def _torch_load(file: Path) -> dict[str, Any]:
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{file}: incompatible or corrupt: {first_line(err)}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: incompatible: holds {type(state).__name__}, not a dict")
    return state


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    run_dir: Path,
    step: int,
    state: dict[str, Any],
    *,
    write_replay: Callable[[Path], None] | None = None,
    keep_last: int = 3,
    is_best: bool = False,
    keep_replay_last: int = 1,
    meta: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Write ``state`` (and the replay, via ``write_replay(folder)``) as checkpoint ``step``.

    The checkpoint appears atomically; saving an existing step replaces it atomically.
    Afterwards the newest ``keep_last`` checkpoints and the best one are kept, and only the
    newest ``keep_replay_last`` keep their ``replay/`` folder; pruning never deletes the
    checkpoint just written nor any newer one. ``is_best`` marks this one best (without a
    metric; use :func:`mark_best` to record one). ``meta`` (JSON values) goes into the
    manifest, where :mod:`mario.storage.run_folders` reads it without torch.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    if keep_replay_last < 0:
        raise ValueError(f"keep_replay_last must be >= 0, got {keep_replay_last}")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}")
    _check_loadable(state, "")

    ckpt_dir = checkpoints_dir(run_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(ckpt_dir)

    name = f"step-{step:09d}"
    tmp = ckpt_dir / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    try:
        with open(tmp / STATE, "wb") as f:
            writer = _HashingWriter(f)
            try:
                torch.save(state, writer)  # type: ignore[arg-type]  # needs only write/flush
            except RuntimeError:
                if writer.error is not None:  # e.g. ENOSPC: raise it as what it is
                    raise writer.error from None
                raise
            f.flush()
            os.fsync(f.fileno())
        files: list[dict[str, Any]] = [
            {"path": STATE, "size": writer.size, "sha256": writer.sha256.hexdigest()}
        ]
        has_replay = write_replay is not None
        if write_replay is not None:
            replay_dir = tmp / REPLAY
            replay_dir.mkdir()
            write_replay(replay_dir)
            files += _fsync_tree(replay_dir)
        pause_point("checkpoint-save")  # tests hold a save here (mario/training/pause_points.py)
        manifest = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
            "replay": has_replay,
            "versions": package_versions(),
            "meta": meta or {},
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = ckpt_dir / name
        if final.exists():
            aside = ckpt_dir / f".old-{name}-{os.getpid()}"
            os.rename(final, aside)
            os.rename(tmp, final)
            _fsync_dir(ckpt_dir)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(tmp, final)
            _fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    info = CheckpointInfo(path=final, step=step, manifest=manifest)
    if is_best:
        _write_best(Path(run_dir), info, None)
    _prune(Path(run_dir), keep_last=keep_last, keep_replay_last=keep_replay_last, written=step)
    return info


def _clean_leftovers(ckpt_dir: Path) -> None:
    """Remove what crashed saves left behind; restore an ``.old-*`` copy that is still needed."""
    for child in ckpt_dir.iterdir():
        m = _TMP_DIR.match(child.name)
        if m is None or not child.is_dir() or _pid_alive(int(m.group(1))):
            continue
        old = OLD_DIR.match(child.name)
        if (
            old
            and not (ckpt_dir / f"step-{old.group(1)}").exists()
            and info_for(child, int(old.group(1))) is not None
        ):
            os.rename(child, ckpt_dir / f"step-{old.group(1)}")
            _fsync_dir(ckpt_dir)
            continue
        shutil.rmtree(child, ignore_errors=True)


def _best_step(run_dir: Path) -> int | None:
    try:
        data = json.loads((run_dir / BEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = data.get("step") if isinstance(data, dict) else None
    return step if isinstance(step, int) else None


def _write_best(run_dir: Path, info: CheckpointInfo, metric: float | None) -> None:
    _write_json_atomic(
        run_dir / BEST,
        {
            "step": info.step,
            "path": os.path.relpath(info.path, run_dir),
            "metric": metric,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )


def mark_best(run_dir: Path, info: CheckpointInfo, metric: float) -> None:
    """Record ``info`` as the best checkpoint in ``RUN/best.json``; pruning keeps it."""
    metric = float(metric)
    if metric != metric or metric in (float("inf"), float("-inf")):
        raise ValueError(f"metric must be a finite number, got {metric}")
    _write_best(Path(run_dir), info, metric)


def _prune(run_dir: Path, *, keep_last: int, keep_replay_last: int, written: int) -> None:
    ckpt_dir = checkpoints_dir(run_dir)
    found = [i for i in scan(ckpt_dir) if STEP_DIR.match(i.path.name)]
    best = _best_step(run_dir)
    # the newest, and never the one just written or anything newer (a folder that holds a
    # newer run's checkpoints is the trainer's bug to refuse; pruning must not hide it)
    keep = {i.step for i in found[-keep_last:]} | {i.step for i in found if i.step >= written}
    if best is not None:
        keep.add(best)
    for info in found:
        if info.step not in keep:
            _remove_tree(info.path, ckpt_dir)
    replay_keep = (
        {i.step for i in found[len(found) - keep_replay_last :]} if keep_replay_last else set()
    )
    for info in found:
        if info.step in keep and info.step not in replay_keep:
            _strip_replay(info)


def _strip_replay(info: CheckpointInfo) -> None:
    """Drop ``replay/``: first from the manifest (atomically), then from the disk."""
    replay = info.path / REPLAY
    if info.manifest.get("replay"):
        manifest = dict(info.manifest)
        manifest["files"] = [e for e in manifest["files"] if not e["path"].startswith(REPLAY + "/")]
        manifest["replay"] = False
        manifest["replay_pruned"] = True
        _write_json_atomic(info.path / MANIFEST, manifest)
    if replay.exists():
        _remove_tree(replay, info.path)
    for child in info.path.iterdir():  # a replay whose deletion a crash interrupted
        if child.name.startswith(".del-") and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


# --------------------------------------------------------------------------- run folder


def check_writable(dir: Path) -> None:
    """Create ``dir`` if needed and prove a file can be written there; else RunDirError."""
    dir = Path(dir)
    try:
        dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"run folder {dir}: exists but is not a folder") from None
    except OSError as err:
        raise RunDirError(f"run folder {dir}: cannot create it: {err.strerror}") from None
    if not dir.is_dir():
        raise RunDirError(f"run folder {dir}: exists but is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=dir, prefix=".write-test-") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise RunDirError(f"run folder {dir}: not writable: {err.strerror}") from None


# --------------------------------------------------------------------------- rng + versions


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's global and torch's (CPU + every CUDA device) RNGs.

    Plain ints, lists and tensors only, so it survives ``torch.load(weights_only=True)``.
    """
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss},
        "numpy": {
            "bit_generator": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.uint32).astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(d: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured.

    CUDA states are restored for as many devices as both the state and this machine have
    (a run resumed on a machine without CUDA keeps its CPU streams).
    """
    try:
        py = d["python"]
        npd = d["numpy"]
        random.setstate((int(py["version"]), tuple(int(x) for x in py["state"]), py["gauss_next"]))
        keys = torch.as_tensor(npd["keys"]).numpy().astype(np.uint32)
        np.random.set_state(
            (
                str(npd["bit_generator"]),
                keys,
                int(npd["pos"]),
                int(npd["has_gauss"]),
                float(npd["cached_gaussian"]),
            )
        )
        torch.set_rng_state(torch.as_tensor(d["torch"], dtype=torch.uint8))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"rng state is malformed ({err!r}); expected what rng_state() returns"
        ) from err
    cuda = d.get("cuda") or []
    if cuda and torch.cuda.is_available():
        for i, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(torch.as_tensor(s, dtype=torch.uint8), device=i)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a checkpoint depends on ("not installed" if absent)."""
    versions = {"python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["game_backend"] = backends.NAME  # same game either way; the emulator differs
    return versions
