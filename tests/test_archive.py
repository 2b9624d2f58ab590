"""Exploration from save states: exact state rebuilds, the cell archive, the wrapper, resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mario.config import build_config
from mario.game.archive import (
    BACK_STEP,
    ArchiveStarts,
    CellArchive,
    merge_by_stage,
    merge_states,
    stage_parts,
)
from mario.game.env import MarioEnv, make_env
from mario.game.rules import SNAPSHOTS
from tests.helpers import run_cli

FIXTURES = Path(__file__).parent / "fixtures"


def _play(env: MarioEnv, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    info: dict = {}
    for _ in range(steps):
        _, _, terminated, _, info = env.step(int(rng.integers(0, env.action_space.n)))
        assert not terminated
    return info


def test_a_prefix_rebuilds_the_exact_state_and_the_real_start_stays() -> None:
    env = MarioEnv("1-1", "right_only", noop_max=30)
    fresh_start, _ = env.reset(seed=5)
    info = _play(env, 150)
    prefix, ram, screen = bytes(env.history), env._nes.ram.copy(), env.render().copy()
    assert len(prefix) >= 150 and info["x_pos"] > 100

    other = MarioEnv("1-1", "right_only", noop_max=30)
    obs, rebuilt = other.reset(options={"start": prefix})
    assert np.array_equal(obs, screen) and np.array_equal(other._nes.ram, ram)
    assert rebuilt["x_pos"] == info["x_pos"] and other.rebuild_frames == len(prefix)
    for action in np.random.default_rng(1).integers(0, 5, 60):  # and it plays on identically
        a, b = env.step(int(action)), other.step(int(action))
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2]:
            break
    other.reset(options={"start": prefix})  # parked: no second replay
    assert other.rebuild_frames == len(prefix)
    obs, start = other.reset(seed=5)  # the real start, untouched by all this
    assert np.array_equal(obs, fresh_start) and start["x_pos"] == 40


def test_cells_keep_the_shortest_prefix_and_deaths_decay() -> None:
    archive = CellArchive(cell_size=64, max_cells=4, backoff=2, decay=0.5)
    assert archive.observe((1, 1, 3, 0), 200, b"\0" * 100)
    assert not archive.observe((1, 1, 3, 0), 210, b"\0" * 120)  # longer: kept the old one
    assert archive.observe((1, 1, 3, 0), 205, b"\0" * 90) and archive.cells[(1, 1, 3, 0)].x == 205
    archive.observe((1, 1, 5, 0), 330, b"\0" * 200)
    archive.record_end((1, 1, 6, 0), died=True)  # a death in a new cell counts at the one before
    state = archive.state_dict()
    assert [c["deaths"] for c in state["cells"]] == [0.0, 1.0]
    archive.record_end((1, 1, 1, 0), died=False)  # every episode end decays the counts
    assert archive.state_dict()["cells"][1]["deaths"] == pytest.approx(0.5)
    for i in range(10, 14):  # bounded: the least deadly, leftmost cells go first
        archive.observe((1, 1, i, 0), 64 * i, b"\0" * 300)
    assert len(archive) == 4 and (1, 1, 5, 0) in archive.cells

    copy = CellArchive(cell_size=64, max_cells=4, backoff=2, decay=0.5)
    copy.load_state_dict(archive.state_dict())
    assert copy.state_dict() == archive.state_dict()


def test_starts_are_chosen_shortly_before_where_episodes_die() -> None:
    archive = CellArchive(cell_size=64, backoff=3, floor=0.05)
    for i in range(1, 40):
        archive.observe((1, 1, i, 0), 64 * i, bytes(i))
    for _ in range(50):
        archive.record_end((1, 1, 28, 0), died=True)
    rng = np.random.default_rng(0)
    chosen = [archive.choose(rng).key[2] for _ in range(1000)]  # type: ignore[union-attr]
    near = np.mean([25 <= i <= 28 for i in chosen])
    assert near > 0.9, near  # the deadly cell or up to 3 before it; a few anywhere
    assert len(set(chosen)) > 4


def test_merging_workers_archives() -> None:
    a, b = CellArchive(), CellArchive()
    a.observe((1, 1, 2, 0), 130, b"\0" * 50)
    b.observe((1, 1, 2, 0), 140, b"\0" * 40)
    b.observe((1, 1, 9, 0), 600, b"\0" * 400)
    a.record_end((1, 1, 2, 0), died=True)
    merged = merge_states([a.state_dict(), b.state_dict()])
    cells = {tuple(c["key"]): c for c in merged["cells"]}
    assert len(cells[(1, 1, 2, 0)]["prefix"]) == 40  # the shortest
    assert cells[(1, 1, 2, 0)]["deaths"] == pytest.approx(0.5)  # the workers' mean
    assert set(cells) == {(1, 1, 2, 0), (1, 1, 9, 0)}


def test_the_wrapper_starts_from_archived_states_and_reports_them() -> None:
    env = make_env("1-1", actions="right_only", seed=3, archive={"share": 1.0, "repeat": 2})
    obs, info = env.reset()
    assert info["from_archive"] is False and info["start_x"] == 0  # nothing archived yet
    rng = np.random.default_rng(0)
    while True:
        obs, _, terminated, truncated, info = env.step(int(rng.integers(0, 5)))
        assert info["from_archive"] is False
        if terminated or truncated:
            break
    archive: CellArchive = env.get_wrapper_attr("archive")
    assert len(archive) >= 3
    # the states were reached in this process: on nes-py 9 they were saved as snapshots
    assert all((c.snapshot is not None) == SNAPSHOTS for c in archive.cells.values())
    starts = []
    for _ in range(2):  # two archived episodes from one cell: one replay (none: a snapshot)
        obs, info = env.reset()
        assert info["from_archive"] is True and info["start_x"] > 40
        assert abs(info["x_pos"] - info["start_x"]) <= 1
        starts.append((info["start_x"], info["rebuild_frames"]))
    assert starts[0] == starts[1] and (starts[0][1] == 0) == SNAPSHOTS
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8


def _flag_run() -> list[int]:
    """Per-frame right_only actions that reach 1-1's flag from the real start (the parity
    fixture's scenario; a test input, never a training one)."""
    fixture = json.loads(gzip.decompress((FIXTURES / "parity.json.gz").read_bytes()))
    scenario = next(s for s in fixture["scenarios"] if s["name"] == "1-1_flag_right_only")
    return [int(a) for a in scenario["action_indices"]]


