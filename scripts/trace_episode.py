"""Print what a greedy agent does, step by step, over part of one evaluation episode: x, the
height on screen, whether Mario stands, jumps or falls, whether the A button was already held
from the previous step (then pressing it again does not jump: the game starts a jump only on a
fresh press), the chosen action and the network's values. For finding out why an agent stops
where it does (docs/BENCHMARKS.md, "Why the greedy agent stops"). ``y`` is Mario's height in
pixels above the screen's bottom edge (64: standing on the ground).

    python scripts/trace_episode.py runs/clear-b --seed 1002 --from-x 2100 --steps 40
    python scripts/trace_episode.py --pretrained 1-1 --seed 1000 --from-x 2300

The RAM read here (player state, height) is for this printout only; agents see pixels.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from mario.algos.base import ActionValues
from mario.config import EVAL_SEED
from mario.game.env import action_label, action_set
from mario.playing.agents import load_agent, load_pretrained
from mario.playing.episodes import play_episode
from mario.storage.checkpoints import CheckpointError

# Super Mario Bros. RAM: the player's "float" state and vertical screen position
FLOAT_STATE = 0x001D
Y_ON_SCREEN = 0x00CE
STATES = {0: "ground", 1: "jump", 2: "fall", 3: "flagpole"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("checkpoint", nargs="?", help="run folder or checkpoint")
    source.add_argument("--pretrained", help="a shipped agent's name, e.g. 1-1")
    parser.add_argument("--stage", help="default: the agent's first training stage")
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--from-x", type=int, default=0, help="start printing at this x_pos")
    parser.add_argument("--steps", type=int, default=60, help="how many steps to print")
    args = parser.parse_args()
    try:
        trace(args)
    except (CheckpointError, ValueError) as error:  # bad input, as `mario eval` reports it
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(2) from None


def trace(args: argparse.Namespace) -> None:
    """Play the episode and print the steps from ``args.from_x`` on."""
    if args.pretrained:
        agent = load_pretrained(args.pretrained, device="cpu")
    else:
        agent = load_agent(args.checkpoint, device="cpu")
    cfg = agent.config
    stage = args.stage or cfg.run.stage_list()[0]
    buttons = action_set(cfg.env.actions)
    labels = [action_label(b) for b in buttons]
    rows: list[str] = []
    held = False  # A was in the previous step's buttons

    def on_step(
        step: int, action: int, seen: ActionValues | None, info: dict[str, Any], game: Any
    ) -> None:
        nonlocal held
        if int(info["x_pos"]) >= args.from_x and len(rows) < args.steps:
            shown = "" if seen is None else " ".join(f"{v:6.1f}" for v in np.asarray(seen.values))
            state = STATES.get(int(game.ram[FLOAT_STATE]), "?")
            rows.append(
                f"{step:5d} {int(info['x_pos']):5d} {240 - int(game.ram[Y_ON_SCREEN]):4d} "
                f"{state:>8} {'yes' if held else '':>6}  {labels[action]:<10} {shown}"
            )
        held = "A" in buttons[action]

    episode = play_episode(agent, stage, seed=args.seed, max_steps=args.max_steps, on_step=on_step)
    ending = f"{episode.steps} steps, x_pos {episode.x_pos}, flag {episode.flag}"
    print(f"{stage} seed {args.seed}: {ending}")
    header = f"{'step':>5} {'x':>5} {'y':>4} {'state':>8} {'A held':>6}  {'action':<10}"
    print(header, " ".join(labels))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
