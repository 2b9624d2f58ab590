"""Plot the evaluation curves of one or more runs against agent steps, one panel per measure
(greedy mean x_pos, greedy flag rate, and where the runs logged them with --eval-robust the
flag rates with sticky actions 0.25 and with ε 0.05), each line in each panel labelled by its
run, with an optional random-agent baseline. For docs/BENCHMARKS.md evidence.

    python scripts/plot_eval_curve.py runs/cpu-1-1 --baseline 786 --out docs/cpu-1-1-eval.png
    python scripts/plot_eval_curve.py runs/a runs/b --labels "sticky" "sticky + prev" --out f.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mario.storage.metrics import read_metrics

MEASURES = (  # (key in the eval records, panel title, y limits or None)
    ("x_pos_mean", "greedy mean x_pos", None),
    ("flag_rate", "greedy flag rate", (-0.05, 1.05)),
    ("sticky_0.25/flag_rate", "flag rate, sticky actions 0.25 (robust)", (-0.05, 1.05)),
    ("epsilon_0.05/flag_rate", "flag rate, ε 0.05", (-0.05, 1.05)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (metrics.jsonl inside)")
    parser.add_argument("--labels", nargs="+", help="a legend label per run (default: names)")
    parser.add_argument("--baseline", type=float, help="random agent's mean x_pos")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit("give one --labels entry per run")

    evals = {}
    for run in args.runs:
        found = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"]
        if not found:
            raise SystemExit(f"{run}: no eval records in metrics.jsonl")
        evals[run] = found
    measures = [m for m in MEASURES if any(m[0] in r for rs in evals.values() for r in rs)]
    fig, axes = plt.subplots(
        1, len(measures), figsize=(4.6 * len(measures), 3.8), constrained_layout=True
    )
    for ax, (key, title, limits) in zip(axes, measures, strict=True):
        for i, (run, label) in enumerate(zip(args.runs, labels, strict=True)):
            points = [(r["step"], r[key]) for r in evals[run] if key in r]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, "o-", ms=3, color=f"C{i}", label=label)
        if key == "x_pos_mean" and args.baseline is not None:
            ax.axhline(args.baseline, color="grey", ls="--", label="random agent")
        ax.set_title(title)
        ax.set_xlabel("agent steps")
        if limits:
            ax.set_ylim(*limits)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