def test_a_success_is_robustified_from_its_end_backward() -> None:
    actions = _flag_run()
    archive = {"share": 1.0, "repeat": 1, "backward": 1.0}
    env = make_env("1-1", actions="right_only", frame_skip=1, stack=1, seed=0, archive=archive)
    cells: CellArchive = env.get_wrapper_attr("archive")
    _, info = env.reset()
    assert info["backward"] is False and not cells.success and cells.backward_start() is None
    for action in actions:  # the real start to the flag: the first success
        _, _, terminated, _, info = env.step(action)
        if terminated:
            break
    assert info["flag_get"] and len(cells.success) == len(env.unwrapped.history) == len(actions)
    outcomes = []
    for _ in range(5):  # each from BACK_STEP frames before the flag, which it reaches
        _, info = env.reset()
        assert info["backward"] is True and info["from_archive"] is True
        assert len(env.unwrapped.history) == len(actions) - BACK_STEP
        for action in actions[-BACK_STEP:]:
            _, _, terminated, _, info = env.step(action)
        outcomes.append(info["flag_get"] and terminated and info["backward"])
    assert outcomes == [True] * 5
    # 5 of 5 is more than 20% of at least half a window: the start moved back one step
    assert cells.back == 2 * BACK_STEP and info["start_x"] > 3000
    _, info = env.reset()
    assert len(env.unwrapped.history) == len(actions) - 2 * BACK_STEP
    assert info["start_x"] == info["x_pos"] < 3150

    state = cells.state_dict()  # a checkpoint keeps the path and how far back it got
    fresh = CellArchive()
    fresh.load_state_dict(state)
    assert fresh.success == cells.success and fresh.back == 2 * BACK_STEP
    synced = CellArchive()
    synced.load_state_dict(state, counts=False)  # a sync: a process behind catches up
    assert synced.success == cells.success and synced.back == 2 * BACK_STEP
    synced.back = 3 * BACK_STEP
    synced.load_state_dict(state, counts=False)  # ... and one ahead stays where it is
    assert synced.back == 3 * BACK_STEP
    shorter = {**state, "success": state["success"][:-1], "back": BACK_STEP}
    merged = merge_states([state, shorter, {"cell_size": 64, "cells": []}])
    assert len(merged["success"]) == len(actions) - 1 and merged["back"] == 2 * BACK_STEP


