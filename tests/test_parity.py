"""Our env has the game semantics of the stock gym-super-mario-bros 7.4.0, on either backend.

``tests/fixtures/parity.json.gz`` records, frame by frame, what the STOCK library does on
NumPy 1 (``scripts/record_parity_fixture.py``, which says how to re-record it): reward, done,
info and a CRC-32 of the screen for fixed action sequences covering a level clear, deaths,
Mario moving left, a jump above the top of the screen, stages other than 1-1, the full
game until game over, and all three action sets. Here the same actions go through
``mario.make_env`` with the raw pipeline (one NES frame per step, full-colour screen) and
every step must match exactly. The same test runs on both backends (``mario.game.backends``):
nes-py 8.2.1 below Python 3.13, nes-py 9.0.1 from 3.13 (CI's Python 3.13 leg).

``tests/fixtures/upstream_reward.json.gz`` records the stock gym-super-mario-bros 9.1.0's own
reward on the same actions (``scripts/record_upstream_reward_fixture.py``); our port of it,
``reward="upstream"``, must match it on both backends too.
"""

from __future__ import annotations

import functools
import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mario
from mario.game import backends

FIXTURE = Path(__file__).parent / "fixtures" / "parity.json.gz"
UPSTREAM_FIXTURE = Path(__file__).parent / "fixtures" / "upstream_reward.json.gz"
INFO_KEYS = ("x_pos", "y_pos", "time", "life", "score", "coins", "status", "flag_get", "world",
             "stage")  # fmt: skip


@functools.cache
def fixture() -> dict[str, Any]:
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


@functools.cache
def upstream_fixture() -> dict[str, Any]:
    return json.loads(gzip.decompress(UPSTREAM_FIXTURE.read_bytes()))


def scenario(name: str) -> dict[str, Any]:
    return next(s for s in fixture()["scenarios"] if s["name"] == name)


def scenario_names() -> list[str]:
    return [s["name"] for s in fixture()["scenarios"]]


def crc(screen: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(screen).tobytes())


def plain(value: Any) -> Any:
    """NumPy scalars → plain Python values; bools stay bools (so 0 != False below)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    return value


def typed(value: Any) -> tuple[str, Any]:
    """Compare type and value: ``True == 1`` must not pass for a bool field."""
    value = plain(value)
    return type(value).__name__, value


def raw_env(stage: str, actions: str, reward: str = "classic") -> Any:
    return mario.make_env(
        stage,
        actions=actions,
        frame_skip=1,
        grayscale=False,
        resize=None,
        stack=1,
        reward=reward,
    )


def test_backend_is_the_one_this_python_installs() -> None:
    """pyproject.toml's markers: 9.x from Python 3.13, the classic libraries below it (so
    CI's two legs really test both backends)."""
    expected = "upstream" if sys.version_info >= (3, 13) else "classic"
    assert expected == backends.NAME, backends.describe()
    major = 9 if expected == "upstream" else 8
    assert backends.versions()["nes-py"].startswith(f"{major}.")


def test_fixture_covers_what_it_claims() -> None:
    """The recording really contains the cases the parity tests are meant to pin down."""
    fx = fixture()
    assert fx["versions"]["gym-super-mario-bros"] == "7.4.0"
    assert fx["versions"]["nes-py"] == "8.2.1"
    assert fx["versions"]["numpy"].startswith("1.")
    scenarios = fx["scenarios"]
    assert {s["actions"] for s in scenarios} == {"right_only", "simple", "complex"}
    assert {s["stage"] for s in scenarios} >= {"1-1", "1-2", "4-1", "8-4", "all"}
    single = [s for s in scenarios if s["stage"] != "all"]
    assert any(s["steps"]["done"][-1] and s["steps"]["flag_get"][-1] for s in single)
    assert any(s["steps"]["done"][-1] and not s["steps"]["flag_get"][-1] for s in single)
    assert sum(s["coverage"]["x_decreasing_steps"] for s in scenarios) > 100
    assert any(s["coverage"]["above_viewport_steps"] > 0 for s in scenarios)
    full = scenario("all_right_only")["steps"]
    assert full["life"][0] == 2 and full["life"][-1] == 255 and full["done"][-1]
    assert not any(full["done"][:-1]) and any(full["flag_get"])
    for s in scenarios:
        steps = s["steps"]
        n = len(s["action_indices"])
        assert all(len(column) == n for column in steps.values()), s["name"]
        assert not any(steps["done"][:-1]), f"{s['name']}: done before the last step"


