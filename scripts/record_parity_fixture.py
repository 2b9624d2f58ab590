"""Record what the STOCK gym-super-mario-bros 7.4.0 does, for tests/test_parity.py.

Our env (``mario.make_env``) must have the same game semantics as the stock library, which
only runs on NumPy 1. This script drives the stock env (on NumPy 1) through fixed scenarios
and writes every step's reward, done flag, info and screen checksum to
``tests/fixtures/parity.json.gz``; the test replays the same actions through our env.

Re-run (from the repository root; the reference lives OUTSIDE the repo's .venv)::

    python3.11 -m venv /work/parity-venv
    /work/parity-venv/bin/pip install "numpy<2" gym-super-mario-bros==7.4.0 nes-py==8.2.1
    /work/parity-venv/bin/python scripts/record_parity_fixture.py

Deterministic: the emulator is deterministic, the "random" scenarios use seeded
``random.Random`` and the file is written with sorted keys and a zero gzip mtime, so a
re-run writes a byte-identical file. The 1-1 flag sequence comes from
``scripts/find_flag_sequence.py`` (seed 0) and is pasted below as ``FLAG_1_1_RLE``.

Uses the stock classes directly (``SuperMarioBrosEnv`` + ``JoypadSpace``), not ``gym.make``,
so gym's env checker does not wrap or alter anything.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import random
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")  # gym 0.26's NumPy-2 notice; NumPy 1 overflow warnings

import numpy as np  # noqa: E402
from gym_super_mario_bros.actions import (  # noqa: E402
    COMPLEX_MOVEMENT,
    RIGHT_ONLY,
    SIMPLE_MOVEMENT,
)
from gym_super_mario_bros.smb_env import SuperMarioBrosEnv  # noqa: E402
from nes_py.wrappers import JoypadSpace  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "parity.json.gz"
ACTION_SETS = {"right_only": RIGHT_ONLY, "simple": SIMPLE_MOVEMENT, "complex": COMPLEX_MOVEMENT}
INFO_KEYS = ("x_pos", "y_pos", "time", "life", "score", "coins", "status", "flag_get", "world",
             "stage")  # fmt: skip

# RIGHT_ONLY indices (0 NOOP, 1 right, 2 right+A, 3 right+B, 4 right+A+B; the same buttons
# in all three action sets), run-length coded: 1-1 from reset to the flag, found by
# `scripts/find_flag_sequence.py --seed 0`.
FLAG_1_1_RLE: list[tuple[int, int]] = [
    (1, 17), (4, 5), (3, 17), (4, 19), (3, 19), (4, 32), (3, 25), (4, 28), (3, 9), (4, 33),
    (3, 23), (4, 29), (3, 5), (4, 13), (3, 3), (4, 32), (1, 14), (4, 19), (3, 12), (4, 17),
    (3, 21), (4, 33), (3, 18), (4, 19), (3, 17), (4, 12), (3, 18), (4, 33), (3, 22), (4, 24),
    (3, 3), (4, 10), (3, 3), (4, 6), (3, 18), (4, 13), (3, 6), (4, 5), (3, 22), (4, 12),
    (3, 3), (4, 25), (1, 8), (4, 33), (3, 15), (1, 11), (4, 4), (3, 2), (4, 7), (1, 24),
    (4, 33), (3, 24), (4, 7), (3, 20), (4, 30), (3, 13), (4, 6), (3, 7), (4, 34), (3, 26),
    (1, 4), (4, 21), (3, 4), (4, 30), (3, 12), (4, 17), (3, 17), (4, 18), (3, 4), (4, 26),
    (3, 34), (4, 19), (1, 22), (4, 9), (3, 22), (4, 12), (3, 23), (4, 4), (3, 3), (4, 14),
    (3, 18), (4, 12), (3, 16), (4, 15), (3, 22), (4, 15), (3, 21), (4, 31), (3, 23), (4, 12),
]  # fmt: skip


def expand(rle: list[tuple[int, int]]) -> list[int]:
    return [a for a, n in rle for _ in range(n)]


def explore(
    stage: str,
    actions: str,
    seed: int,
    n_frames: int,
    weights: dict[int, float],
    hold: tuple[int, int],
    *,
    unit: int = 1,
    prefix: list[int] | None = None,
    retries: int = 12,
) -> list[int]:
    """A seeded random walk that mostly survives: ``n_frames`` actions after ``prefix``.

    Each chunk is one action (drawn with ``weights``) held for a random number of
    ``unit``-frame groups. A chunk that kills Mario is redrawn (the emulator's backup slot
    holds the state before it) up to ``retries`` times; then the death is kept and the walk
    ends there. Deterministic: seeded RNG, deterministic emulator.
    """
    rng = random.Random(seed)
    choices, weight = list(weights), list(weights.values())
    env = JoypadSpace(SuperMarioBrosEnv(target=target_of(stage)), ACTION_SETS[actions])
    env.reset()
    out = list(prefix or [])
    for a in out:
        if env.step(a)[2]:
            raise RuntimeError(f"explore {stage}: prefix ends the episode")
    env.unwrapped._backup()
    tries = 0
    while len(out) < len(prefix or []) + n_frames:
        chunk = [rng.choices(choices, weight)[0]] * (unit * rng.randint(*hold))
        env.reset()  # back to the last accepted state
        done = any(env.step(a)[2] for a in chunk)
        if done and tries < retries:
            tries += 1
            continue
        out += chunk
        if done:
            break
        env.unwrapped._backup()
        tries = 0
    env.close()
    return out[: len(prefix or []) + n_frames]


def scenarios() -> list[dict[str, Any]]:
    """The recorded scenarios: name, stage (our API's string), action set, actions.

    ``until_done``: the actions are a budget; recording stops at the first done.
    ``expect``: what the scenario must show; the recorder checks it (see ``check``).
    """
    flag = expand(FLAG_1_1_RLE)
    # simple: 0 NOOP 1 right 2 right+A 3 right+B 4 right+A+B 5 A 6 left
    simple_w = {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 1, 6: 3}
    left_walk = expand([(3, 70), (0, 10), (6, 90), (0, 15), (5, 25), (6, 40), (1, 30), (6, 30)])
    # complex: 6 left 7 left+A 8 left+B 9 left+A+B 10 down 11 up
    complex_w = {0: 1, 1: 1, 2: 1, 3: 3, 4: 3, 5: 1, 6: 1, 7: 1, 8: 2, 9: 1, 10: 1, 11: 1}
    return [
        # level clear: done and flag_get on the last step
        {"name": "1-1_flag_right_only", "stage": "1-1", "actions": "right_only",
         "sequence": flag, "until_done": False, "expect": ["flag"]},
        # the same run, but a high jump off the top of the final staircase takes Mario above
        # the screen (y_pos = 255 + (255 - y_pixel) > 255) and onto the top of the pole
        {"name": "1-1_high_flag_simple", "stage": "1-1", "actions": "simple",
         "sequence": flag[:1448] + [4] * 40 + [3] * 200, "until_done": True,
         "expect": ["flag", "above_viewport"]},
        # death: run into the first goomba; -25 death penalty clipped to -15
        {"name": "1-1_death_right_only", "stage": "1-1", "actions": "right_only",
         "sequence": [1] * 400, "until_done": True, "expect": ["death"]},
        {"name": "1-1_left_simple", "stage": "1-1", "actions": "simple",
         "sequence": explore("1-1", "simple", 11, 600, simple_w, (2, 30), prefix=left_walk),
         "until_done": True, "expect": ["left"]},
        # actions held for whole groups of 4 frames: the frame_skip=4 render test uses it
        {"name": "1-1_frameskip4_simple", "stage": "1-1", "actions": "simple",
         "sequence": explore("1-1", "simple", 4, 600, simple_w, (1, 8), unit=4),
         "until_done": True, "expect": ["left"]},
        {"name": "1-2_complex", "stage": "1-2", "actions": "complex",
         "sequence": explore("1-2", "complex", 12, 700, complex_w, (2, 30)),
         "until_done": True, "expect": ["left"]},
        {"name": "2-3_right_only", "stage": "2-3", "actions": "right_only",
         "sequence": explore("2-3", "right_only", 23, 400, {0: 1, 1: 1, 2: 2, 3: 2, 4: 3},
                             (4, 30)),
         "until_done": True, "expect": []},
        {"name": "4-1_simple", "stage": "4-1", "actions": "simple",
         "sequence": explore("4-1", "simple", 41, 500, simple_w, (2, 30)),
         "until_done": True, "expect": ["left"]},
        {"name": "8-4_complex", "stage": "8-4", "actions": "complex",
         "sequence": explore("8-4", "complex", 93, 500, complex_w, (2, 30)),
         "until_done": True, "expect": ["left"]},
        # the full game: clear 1-1 (flag_get without done), then run right in 1-2 until
        # every life is lost (done only at game over, life 255)
        {"name": "all_right_only", "stage": "all", "actions": "right_only",
         "sequence": flag + [1] * 3000, "until_done": True,
         "expect": ["flag_no_done", "life_lost", "game_over"]},
    ]  # fmt: skip


def screen_crc(screen: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(screen).tobytes())


def plain(value: Any) -> Any:
    """NumPy scalars → the equal plain Python value (bool stays bool)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected info value {value!r} of type {type(value).__name__}")


def target_of(stage: str) -> tuple[int, int] | None:
    if stage == "all":
        return None
    world, level = stage.split("-")
    return int(world), int(level)


def record(scenario: dict[str, Any]) -> dict[str, Any]:
    env = JoypadSpace(
        SuperMarioBrosEnv(target=target_of(scenario["stage"])), ACTION_SETS[scenario["actions"]]
    )
    screen = env.reset()
    reset_crc = screen_crc(screen)
    reset_info = {k: plain(v) for k, v in env.unwrapped._get_info().items()}
    columns: dict[str, list[Any]] = {k: [] for k in ("reward", "done", "crc", *INFO_KEYS)}
    actions: list[int] = []
    types: dict[str, set[str]] = {}
    for action in scenario["sequence"]:
        screen, reward, done, info = env.step(action)
        actions.append(action)
        columns["reward"].append(float(reward))
        columns["done"].append(bool(done))
        columns["crc"].append(screen_crc(screen))
        if set(info) != set(INFO_KEYS):
            raise RuntimeError(f"stock info keys changed: {sorted(info)}")
        for key in INFO_KEYS:
            columns[key].append(plain(info[key]))
            types.setdefault(key, set()).add(type(info[key]).__name__)
        types.setdefault("reward", set()).add(type(reward).__name__)
        if done:
            break
    env.close()
    if not scenario["until_done"] and len(actions) != len(scenario["sequence"]):
        raise RuntimeError(f"{scenario['name']}: done after {len(actions)} steps, too early")
    return {
        "name": scenario["name"],
        "stage": scenario["stage"],
        "actions": scenario["actions"],
        "action_indices": actions,
        "reset_crc": reset_crc,
        "reset_info": reset_info,
        "steps": columns,
        # the Python/NumPy types the stock env returned (NumPy 1 scalars), for the record
        "stock_types": {k: sorted(v) for k, v in types.items()},
    }


def coverage(rec: dict[str, Any]) -> dict[str, int]:
    """Counts that show what a recorded scenario exercises."""
    s = rec["steps"]
    n = len(s["reward"])
    x, life = s["x_pos"], s["life"]
    return {
        "steps": n,
        "x_decreasing_steps": sum(x[i] < x[i - 1] for i in range(1, n)),
        "negative_reward_steps": sum(r < 0 for r in s["reward"]),
        "clipped_reward_steps": sum(abs(r) == 15 for r in s["reward"]),
        "flag_steps": sum(s["flag_get"]),
        "lives_lost": sum(life[i] != life[i - 1] for i in range(1, n)),
        "above_viewport_steps": sum(y > 255 for y in s["y_pos"]),
        "final_done": int(s["done"][-1]),
        "final_flag": int(s["flag_get"][-1]),
        "final_life": life[-1],
    }


def check(expect: list[str], rec: dict[str, Any], cov: dict[str, int]) -> None:
    """Fail loudly when a scenario no longer shows what it is there for."""
    s = rec["steps"]
    ok = {
        "flag": cov["final_done"] == 1 and cov["final_flag"] == 1,
        "death": cov["final_done"] == 1 and cov["final_flag"] == 0 and s["reward"][-1] < 0,
        "left": cov["x_decreasing_steps"] >= 20,
        "flag_no_done": any(f and not d for f, d in zip(s["flag_get"], s["done"], strict=True)),
        "life_lost": cov["lives_lost"] >= 1,
        "game_over": cov["final_done"] == 1 and cov["final_life"] == 255,
        "above_viewport": cov["above_viewport_steps"] >= 1,
    }
    bad = [e for e in expect if not ok[e]]
    if bad:
        raise RuntimeError(f"{rec['name']}: expected {bad} but coverage is {cov}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args()
    if int(np.__version__.split(".")[0]) >= 2:
        sys.exit(f"run this with the NumPy-1 parity venv (found numpy {np.__version__})")
    start = time.monotonic()
    records = []
    for scenario in scenarios():
        rec = record(scenario)
        cov = coverage(rec)
        check(scenario["expect"], rec, cov)
        rec["coverage"] = cov
        records.append(rec)
        print(f"{rec['name']:24s} {cov}", file=sys.stderr)
    fixture = {
        "format": 1,
        "about": "stock gym-super-mario-bros step-by-step record, see "
        "scripts/record_parity_fixture.py; one step = one NES frame; columns per step",
        "versions": {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("numpy", "nes-py", "gym-super-mario-bros", "gym")
        },
        "python": sys.version.split()[0],
        "info_keys": list(INFO_KEYS),
        "scenarios": records,
    }
    data = json.dumps(fixture, sort_keys=True, separators=(",", ":")).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    total = sum(len(r["action_indices"]) for r in records)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(records)} scenarios, "
        f"{total} steps) in {time.monotonic() - start:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
