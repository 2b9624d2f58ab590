"""``mario bench env`` on both game backends, side by side, for docs/BENCHMARKS.md.

Runs :func:`mario.bench.env.bench_env` with the classic backend's interpreter (``.venv``:
Python < 3.13, nes-py 8.2.1) and the upstream one's (``.venv-py313``: nes-py 9.0.1, made by
``scripts/test_py313.sh``), one repeat each, alternating for ``--rounds`` rounds so that the
load of a shared machine falls on both alike; prints each figure's median over the rounds as
a markdown table (and the raw results with ``--json``). From the repository root::

    .venv/bin/python scripts/bench_backends.py --rounds 3 --seconds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN = "import json, sys; from mario.bench.env import bench_env; print(json.dumps(bench_env(**json.loads(sys.argv[1]))))"  # noqa: E501
ROWS = [  # (label, how to read it from one result)
    ("emulator only (frame advance), frames/s", lambda r: r["emulator_frames_per_s"]),
    ("raw env (nes-py's step + our rules), frames/s", lambda r: r["raw_frames_per_s"]),
    ("pipeline (skip 4, gray, 84, stack 4), agent steps/s", lambda r: r["pipeline_steps_per_s"]),
    ("pipeline ratio to raw / frame_skip", lambda r: r["pipeline_ratio"]),
    ("pipeline ratio to emulator only / frame_skip", lambda r: r["pipeline_ratio_vs_emulator_only"]),  # noqa: E501
    ("CPU µs per frame: emulator only", lambda r: r["cpu_us_per_frame"]["emulator_only"]),
    ("CPU µs per frame: raw env", lambda r: r["cpu_us_per_frame"]["raw"]),
    ("CPU µs per frame: pipeline (per agent step / 4)", lambda r: r["cpu_us_per_frame"]["pipeline"]),  # noqa: E501
    ("pipeline CPU ratio: emulator only / pipeline, per frame", lambda r: r["pipeline_cpu_ratio_vs_emulator_only"]),  # noqa: E501
    ("vector env, 1 env, steps/s", lambda r: r["vector"][0]["steps_per_s"]),
    ("vector env, 2 envs, steps/s", lambda r: r["vector"][-1]["steps_per_s"]),
    ("vector env, 2 envs, scaling vs 2 x pipeline", lambda r: r["vector"][-1]["scaling_vs_pipeline"]),  # noqa: E501
    ("nes-py 9 VectorNESEmulator, 2 envs, frame advances only, frames/s", lambda r: (r.get("native_vector") or {}).get("frames_per_s")),  # noqa: E501
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--max-envs", type=int, default=2)
    parser.add_argument("--classic", default=str(ROOT / ".venv/bin/python"))
    parser.add_argument("--upstream", default=str(ROOT / ".venv-py313/bin/python"))
    parser.add_argument("--json", action="store_true", help="also print every raw result")
    args = parser.parse_args()
    kwargs = json.dumps({"seconds": args.seconds, "repeats": 1, "max_envs": args.max_envs})
    results: dict[str, list[dict[str, Any]]] = {"classic": [], "upstream": []}
    for round_ in range(args.rounds):
        for name in results:
            python = getattr(args, name)
            out = subprocess.run(
                [python, "-c", RUN, kwargs], cwd=ROOT, capture_output=True, text=True, check=True
            )
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1}/{args.rounds}: {name} done", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    first = {name: runs[0]["machine"] for name, runs in results.items()}
    machine = first["classic"]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; median of {args.rounds} "
          f"alternating rounds of {args.seconds:g} s per figure")  # fmt: skip
    print()
    print(f"| figure | classic: {first['classic']['game_backend']}, Python "
          f"{first['classic']['python']} | upstream: {first['upstream']['game_backend']}, "
          f"Python {first['upstream']['python']} |")  # fmt: skip
    print("| --- | --- | --- |")
    for label, read in ROWS:
        cells = []
        for runs in results.values():
            values = [v for v in (read(r) for r in runs) if v is not None]
            cells.append(f"{statistics.median(values):g}" if values else "—")
        print(f"| {label} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
