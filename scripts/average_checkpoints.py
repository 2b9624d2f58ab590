"""Average checkpoints' agents into one checkpoint: the mean of the weights each plays.

    python scripts/average_checkpoints.py OUT_RUN CHECKPOINT CHECKPOINT [CHECKPOINT ...]

Writes ``OUT_RUN/checkpoints/step-N`` (N: the newest input's step), a copy of the newest
input whose agent (``acting``) plays the mean of the inputs' acting weights; ``mario eval
OUT_RUN`` then plays it. For a DQN run's checkpoints ``policy_average_every`` steps apart this
is exactly the agent ``--policy-average`` plays at the newest of them (a checkpoint holds the
weights it keeps), so the option can be measured on runs trained without it: what a run
learns does not depend on the option. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mario.algos.dqn.algorithm import mean_weights
from mario.errors import first_line
from mario.storage.checkpoints import (
    CheckpointError,
    acting_state,
    load_checkpoint,
    save_checkpoint,
    upgrade_state,
)

MAX_INPUTS = 64


def average(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest (last) DQN training state, its agent playing the mean of every state's
    acting weights (the online head's where a run keeps no average apart)."""
    sets = []
    for state in states:
        weights = acting_state(state["algorithm"])
        sets.append({k: v for k, v in weights.items() if k.startswith("online.")})
    names = set(sets[0])
    if any(set(w) != names for w in sets) or any(
        w[k].shape != sets[0][k].shape for w in sets for k in names
    ):
        raise ValueError("the checkpoints hold different networks: average one run's only")
    acting = {k: v.to(sets[-1][k].dtype) for k, v in sorted(mean_weights(sets).items())}
    newest = states[-1]
    return {**newest, "algorithm": {**newest["algorithm"], "acting": acting}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the run folder to write (must not exist)")
    parser.add_argument(
        "checkpoints", type=Path, nargs="+", help="checkpoint folders, oldest first"
    )
    args = parser.parse_args()
    try:
        if not 2 <= len(args.checkpoints) <= MAX_INPUTS:
            raise ValueError(f"give 2 to {MAX_INPUTS} checkpoints, got {len(args.checkpoints)}")
        if args.out.exists():
            raise ValueError(f"{args.out} exists: name a new run folder")
        loaded = []
        for path in args.checkpoints:
            state, info, _ = load_checkpoint(path)
            loaded.append((info, upgrade_state(state, info.state_path)))
        algos = sorted({str(state["algo"]) for _, state in loaded})
        if algos != ["dqn"]:
            raise ValueError(f"only DQN checkpoints average, got {', '.join(algos)}")
        newest, state = loaded[-1]
        merged = average([state for _, state in loaded])
    except (CheckpointError, ValueError, KeyError) as error:
        print(f"average_checkpoints: {first_line(error)}", file=sys.stderr)
        return 2
    meta = newest.manifest.get("meta", {})
    written = save_checkpoint(args.out, newest.step, merged, meta=meta)
    steps = ", ".join(str(info.step) for info, _ in loaded)
    print(f"wrote {written.path}: the mean of the agents at steps {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
