"""What a run folder holds, read without torch: its checkpoints, found by their manifests.

Kept apart from :mod:`mario.storage.checkpoints` (which saves and loads state with torch) so that
questions such as "which is the newest checkpoint, and is the run complete?" are answered in
milliseconds, e.g. by ``mario train --resume`` before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mario.errors import brief_path

__all__ = [
    "BEST",
    "CHECKPOINTS",
    "MANIFEST",
    "REPLAY",
    "STATE",
    "CheckpointError",
    "CheckpointInfo",
    "RunDirError",
    "list_checkpoints",
    "newest_run",
    "resolve_checkpoint",
    "run_dir_of",
]

FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
STATE = "state.pt"
REPLAY = "replay"
MANIFEST = "MANIFEST.json"
BEST = "best.json"

STEP_DIR = re.compile(r"^step-(\d{9,})$")
OLD_DIR = re.compile(r"^\.old-step-(\d{9,})-(\d+)$")
_CHUNK = 1 << 20


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt, truncated or incompatible (the message names the file)."""


class RunDirError(CheckpointError):
    """The run folder cannot be created or written."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint folder whose save finished (it has a valid MANIFEST.json)."""

    path: Path
    step: int
    manifest: dict[str, Any]

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self.path)

    @property
    def replay_path(self) -> Path | None:
        """The ``replay/`` folder, or None when none was saved or it was pruned."""
        return self.path / REPLAY if self.manifest.get("replay") else None


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint folder: ``RUN/checkpoints/step-N`` -> ``RUN`` (a
    checkpoint folder kept elsewhere is its own parent's)."""
    parent = Path(checkpoint).parent
    return parent.parent if parent.name == CHECKPOINTS else parent


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- manifest


def read_manifest(ckpt: Path) -> dict[str, Any] | None:
    """The parsed manifest, or None when it is missing or not a valid manifest."""
    try:
        data = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("step"), int):
        return None
    files = data.get("files")
    if not isinstance(files, list) or not any(
        isinstance(e, dict) and e.get("path") == STATE and isinstance(e.get("sha256"), str)
        for e in files
    ):
        return None
    return data


def info_for(path: Path, step_from_name: int | None) -> CheckpointInfo | None:
    manifest = read_manifest(path)
    if manifest is None:
        return None
    if step_from_name is not None and manifest["step"] != step_from_name:
        return None
    return CheckpointInfo(path=path, step=int(manifest["step"]), manifest=manifest)


def verify_files(info: CheckpointInfo) -> None:
    """Check format, presence, size and (for state.pt) sha256 of every listed file."""
    version = info.manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{info.path / MANIFEST}: incompatible checkpoint format_version {version!r} "
            f"(this version of mario reads {FORMAT_VERSION})"
        )
    for entry in info.manifest["files"]:
        file = info.path / entry["path"]
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise CheckpointError(f"{file}: missing (listed in {MANIFEST})") from None
        if size != entry.get("size"):
            kind = "truncated" if size < entry.get("size", 0) else "corrupt"
            raise CheckpointError(
                f"{file}: {kind}: {size} bytes, {MANIFEST} says {entry.get('size')}"
            )
        if "sha256" in entry and _sha256_file(file) != entry["sha256"]:
            raise CheckpointError(f"{file}: corrupt: sha256 does not match {MANIFEST}")


# --------------------------------------------------------------------------- listing


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def scan(ckpt_dir: Path) -> list[CheckpointInfo]:
    """Finished checkpoints, oldest first, including an ``.old-*`` copy orphaned by a crash."""
    if not ckpt_dir.is_dir():
        return []
    by_step: dict[int, CheckpointInfo] = {}
    orphans: dict[int, CheckpointInfo] = {}
    for child in ckpt_dir.iterdir():
        if (m := STEP_DIR.match(child.name)) and child.is_dir():
            if info := info_for(child, int(m.group(1))):
                by_step[info.step] = info
        elif (
            (m := OLD_DIR.match(child.name))
            and child.is_dir()
            and (info := info_for(child, int(m.group(1))))
        ):
            # A same-step replacement moved the old copy aside and crashed before the new
            # one was renamed in: the old copy is still a complete checkpoint.
            orphans[info.step] = info
    for step, info in orphans.items():
        by_step.setdefault(step, info)
    return [by_step[s] for s in sorted(by_step)]


def list_checkpoints(run_dir: Path, *, verify: bool = False) -> list[CheckpointInfo]:
    """Complete checkpoints of a run, oldest first.

    Without ``verify`` a checkpoint is complete when its save finished (a valid
    MANIFEST.json, which is written last) — cheap, no file is read. With ``verify`` the
    listed files must also exist with their sizes and state.pt must match its sha256
    (reads every state.pt).
    """
    found = scan(checkpoints_dir(run_dir))
    if not verify:
        return found
    good = []
    for info in found:
        try:
            verify_files(info)
        except CheckpointError:
            continue
        good.append(info)
    return good


def check_exists(path: str | Path) -> None:
    """CheckpointError unless ``path`` (a run folder or checkpoint) exists; a path the system
    refuses (a name too long, a loop of links, no permission) says why."""
    try:
        Path(path).stat()
    except FileNotFoundError:
        raise CheckpointError(f"{brief_path(path)}: no such run folder or checkpoint") from None
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise CheckpointError(f"{brief_path(path)}: {why}") from None


def candidates(path: Path) -> tuple[list[CheckpointInfo], bool]:
    """Checkpoints for ``path``, newest first, and whether ``path`` named a whole run."""
    path = Path(path)
    check_exists(path)
    if path.is_file():
        if path.name != STATE:
            raise CheckpointError(
                f"{path}: not a checkpoint (expected a run folder, a checkpoint folder or "
                f"its {STATE})"
            )
        path = path.parent
    if (path / MANIFEST).exists() or STEP_DIR.match(path.name):
        info = info_for(path, None)
        if info is None:
            raise CheckpointError(
                f"{path / MANIFEST}: missing or corrupt: the save of this checkpoint did not finish"
            )
        return [info], False
    ckpt_dir = path / CHECKPOINTS
    if not ckpt_dir.is_dir() and path.name == CHECKPOINTS:
        ckpt_dir = path
    found = scan(ckpt_dir)
    if not found:
        raise CheckpointError(f"{ckpt_dir}: missing: no complete checkpoint (step-*/{MANIFEST})")
    return found[::-1], True


def resolve_checkpoint(path: Path) -> CheckpointInfo:
    """The checkpoint that ``path`` names.

    ``path`` may be a run folder (its newest complete checkpoint), its ``checkpoints/``
    folder, a checkpoint folder, or a checkpoint's state.pt.
    """
    return candidates(path)[0][0]


def newest_run(root: Path) -> Path | None:
    """The run folder under ``root`` with the newest complete checkpoint, if any."""
    best: tuple[float, Path] | None = None
    if not root.is_dir():
        return None
    for run in root.iterdir():
        found = list_checkpoints(run) if run.is_dir() else []
        if found:
            mtime = found[-1].path.stat().st_mtime
            if best is None or mtime > best[0]:
                best = (mtime, run)
    return best[1] if best else None
