"""Search an action sequence that takes Mario from the start of 1-1 to the flag (stock env).

Run with the parity virtualenv (stock gym-super-mario-bros 7.4.0 on NumPy 1), see
``scripts/record_parity_fixture.py`` for how to create it::

    /work/parity-venv/bin/python scripts/find_flag_sequence.py [--seed 0] [--budget 180]

Prints the sequence as a run-length list ``[(action, frames), ...]`` of RIGHT_ONLY indices
(0 NOOP, 1 right, 2 right+A, 3 right+B, 4 right+A+B; these indices mean the same buttons in
SIMPLE_MOVEMENT and COMPLEX_MOVEMENT). Paste it into ``FLAG_1_1_RLE`` of the recorder.

The search is a seeded depth-first search over chunks "run k frames, then jump j frames"
(or walk k frames). One emulator backup slot holds the state at the end of the accepted
prefix, so a trial costs only its own frames; backtracking replays the prefix from reset.
Deterministic for a given seed, bounded by ``--budget`` seconds of CPU.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings

warnings.filterwarnings("ignore")  # gym 0.26 prints deprecation notices on import

from gym_super_mario_bros.smb_env import SuperMarioBrosEnv  # noqa: E402

RUN, JUMP, WALK, NOOP = 3, 4, 1, 0
# NES controller bytes of the RIGHT_ONLY indices above (the stock JoypadSpace encoding).
_BYTES = {0: 0b00000000, 1: 0b10000000, 2: 0b10000001, 3: 0b10000010, 4: 0b10000011}

Chunk = list[tuple[int, int]]


def _expand(rle: Chunk) -> list[int]:
    return [a for a, n in rle for _ in range(n)]


def _compress(actions: list[int]) -> Chunk:
    out: Chunk = []
    for a in actions:
        if out and out[-1][0] == a:
            out[-1] = (a, out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


class _Runner:
    """Steps the raw stock env with RIGHT_ONLY indices; tracks done/flag/x."""

    def __init__(self) -> None:
        self.env = SuperMarioBrosEnv(target=(1, 1))
        self.env.reset()
        # the stock env keeps its post-start-screen state in the single backup slot;
        # remember that we replace it, so a replay must start from a fresh env
        self.frames = 0

    def fresh(self) -> None:
        self.env.close()
        self.env = SuperMarioBrosEnv(target=(1, 1))
        self.env.reset()

    def play(self, actions: list[int]) -> tuple[bool, bool, int, int]:
        """Play actions until the end or the first done.

        Returns (done, flag_get, x_pos, frames played).
        """
        x = int(self.env._x_position)
        for i, a in enumerate(actions):
            _, _, done, info = self.env.step(_BYTES[a])
            self.frames += 1
            if done:
                return True, bool(info["flag_get"]), int(info["x_pos"]), i + 1
            x = int(info["x_pos"])
        return False, False, x, len(actions)

    def checkpoint(self) -> None:
        self.env._backup()

    def rewind(self) -> None:
        self.env.reset()  # restores the last checkpoint


def _random_chunk(rng: random.Random) -> Chunk:
    kind = rng.random()
    if kind < 0.75:
        return [(RUN, rng.randint(1, 24)), (JUMP, rng.randint(4, 34))]
    if kind < 0.9:
        return [(WALK, rng.randint(4, 24)), (JUMP, rng.randint(4, 34))]
    return [(RUN, rng.randint(4, 30))]


def search(seed: int, budget_s: float, tries_per_level: int = 40, verbose: bool = False) -> Chunk:
    """Return a RIGHT_ONLY run-length sequence that ends on the flag of 1-1."""
    rng = random.Random(seed)
    runner = _Runner()
    prefix: list[Chunk] = []
    xs: list[int] = [int(runner.env._x_position)]
    fails: list[int] = [0]
    runner.checkpoint()
    start = time.monotonic()
    while time.monotonic() - start < budget_s:
        chunk = _random_chunk(rng)
        runner.rewind()
        done, flag, x, played = runner.play(_expand(chunk))
        if done and flag:
            # stop at the flag frame: the stock env refuses steps after done
            seq = _expand([s for c in prefix for s in c]) + _expand(chunk)[:played]
            print(
                f"flag after {len(seq)} frames, {runner.frames} frames searched, "
                f"{time.monotonic() - start:.1f} s",
                file=sys.stderr,
            )
            return _compress(seq)
        # keep chunks that survive and make progress
        if not done and x > xs[-1] + 8:
            # a prefix that only dies later (falling into a pit) is a dead end: look ahead
            dies_soon, _, _, _ = runner.play([NOOP] * 60)
            if not dies_soon:
                runner.rewind()
                runner.play(_expand(chunk))
                prefix.append(chunk)
                xs.append(x)
                fails.append(0)
                runner.checkpoint()
                continue
        fails[-1] += 1
        if verbose and fails[-1] == 1:
            print(f"depth {len(prefix)} x {xs[-1]} max {max(xs)}", file=sys.stderr)
        if fails[-1] >= tries_per_level and prefix:
            # dead end: drop the last chunk and rebuild the checkpoint by replay
            prefix.pop()
            xs.pop()
            fails.pop()
            if fails:
                fails[-1] += tries_per_level // 4
            runner.fresh()
            runner.play(_expand([s for c in prefix for s in c]))
            runner.checkpoint()
    raise RuntimeError(f"no flag sequence found within {budget_s} s (seed {seed})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds of search")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    print(search(args.seed, args.budget, verbose=args.verbose))


if __name__ == "__main__":
    main()
