"""scripts/seed_summary.py: the interquartile mean over seeds and its bootstrap interval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "seed_summary.py"


def _report(path: Path, det: float, sticky: float, eps: float) -> Path:
    """The parts of a `mario eval --robust --json` report the script reads."""

    def stage(rate: float) -> dict:
        return {"1-1": {"episodes": 20, "flag_rate": rate, "x_pos_mean": 3000.0}}

    report = {"stages": stage(det), "robust": {"sticky_0.25": stage(sticky)}}
    report["robust"]["epsilon_0.05"] = stage(eps)
    path.write_text(json.dumps(report))
    return path


def _run(*args: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_the_interquartile_mean_drops_a_quarter_at_each_end(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from seed_summary import bootstrap_interval, iqm
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert iqm(np.array([0.2, 0.6, 1.0])) == np.float64(0.6)  # under four: the mean
    assert iqm(np.array([0.0, 0.5, 0.7, 1.0])) == np.float64(0.6)  # the middle two
    assert bootstrap_interval(np.array([0.8, 0.8])) == pytest.approx((0.8, 0.8))
    low, high = bootstrap_interval(np.array([0.55, 0.6, 0.8]))
    assert 0.55 <= low < 0.65 < high <= 0.8 + 1e-9

    reports = [_report(tmp_path / f"s{i}.json", 0.9, s, 0.3) for i, s in enumerate((0.6, 1.0))]
    done = _run(*reports)
    assert done.returncode == 0, done.stderr
    assert "2 seeds" in done.stdout
    assert "sticky 0.25: IQM 0.80, 95% CI [0.60, 1.00] (seeds: 0.60, 1.00)" in done.stdout
    assert "deterministic: IQM 0.90, 95% CI [0.90, 0.90]" in done.stdout


def test_bad_input_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    good = _report(tmp_path / "good.json", 1.0, 1.0, 1.0)
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "other.json").write_text('{"stages": {}}')
    for args, needle in (
        ((good,), "give 2 to 1000 reports, got 1"),
        ((good, tmp_path / "text.json"), "text.json: not a `mario eval --robust --json` report"),
        ((good, tmp_path / "other.json"), "other.json: not a `mario eval --robust --json`"),
        ((good, tmp_path / "missing.json"), "missing.json"),
    ):
        done = _run(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
