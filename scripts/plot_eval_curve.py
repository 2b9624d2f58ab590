"""Plot a run's greedy-evaluation curve: eval x_pos and flag rate against agent steps and
wall-clock time, with an optional random-agent baseline. For docs/BENCHMARKS.md evidence.

    python scripts/plot_eval_curve.py RUN_DIR --baseline 786 --out docs/cpu-1-1-eval.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mario.tracking import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--baseline", type=float, help="random agent's mean x_pos")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    records = read_metrics(args.run / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    if not evals:
        raise SystemExit(f"{args.run}: no eval records in metrics.jsonl")
    start = records[0]["time"]
    steps = [r["step"] for r in evals]
    minutes = [(r["time"] - start) / 60 for r in evals]
    x_mean = [r["x_pos_mean"] for r in evals]
    x_max = [r["x_pos_max"] for r in evals]
    flags = [r["flag_rate"] for r in evals]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, xs, label in ((axes[0], steps, "agent steps"), (axes[1], minutes, "wall-clock min")):
        ax.plot(xs, x_mean, "o-", label="greedy mean x_pos")
        ax.plot(xs, x_max, "^:", alpha=0.6, label="greedy max x_pos")
        if args.baseline is not None:
            ax.axhline(args.baseline, color="grey", ls="--", label="random agent mean x_pos")
        ax.set_xlabel(label)
        ax.set_ylabel("x_pos")
        twin = ax.twinx()
        twin.plot(xs, flags, "s-", color="tab:green", alpha=0.7, label="flag rate")
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("flag rate")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{args.run.name}: greedy evaluation")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