@pytest.mark.parametrize("name", scenario_names())
def test_matches_stock_step_by_step(name: str) -> None:
    rec = scenario(name)
    steps = rec["steps"]
    env = raw_env(rec["stage"], rec["actions"])
    screen, info = env.reset()
    assert screen.shape == (240, 256, 3) and screen.dtype == np.uint8
    assert crc(screen) == rec["reset_crc"], f"{name}: reset screen differs from stock"
    reset_diff = {
        key: (plain(info.get(key)), stock)
        for key, stock in rec["reset_info"].items()
        if typed(info.get(key)) != typed(stock)
    }
    assert not reset_diff, f"{name}: reset info (ours, stock): {reset_diff}"

    for i, action in enumerate(rec["action_indices"]):
        screen, reward, terminated, truncated, info = env.step(action)
        ours = {
            "reward": plain(reward),
            "terminated": terminated,
            "truncated": truncated,
            "crc": crc(screen),
            **{key: plain(info.get(key)) for key in INFO_KEYS},
        }
        stock = {
            "reward": steps["reward"][i],
            "terminated": steps["done"][i],
            "truncated": False,
            "crc": steps["crc"][i],
            **{key: steps[key][i] for key in INFO_KEYS},
        }
        # rewards are compared as numbers (stock returns int -15/15 when it clips)
        diff = {
            field: (ours[field], stock[field])
            for field in stock
            if (
                ours[field] != stock[field]
                if field == "reward"
                else typed(ours[field]) != typed(stock[field])
            )
        }
        assert not diff, (
            f"{name} ({rec['stage']}, {rec['actions']}, {backends.describe()}) step {i} "
            f"action {action}: "
            f"field: (ours, stock) {diff}; "
            f"previous stock x_pos/y_pos/time: "
            + (
                f"{steps['x_pos'][i - 1]}/{steps['y_pos'][i - 1]}/{steps['time'][i - 1]}"
                if i
                else "reset"
            )
        )
    env.close()


def test_render_is_full_colour_stock_screen_under_default_pipeline() -> None:
    """frame_skip=4 + grayscale + resize + stack: render() is still the stock colour frame."""
    rec = scenario("1-1_frameskip4_simple")
    actions, crcs = rec["action_indices"], rec["steps"]["crc"]
    assert len(actions) % 4 == 0
    piped = mario.make_env(rec["stage"], actions=rec["actions"])
    raw = raw_env(rec["stage"], rec["actions"])
    obs, _ = piped.reset()
    frame, _ = raw.reset()
    assert obs.shape == (4, 84, 84)
    shown = piped.render()
    assert shown.shape == (240, 256, 3) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown, frame)
    assert crc(shown) == rec["reset_crc"]
    for k in range(len(actions) // 4):
        group = actions[4 * k : 4 * k + 4]
        assert len(set(group)) == 1, f"fixture frames {4 * k}..{4 * k + 3} mix actions"
        obs, reward, terminated, truncated, _ = piped.step(group[0])
        raw_reward = 0.0
        for _ in range(4):
            frame, r, *_ = raw.step(group[0])
            raw_reward += float(r)
        shown = piped.render()
        assert shown.shape == (240, 256, 3), f"agent step {k}: render shape {shown.shape}"
        np.testing.assert_array_equal(shown, frame, err_msg=f"agent step {k}: render != raw")
        assert crc(shown) == crcs[4 * k + 3], f"agent step {k}: render != stock frame"
        assert float(reward) == raw_reward == sum(rec["steps"]["reward"][4 * k : 4 * k + 4])
        assert obs.shape == (4, 84, 84) and not terminated and not truncated
    piped.close()
    raw.close()


def test_upstream_fixture_covers_what_it_claims() -> None:
    fx = upstream_fixture()
    assert fx["versions"]["gym-super-mario-bros"].startswith("9.")
    assert [s["name"] for s in fx["scenarios"]] == scenario_names()
    seen = {key for s in fx["scenarios"] for c in s["components"] for key, v in c.items() if v}
    assert seen >= {"progress", "time", "score", "coins", "completion", "death"}


@pytest.mark.parametrize("name", scenario_names())
def test_upstream_reward_matches_9x_step_by_step(name: str) -> None:
    """``reward="upstream"`` is gym-super-mario-bros 9.1.0's reward, to the last bit, with
    its ``reward_components``; termination is the same as with the classic reward."""
    rec = scenario(name)
    stock = next(s for s in upstream_fixture()["scenarios"] if s["name"] == name)
    assert len(stock["reward"]) == len(rec["action_indices"]), "9.x ended at another step"
    env = raw_env(rec["stage"], rec["actions"], reward="upstream")
    _, info = env.reset()
    assert set(info["reward_components"].values()) == {0.0}
    for i, action in enumerate(rec["action_indices"]):
        _, reward, terminated, _, info = env.step(action)
        ours = (float(reward), terminated, info["reward_components"])
        theirs = (stock["reward"][i], stock["terminated"][i], stock["components"][i])
        assert ours == theirs, f"{name} step {i} ({backends.describe()}): {ours} != {theirs}"
    env.close()
