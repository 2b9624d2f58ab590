"""Tests of mario.storage.checkpoints: atomic save, verified load, fallback, pruning, kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from mario.storage.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    RunDirError,
    check_writable,
    list_checkpoints,
    load_checkpoint,
    mark_best,
    package_versions,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(step: int) -> dict:
    return {
        "step": step,
        "model": {"conv.weight": torch.full((8, 4, 3, 3), float(step)), "fc.bias": torch.ones(5)},
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]},
        "epsilon": 0.5,
        "name": f"run-{step}",
        "history": [1, 2.5, "x", None, (3, 4)],
        "flag": True,
    }


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _steps(run: Path) -> list[int]:
    return [i.step for i in list_checkpoints(run)]


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    state = _state(50_000)
    state["rng"] = rng_state()
    info = save_checkpoint(tmp_path, 50_000, state)

    assert info.path == tmp_path / "checkpoints" / "step-000050000"
    assert sorted(p.name for p in info.path.iterdir()) == ["MANIFEST.json", "state.pt"]
    manifest = json.loads((info.path / "MANIFEST.json").read_text())
    assert manifest == info.manifest
    assert manifest["step"] == 50_000
    assert manifest["format_version"] == FORMAT_VERSION
    assert datetime.fromisoformat(manifest["created"]).tzinfo is not None
    (entry,) = manifest["files"]
    assert entry["path"] == "state.pt"
    assert entry["size"] == (info.path / "state.pt").stat().st_size
    assert len(entry["sha256"]) == 64
    assert manifest["versions"]["torch"] == torch.__version__

    loaded, linfo, warnings = load_checkpoint(tmp_path)
    assert warnings == []
    assert linfo.step == 50_000 and linfo.path == info.path
    assert torch.equal(loaded["model"]["conv.weight"], state["model"]["conv.weight"])
    assert loaded["optimizer"]["state"][0]["exp_avg"].shape == (3,)
    assert loaded["history"] == [1, 2.5, "x", None, (3, 4)]
    assert (loaded["epsilon"], loaded["name"], loaded["flag"]) == (0.5, "run-50000", True)

    # weights_only loading of the file itself, rng state included
    direct = torch.load(info.path / "state.pt", weights_only=True, map_location="cpu")
    assert torch.equal(direct["rng"]["torch"], state["rng"]["torch"])
    assert direct["rng"]["python"]["state"] == state["rng"]["python"]["state"]


def test_resolve_accepts_run_checkpoint_dir_and_state_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, _state(1))
    newest = save_checkpoint(tmp_path, 2, _state(2))
    assert resolve_checkpoint(tmp_path).step == 2
    assert resolve_checkpoint(tmp_path / "checkpoints").step == 2
    assert resolve_checkpoint(newest.path).path == newest.path
    assert resolve_checkpoint(newest.path / "state.pt").path == newest.path
    older = tmp_path / "checkpoints" / "step-000000001"
    state, info, _ = load_checkpoint(older / "state.pt")
    assert (state["step"], info.step) == (1, 1)

    with pytest.raises(CheckpointError, match="no such run folder or checkpoint"):
        resolve_checkpoint(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(empty, fallback=True)


def test_save_rejects_what_weights_only_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"state\['extra'\]\['arr'\].*numpy"):
        save_checkpoint(tmp_path, 1, {"extra": {"arr": np.zeros(3)}})
    with pytest.raises(ValueError, match="step must be"):
        save_checkpoint(tmp_path, -1, {})
    with pytest.raises(ValueError, match="keep_last"):
        save_checkpoint(tmp_path, 1, {}, keep_last=0)
    assert not (tmp_path / "checkpoints").exists()  # checked before anything is written


def test_failed_replay_callback_leaves_nothing(tmp_path: Path) -> None:
    def broken(folder: Path) -> None:
        (folder / "part.bin").write_bytes(b"x" * 100)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 1, _state(1), write_replay=broken)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "word"), [(_truncate, "truncated"), (_flip, "corrupt")])
def test_corrupt_newest_falls_back_with_warning(tmp_path: Path, damage, word: str) -> None:
    save_checkpoint(tmp_path, 10, _state(10))
    newest = save_checkpoint(tmp_path, 20, _state(20))
    bad = newest.path / "state.pt"
    damage(bad)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    assert str(bad) in str(err.value) and word in str(err.value)
    with pytest.raises(CheckpointError, match=word):
        load_checkpoint(newest.path, fallback=True)  # a checkpoint dir has nothing to fall to

    state, info, warnings = load_checkpoint(tmp_path, fallback=True)
    assert (info.step, state["step"]) == (10, 10)
    assert len(warnings) == 1 and str(bad) in warnings[0] and "\n" not in warnings[0]
    # a finished save stays listed; verify=True drops the damaged one
    assert _steps(tmp_path) == [10, 20]
    assert [i.step for i in list_checkpoints(tmp_path, verify=True)] == [10]


def test_unloadable_state_and_format_version_are_incompatible(tmp_path: Path) -> None:
    info = save_checkpoint(tmp_path, 1, _state(1))
    manifest = json.loads((info.path / "MANIFEST.json").read_text())
    manifest["format_version"] = 999
    (info.path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="incompatible checkpoint format_version 999"):
        load_checkpoint(tmp_path)

    # A state.pt that matches its manifest but holds a pickled object weights_only rejects.
    info = save_checkpoint(tmp_path, 2, _state(2))
    torch.save({"obj": datetime(2020, 1, 1)}, info.path / "state.pt")
    manifest = json.loads((info.path / "MANIFEST.json").read_text())
    data = (info.path / "state.pt").read_bytes()
    import hashlib

    manifest["files"][0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (info.path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"state\.pt: incompatible or corrupt"):
        load_checkpoint(tmp_path)


def test_tmp_and_manifestless_dirs_are_ignored_and_cleaned(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 5, _state(5))
    ckpts = tmp_path / "checkpoints"
    dead = _dead_pid()
    stale = ckpts / f".tmp-step-000000009-{dead}"
    stale.mkdir()
    torch.save(_state(9), stale / "state.pt")
    (stale / "MANIFEST.json").write_text("{}")
    half = ckpts / "step-000000007"  # no manifest: its save never finished
    half.mkdir()
    torch.save(_state(7), half / "state.pt")
    wrong = ckpts / "step-000000008"  # manifest of another step
    wrong.mkdir()
    (wrong / "MANIFEST.json").write_text((ckpts / "step-000000005" / "MANIFEST.json").read_text())

    assert _steps(tmp_path) == [5]
    assert resolve_checkpoint(tmp_path).step == 5
    with pytest.raises(CheckpointError, match="did not finish"):
        resolve_checkpoint(half)

    save_checkpoint(tmp_path, 6, _state(6))
    assert not stale.exists()
    assert half.exists()  # not ours to delete: it may be a user's copy
    assert _steps(tmp_path) == [5, 6]


def test_pruning_keeps_last_k_and_best_and_strips_old_replays(tmp_path: Path) -> None:
    def replay(step: int):
        def write(folder: Path) -> None:
            (folder / "storage").mkdir()
            (folder / "storage" / "obs.bin").write_bytes(bytes([step]) * 1000)
            (folder / "meta.json").write_text(json.dumps({"step": step}))

        return write

    for step in range(1, 7):
        info = save_checkpoint(
            tmp_path, step, _state(step), write_replay=replay(step), keep_last=2, is_best=step == 2
        )
        if step == 3:
            mark_best(tmp_path, info, metric=1234.5)
    best = json.loads((tmp_path / "best.json").read_text())
    assert (best["step"], best["metric"]) == (3, 1234.5)
    assert best["path"] == os.path.join("checkpoints", "step-000000003")

    infos = list_checkpoints(tmp_path, verify=True)
    assert [i.step for i in infos] == [3, 5, 6]
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "step-000000003",
        "step-000000005",
        "step-000000006",
    ]
    newest = infos[-1]
    assert newest.replay_path is not None
    assert (newest.replay_path / "storage" / "obs.bin").read_bytes() == bytes([6]) * 1000
    assert {e["path"] for e in newest.manifest["files"]} == {
        "state.pt",
        "replay/meta.json",
        "replay/storage/obs.bin",
    }
    for old in infos[:-1]:
        assert old.replay_path is None and not (old.path / "replay").exists()
        assert [e["path"] for e in old.manifest["files"]] == ["state.pt"]
        assert old.manifest["replay_pruned"] is True
        assert load_checkpoint(old.path)[0]["step"] == old.step

    save_checkpoint(tmp_path, 7, _state(7), keep_last=1, keep_replay_last=0)
    assert _steps(tmp_path) == [3, 7]
    assert list_checkpoints(tmp_path)[-1].replay_path is None


def test_same_step_is_replaced_atomically(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 100, _state(100))
    replaced = _state(100)
    replaced["name"] = "final"
    save_checkpoint(tmp_path, 100, replaced)
    state, info, _ = load_checkpoint(tmp_path)
    assert (info.step, state["name"]) == (100, "final")
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000000100"]


def test_crash_between_renames_keeps_the_old_copy(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, _state(1))
    info = save_checkpoint(tmp_path, 2, _state(2))
    # What a kill between "rename old aside" and "rename new in" leaves behind:
    aside = info.path.with_name(f".old-step-000000002-{_dead_pid()}")
    os.rename(info.path, aside)
    state, linfo, _ = load_checkpoint(tmp_path)
    assert (state["step"], linfo.path) == (2, aside)

    save_checkpoint(tmp_path, 3, _state(3))
    assert _steps(tmp_path) == [1, 2, 3]
    assert info.path.is_dir() and not aside.exists()


def test_check_writable(tmp_path: Path) -> None:
    run = tmp_path / "a" / "b"
    check_writable(run)
    assert run.is_dir() and list(run.iterdir()) == []

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match=f"run folder {blocker / 'run'}: cannot create") as e:
        check_writable(blocker / "run")
    assert "\n" not in str(e.value)
    with pytest.raises(RunDirError, match="not a folder"):
        check_writable(blocker)
    assert issubclass(RunDirError, CheckpointError)


def test_rng_state_round_trip_through_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached second gaussian in both generators
    np.random.standard_normal()
    save_checkpoint(tmp_path, 1, {"rng": rng_state()})

    def draw() -> tuple:
        return (
            [random.random() for _ in range(3)],
            random.gauss(0, 1),
            np.random.standard_normal(),
            np.random.randint(0, 1 << 30, size=4).tolist(),
            torch.rand(4).tolist(),
        )

    first = draw()
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert draw() != first
    state, _, _ = load_checkpoint(tmp_path)
    set_rng_state(state["rng"])
    assert draw() == first
    with pytest.raises(ValueError, match="rng state is malformed"):
        set_rng_state({"python": {}})


def test_package_versions() -> None:
    versions = package_versions()
    expected = {"python", "torch", "numpy", "gymnasium"}
    expected |= {"nes-py", "gym-super-mario-bros", "mario", "wandb", "game_backend"}
    assert set(versions) == expected
    assert versions["numpy"] == np.__version__
    assert versions["game_backend"] in ("classic", "upstream")
    assert all(isinstance(v, str) and v for v in versions.values())


_WRITER = r"""
import sys
from pathlib import Path
import torch
from mario.storage.checkpoints import save_checkpoint