def test_the_backward_start_moves_only_on_enough_flags_and_stops_at_the_real_start() -> None:
    archive = CellArchive()
    assert archive.observe_success(b"\1" * 100) and not archive.observe_success(b"\1" * 120)
    for _ in range(9):  # 1 flag in 10 is below 20%
        archive.record_backward(False)
    archive.record_backward(True)
    assert archive.back == BACK_STEP
    archive.record_backward(True)  # 2 of the last 10
    assert archive.back == 2 * BACK_STEP and archive.backward_start() == b"\1" * 20
    for _ in range(5):
        archive.record_backward(True)
    assert archive.back == 100 and archive.backward_done and archive.backward_start() is None


def test_evaluation_never_gets_the_archive_or_the_stall_limit() -> None:
    cfg = build_config({"archive_share": 0.5, "stall_steps": 50})
    assert "archive" not in cfg.env.kwargs() and cfg.env.train_kwargs()["archive"]["share"] == 0.5
    assert "archive" not in build_config({}).env.train_kwargs()
    assert "stall_steps" not in cfg.env.kwargs() and cfg.env.train_kwargs()["stall_steps"] == 50


@pytest.mark.parametrize("stall", [True, False])
def test_a_stall_is_counted_where_it_happened_as_a_death_is(stall: bool) -> None:
    """Standing still until a stall limit ends the episode marks the cell as an obstacle (a
    start target); the same standing ended by the time limit does not."""
    limits = {"stall_steps": 10} if stall else {"max_episode_steps": 22}
    env = make_env("1-1", actions="right_only", seed=3, archive={"share": 0.0}, **limits)
    env.reset()
    for _ in range(12):  # walk right into an archived cell (the real start's is none)
        env.step(1)
    while True:
        *_, terminated, truncated, info = env.step(0)  # NOOP: Mario stands there
        if terminated or truncated:
            break
    assert info.get("stalled", False) is stall and not terminated and info["x_pos"] > 64
    archive: CellArchive = env.get_wrapper_attr("archive")
    deaths = sum(c.deaths for c in archive.cells.values())
    assert (deaths > 0) is stall


@pytest.mark.slow
def test_training_with_the_archive_logs_saves_and_resumes_it(tmp_path: Path, home: Path) -> None:
    # imported here: the Python 3.13 CI leg (no torch) runs this module's env tests
    from mario.storage.checkpoints import load_checkpoint
    from mario.storage.metrics import read_metrics

    run = tmp_path / "run"
    args = [
        "--preset",
        "quickstart",
        "--num-envs",
        "2",
        "--burn-in",
        "200",
        "--max-episode-steps",
        "150",
        "--replay-size",
        "3000",
        "--log-every",
        "200",
        "--checkpoint-every",
        "300",
        "--archive-share",
        "0.5",
        "--archive-backward",
        "0.5",  # no flag in 600 steps: nothing to robustify, the cells as before
        "--archive-cell-y",
        "48",
        "--stall-steps",
        "30",  # random play stands at the first pipes: those episodes end early, marked
        "--wandb-mode",
        "disabled",
        "--run-dir",
        str(run),
    ]
    result = run_cli("train", *args, "--total-steps", "600", home=home)
    assert result.returncode == 0, result.stderr
    train = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"]
    assert all("archive_cells" in m and "archive_episode_share" in m for m in train)
    assert train[-1]["archive_cells"] > 3 and train[-1]["archive_frontier_x"] > 100
    episodes = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "episode"]
    assert any(m.get("from_archive") for m in episodes)
    assert any(not m.get("from_archive") for m in episodes)
    stalled = [m for m in episodes if m.get("stalled")]
    assert stalled and all(30 <= m["length"] < 150 and not m["flag_get"] for m in stalled)
    state, _, _ = load_checkpoint(run)
    saved = state["archive"]
    assert saved["cell_size"] == 64 and len(saved["cells"]) == train[-1]["archive_cells"]
    assert saved["success"] is None and "archive_success_frames" not in train[-1]
    assert saved["cell_height"] == 48 and all(len(c["key"]) == 4 for c in saved["cells"])
    assert all(isinstance(c["prefix"], bytes) for c in saved["cells"])

    resumed = run_cli("train", "--resume", str(run), "--total-steps", "800", home=home)
    assert resumed.returncode == 0, resumed.stderr
    after = [m for m in read_metrics(run / "metrics.jsonl") if m["kind"] == "train"][-1]
    assert after["step"] == 800 and after["archive_cells"] >= len(saved["cells"])
    assert json.loads(run_cli("info", str(run), home=home).stdout)["step"] == 800

    # another cell width on resume: the archive is carried over into the new cells (it was a
    # traceback from an emulator worker, after config.yaml had been rewritten)
    narrower = ["--resume", str(run), "--archive-cell", "32", "--total-steps", "860"]
    result = run_cli("train", *narrower, home=home)
    assert result.returncode == 0, result.stderr
    assert "cells are rebuilt 32 px wide (were 64)" in result.stderr
    state, _, _ = load_checkpoint(run)
    assert state["archive"]["cell_size"] == 32
    assert len(state["archive"]["cells"]) >= len(saved["cells"])


