"""Plot the greedy-evaluation curves of one or more runs in one figure: eval mean x_pos (and
flag rate) against agent steps and against wall-clock minutes, with an optional random-agent
baseline. For docs/BENCHMARKS.md evidence.

    python scripts/plot_eval_curve.py runs/cpu-1-1 --baseline 786 --out docs/cpu-1-1-eval.png
    python scripts/plot_eval_curve.py runs/cpu-1-1 runs/cpu-1-1-ppo --out docs/dqn-vs-ppo.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mario.storage.metrics import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (metrics.jsonl inside)")
    parser.add_argument("--baseline", type=float, help="random agent's mean x_pos")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", help="figure title (default: the run names)")
    args = parser.parse_args()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    twins = [ax.twinx() for ax in axes]
    for i, run in enumerate(args.runs):
        records = read_metrics(run / "metrics.jsonl")
        evals = [r for r in records if r["kind"] == "eval"]
        if not evals:
            raise SystemExit(f"{run}: no eval records in metrics.jsonl")
        start = records[0]["time"]
        steps = [r["step"] for r in evals]
        minutes = [(r["time"] - start) / 60 for r in evals]
        x_mean = [r["x_pos_mean"] for r in evals]
        flags = [r["flag_rate"] for r in evals]
        color = f"C{i}"
        for ax, twin, xs in ((axes[0], twins[0], steps), (axes[1], twins[1], minutes)):
            ax.plot(xs, x_mean, "o-", color=color, label=f"{run.name}: greedy mean x_pos")
            twin.plot(xs, flags, "s:", color=color, alpha=0.5, label=f"{run.name}: flag rate")
    for ax, twin, label in zip(axes, twins, ("agent steps", "wall-clock minutes"), strict=True):
        if args.baseline is not None:
            ax.axhline(args.baseline, color="grey", ls="--", label="random agent mean x_pos")
        ax.set_xlabel(label)
        ax.set_ylabel("x_pos")
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("flag rate (dotted)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(args.title or ", ".join(run.name for run in args.runs) + ": greedy evaluation")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
