"""Record gym-super-mario-bros 9.1.0's own reward, for tests/test_parity.py's upstream test.

``mario.game.rules`` ports 9.x's reward (``reward="upstream"``) so that it runs on both backends.
This script drives the STOCK 9.1.0 env (its ``SuperMarioBrosEnv`` + ``JoypadSpace``, the
library's own reward code) through the same actions as ``tests/fixtures/parity.json.gz``
and writes every step's reward, ``reward_components`` and ``terminated`` to
``tests/fixtures/upstream_reward.json.gz``; the test replays them through ``mario.make_env(
..., reward="upstream")`` on whichever backend is installed.

Re-run with the Python 3.13 venv (nes-py 9 only installs there), from the repository root::

    .venv-py313/bin/python scripts/record_upstream_reward_fixture.py

Deterministic (the emulator is; the file is written with sorted keys and gzip mtime 0).
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
from nes_py.wrappers import JoypadSpace

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ACTION_SETS = {"right_only": RIGHT_ONLY, "simple": SIMPLE_MOVEMENT, "complex": COMPLEX_MOVEMENT}


def target_of(stage: str) -> tuple[int, int] | None:
    if stage == "all":
        return None
    world, level = stage.split("-")
    return int(world), int(level)


def record(scenario: dict[str, Any]) -> dict[str, Any]:
    env = JoypadSpace(
        SuperMarioBrosEnv(target=target_of(scenario["stage"])), ACTION_SETS[scenario["actions"]]
    )
    env.reset()
    columns: dict[str, list[Any]] = {"reward": [], "terminated": [], "components": []}
    for action in scenario["action_indices"]:
        _, reward, terminated, truncated, info = env.step(action)
        columns["reward"].append(float(reward))
        columns["terminated"].append(bool(terminated))
        columns["components"].append(info["reward_components"])
        if terminated or truncated:
            break
    env.close()
    return {"name": scenario["name"], **columns}


def main() -> None:
    parity = json.loads(gzip.decompress((FIXTURES / "parity.json.gz").read_bytes()))
    records = [record(s) for s in parity["scenarios"]]
    fixture = {
        "about": "stock gym-super-mario-bros 9.x reward on the parity fixture's actions, see "
        "scripts/record_upstream_reward_fixture.py; one step = one NES frame",
        "versions": {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("numpy", "nes-py", "gym-super-mario-bros", "gymnasium")
        },
        "python": sys.version.split()[0],
        "scenarios": records,
    }
    out = FIXTURES / "upstream_reward.json.gz"
    data = json.dumps(fixture, sort_keys=True, separators=(",", ":")).encode()
    out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    steps = sum(len(r["reward"]) for r in records)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(records)} scenarios, {steps} steps)")


if __name__ == "__main__":
    main()