def test_cells_of_another_width_are_rebuilt_by_their_x() -> None:
    """Each cell goes into the cell of its x at the new width with its prefix (the shortest
    wins where two meet); its death and start counts start over."""
    old = CellArchive(cell_size=64)
    old.observe((1, 1, 2, 0), 130, b"\x80" * 50)
    old.observe((1, 1, 3, 0), 200, b"\x80" * 70)
    old.record_end((1, 1, 3, 0), died=True)
    narrow, wide = CellArchive(cell_size=32), CellArchive(cell_size=128)
    narrow.load_state_dict(old.state_dict())
    wide.load_state_dict(old.state_dict())
    assert sorted(narrow.cells) == [(1, 1, 4, 0), (1, 1, 6, 0)]
    assert [len(c.prefix) for _, c in sorted(narrow.cells.items())] == [50, 70]
    assert list(wide.cells) == [(1, 1, 1, 0)] and len(wide.cells[(1, 1, 1, 0)].prefix) == 50
    assert all(c.deaths == 0 and c.starts == 0 for c in [*narrow.cells.values()])


def test_cells_with_a_height_keep_a_walls_top_apart_from_its_foot() -> None:
    archive = CellArchive(cell_size=64, cell_height=32, backoff=1)
    foot = archive.key({"world": 1, "stage": 2, "x_pos": 978, "y_pos": 79})
    top = archive.key({"world": 1, "stage": 2, "x_pos": 990, "y_pos": 143})
    assert foot == (1, 2, 15, 2) and top == (1, 2, 15, 4)  # one column, two rows
    assert archive.observe(foot, 978, b"\0" * 900, y=79)
    assert archive.observe(top, 990, b"\0" * 1200, y=143)  # longer, but another cell
    assert len(archive) == 2 and archive.cells[top].y == 143
    archive.record_end((1, 2, 16, 4), died=True)  # counted at the nearest row of column 15
    assert archive.cells[top].deaths > 0 and archive.cells[foot].deaths == 0
    rng = np.random.default_rng(0)
    assert {archive.choose(rng).key for _ in range(50)} <= {foot, top}  # type: ignore[union-attr]
    # a checkpoint from before rows (3-element keys) loads into row 0, by x alone
    old = {"cell_size": 64, "cells": [{"key": [1, 2, 15], "prefix": b"\0" * 9, "x": 978,
                                       "deaths": 0.0, "starts": 0}]}  # fmt: skip
    by_x = CellArchive(cell_size=64)
    by_x.load_state_dict(old)
    assert list(by_x.cells) == [(1, 2, 15, 0)]
    with_rows = CellArchive(cell_size=64, cell_height=32)  # another geometry: rebuilt by x, y
    with_rows.load_state_dict(archive.state_dict())
    with_rows.load_state_dict(old)
    assert sorted(with_rows.cells) == [(1, 2, 15, 0), foot, top]


