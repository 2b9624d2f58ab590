"""Summarise one setting's seeds: the interquartile mean of their flag rates with a bootstrap
confidence interval, as Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical
Precipice", rliable) recommend over the best seed or a bare mean.

    python scripts/seed_summary.py docs/robust-1-1-AB1-avg3.json docs/robust-1-1-AB2-avg3.json

Each argument is a `mario eval --robust --json` report of one seed (one stage: the first of
the report). Prints, per mode (deterministic, sticky 0.25, ε 0.05), the seeds' flag rates,
their interquartile mean (the mean of the middle half; with fewer than four seeds, the mean)
and a 95% percentile bootstrap interval over seeds (10,000 resamples, seeded: the same input
prints the same interval). Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MAX_REPORTS = 1000
MAX_REPORT_BYTES = 64 * 1024 * 1024
RESAMPLES = 10_000
#: The report's modes: its greedy episodes, then the robust ones under ``robust``.
MODES = ("deterministic", "sticky_0.25", "epsilon_0.05")


def iqm(values: np.ndarray) -> np.ndarray:
    """Interquartile mean along the last axis: ``int(n / 4)`` values cut at each end (as
    ``scipy.stats.trim_mean(x, 0.25)``), so fewer than four values keep them all."""
    n = values.shape[-1]
    cut = n // 4
    return np.sort(values, axis=-1)[..., cut : n - cut].mean(axis=-1)


def bootstrap_interval(rates: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile interval of the IQM over seeds resampled with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(rates), size=(RESAMPLES, len(rates)))
    low, high = np.percentile(iqm(rates[picks]), [2.5, 97.5])
    return float(low), float(high)


def flag_rates(report: dict[str, Any]) -> dict[str, float]:
    """The report's flag rate per mode (its first stage)."""

    def first(stages: Any) -> dict[str, Any]:
        return stages[0] if isinstance(stages, list) else next(iter(stages.values()))

    rates = {MODES[0]: float(first(report["stages"])["flag_rate"])}
    for key in MODES[1:]:
        rates[key] = float(first(report["robust"][key])["flag_rate"])
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+", help="`mario eval --robust --json`")
    args = parser.parse_args()
    try:
        if not 2 <= len(args.reports) <= MAX_REPORTS:
            raise ValueError(f"give 2 to {MAX_REPORTS} reports, got {len(args.reports)}")
        rows = []
        for path in args.reports:
            if path.stat().st_size > MAX_REPORT_BYTES:
                raise ValueError(f"{path}: larger than {MAX_REPORT_BYTES} bytes")
            try:
                rows.append(flag_rates(json.loads(path.read_text(encoding="utf-8"))))
            except (json.JSONDecodeError, KeyError, TypeError, StopIteration, IndexError) as error:
                raise ValueError(f"{path}: not a `mario eval --robust --json` report") from error
    except (OSError, ValueError) as error:
        print(f"seed_summary: {error}", file=sys.stderr)
        return 2
    print(f"{len(rows)} seeds")
    for key in MODES:
        rates = np.array([row[key] for row in rows])
        label = key.replace("_", " ")
        low, high = bootstrap_interval(rates)
        each = ", ".join(f"{r:.2f}" for r in rates)
        print(f"{label:>13}: IQM {iqm(rates):.2f}, 95% CI [{low:.2f}, {high:.2f}] (seeds: {each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