run, step = Path(sys.argv[1]), int(sys.argv[2])
big = torch.empty(12_500_000, dtype=torch.float32)  # 50 MB
while True:
    big.fill_(float(step))
    def replay(folder, step=step):
        (folder / "chunk.bin").write_bytes(bytes([step % 256]) * 4_000_000)
    state = {"step": step, "big": big, "meta": {"step": step, "tag": f"s{step}"}}
    save_checkpoint(run, step, state, write_replay=replay, keep_last=2)
    if step % 3 == 0:  # also exercise the same-step replacement
        save_checkpoint(run, step, state, write_replay=replay, keep_last=2)
    print(step, flush=True)
    step += 1
"""


@pytest.mark.slow
def test_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    rnd = random.Random(1234)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    next_step = 0
    timings = []
    mid_save = 0  # kills that left a half-written checkpoint behind
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(run), str(next_step)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # one checkpoint is complete
            assert first.strip().isdigit(), f"writer failed: {first!r}"
            t0 = time.perf_counter()
            time.sleep(rnd.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        timings.append(time.perf_counter() - t0)
        assert proc.returncode == -signal.SIGKILL
        left = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
        mid_save += bool(left)

        state, info, warnings = load_checkpoint(run)  # no fallback: the newest must be whole
        assert warnings == []
        assert state["step"] == info.step == state["meta"]["step"] >= next_step
        assert state["big"].numel() == 12_500_000
        assert bool((state["big"] == float(info.step)).all())
        assert info.replay_path is not None
        chunk = (info.replay_path / "chunk.bin").read_bytes()
        assert chunk == bytes([info.step % 256]) * 4_000_000
        assert len(list_checkpoints(run, verify=True)) == len(list_checkpoints(run))
        next_step = info.step + 1  # resume like the trainer would

    # the next save cleans what the kills left behind
    save_checkpoint(run, next_step, {"step": next_step}, keep_last=2)
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    # Saves run back to back, so most kills land inside one; if none did, the test proved
    # nothing (and the writer is suspiciously fast or slow).
    assert mid_save >= 1, f"no kill interrupted a save (waited {timings})"
