"""Ship a checkpoint's agent inside the package (mario/playing/pretrained/NAME.pt).

    python scripts/export_pretrained.py RUN_OR_CHECKPOINT NAME --command "mario train ..." \
        --minutes 58 --eval docs/pretrained-1-1-eval.json

Writes the acting weights (float16), the config and the provenance (the command that trained
it, its seed, the minutes it took, the checkpoint's step, the evaluation summary), then loads
the result back the way ``mario replay --pretrained NAME`` does and checks that it plays the
same actions as the checkpoint on a few real observations.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mario.game.env import make_env
from mario.playing.agents import load_agent, load_pretrained
from mario.playing.pretrained import _HERE, export
from mario.storage.checkpoints import load_checkpoint, upgrade_state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock of the run")
    parser.add_argument("--machine", default="2-core AMD EPYC (the development machine)")
    parser.add_argument("--eval", type=Path, help="a `mario eval --json` report to attach")
    args = parser.parse_args()
    state, info, _ = load_checkpoint(args.checkpoint, fallback=True)
    state = upgrade_state(state, info.state_path)
    provenance = {
        "command": args.command,
        "seed": state["config"]["seed"],
        "minutes": args.minutes,
        "machine": args.machine,
        "checkpoint": str(info.path),
        "step": state["counters"]["step"],
    }
    if args.eval:
        report = json.loads(args.eval.read_text())
        provenance["eval"] = {
            stage: {k: v for k, v in summary.items() if k != "runs"}
            for stage, summary in report["stages"].items()
        }
    out = export(state, provenance, _HERE / f"{args.name}.pt")
    shipped, original = (
        load_pretrained(args.name, device="cpu"),
        load_agent(info.path, device="cpu"),
    )
    env = make_env(state["config"]["stage"], **original.config.env.kwargs())
    obs, _ = env.reset(seed=123)
    same = 0
    for _ in range(200):
        a, b = shipped.act(obs), original.act(obs)
        same += int(a[0] == b[0])
        obs, _, terminated, truncated, _ = env.step(int(b[0]))
        if terminated or truncated:
            obs, _ = env.reset()
    print(
        f"{out}: {out.stat().st_size / 2**20:.1f} MiB; same action as the checkpoint in "
        f"{same}/200 steps (float16 weights)"
    )
    return 0 if same >= 190 else 1


if __name__ == "__main__":
    sys.exit(main())