def test_a_stride_lengthens_moves_over_easy_stretches_and_shortens_them_at_hard_ones() -> None:
    archive = CellArchive(stride=4 * BACK_STEP)
    archive.observe_success(b"\1" * 1000)
    for _ in range(5):  # 5 of 5: move by BACK_STEP, the next move twice as long
        archive.record_backward(True)
    assert (archive.back, archive.move) == (2 * BACK_STEP, 2 * BACK_STEP)
    for _ in range(5):
        archive.record_backward(True)
    assert (archive.back, archive.move) == (4 * BACK_STEP, 4 * BACK_STEP)
    for _ in range(5):  # never beyond the stride
        archive.record_backward(True)
    assert (archive.back, archive.move) == (8 * BACK_STEP, 4 * BACK_STEP)
    for flag in [True] + [False] * 4:  # 1 of 5 passes (20%) but is not easy: same move
        archive.record_backward(flag)
    assert (archive.back, archive.move) == (12 * BACK_STEP, 4 * BACK_STEP)
    for _ in range(10):  # a full window of failures: the start stays, moves shrink
        archive.record_backward(False)
    assert (archive.back, archive.move) == (12 * BACK_STEP, 2 * BACK_STEP)
    state = archive.state_dict()
    resumed = CellArchive(stride=4 * BACK_STEP)
    resumed.load_state_dict(state)
    assert (resumed.back, resumed.move) == (12 * BACK_STEP, 2 * BACK_STEP)
    assert merge_states([state, CellArchive().state_dict()])["move"] == 2 * BACK_STEP
    fixed = CellArchive()  # the default stride: every move is BACK_STEP
    fixed.observe_success(b"\1" * 1000)
    for _ in range(10):
        fixed.record_backward(True)
    assert (fixed.back, fixed.move) == (3 * BACK_STEP, BACK_STEP)
    with pytest.raises(ValueError, match="stride"):
        CellArchive(stride=BACK_STEP - 1)


def test_archive_options_are_validated(tmp_path: Path, home: Path) -> None:
    result = run_cli("train", "--archive-share", "1.5", "--run-dir", str(tmp_path), home=home)
    assert result.returncode == 2 and "archive_share" in result.stderr
    with pytest.raises(ValueError, match="share"):
        ArchiveStarts(MarioEnv(), share=-0.1)


@pytest.mark.parametrize("settle", [0, 12])
def test_states_that_died_within_settle_steps_are_not_archived(settle: int) -> None:
    env = ArchiveStarts(MarioEnv("1-1", "right_only"), share=0.0, settle=settle)
    _, start = env.reset(seed=0)
    start_key = env.archive.key(start)  # the start's own cell is never archived
    entered = {start_key: 0}  # cell -> the step it was first entered
    rng = np.random.default_rng(4)
    for t in range(1, 5000):
        _, _, terminated, _, info = env.step(int(rng.choice([1, 2, 3, 4])))
        if terminated:
            assert not info["flag_get"]
            break
        entered.setdefault(env.archive.key(info), t)
    survived = {key for key, at in entered.items() if 0 < at < t - settle}
    assert set(env.archive.cells) == (survived if settle else set(entered) - {start_key})
    if settle:  # the states this episode entered shortly before its death are the doomed ones
        assert set(entered) - survived


def test_each_stage_keeps_its_own_archive_and_success() -> None:
    one, two = CellArchive(), CellArchive()
    one.observe((1, 1, 2, 0), 130, b"\1" * 50)
    two.observe((1, 2, 3, 0), 200, b"\2" * 40)
    one.observe_success(b"\1" * 900)
    two.observe_success(b"\2" * 700)  # shorter: one merged archive would give it to 1-1
    parts = merge_by_stage([one.state_dict(), two.state_dict()], ["1-1", "1-2"])
    assert parts["1-1"]["success"] == b"\1" * 900 and parts["1-2"]["success"] == b"\2" * 700
    assert [c["key"][:2] for c in parts["1-1"]["cells"]] == [[1, 1]]
    assert [c["key"][:2] for c in parts["1-2"]["cells"]] == [[1, 2]]
    # a saved one-stage archive, resumed with more stages: it belongs to its cells' stage
    assert stage_parts(two.state_dict(), ["1-1", "1-2"]) == {"1-2": two.state_dict()}
    assert stage_parts({"stages": parts}, ["1-2", "1-3"]) == {"1-2": parts["1-2"]}

    env = ArchiveStarts(MarioEnv("1-2", "right_only"), share=1.0, stage="1-2")
    env.load_archive({"stages": parts}, True)
    assert env.archive.success == b"\2" * 700 and set(env.archive.cells) == {(1, 2, 3, 0)}
    other = ArchiveStarts(MarioEnv("1-3", "right_only"), share=1.0, stage="1-3")
    other.load_archive({"stages": parts}, True)
    assert not other.archive.cells and not other.archive.success
    env.close()
    other.close()
