"""The learning curves (``RUN/curves.png``), drawn from metrics.jsonl so that they work with
W&B disabled. Names the plots look for (``kind``: keys):

* ``episode`` (one line per finished training episode): ``return``, ``x_pos``
* ``train`` (periodic learner stats): ``loss``, ``epsilon``
* ``eval`` (greedy evaluation): ``x_pos_mean`` (or ``x_pos``), ``flag_rate``
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mario.storage.metrics import drop_rewound

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVES = "curves.png"


def _series(
    records: list[dict[str, Any]], kind: str, keys: tuple[str, ...]
) -> tuple[list[int], list[float]]:
    """Steps and values of the first of ``keys`` (or ``<kind>/<key>``) each record has."""
    names = [n for key in keys for n in (key, f"{kind}/{key}")]
    xs: list[int] = []
    ys: list[float] = []
    for r in records:
        if r.get("kind") != kind:
            continue
        value = next((r[n] for n in names if n in r), None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            xs.append(r["step"])
            ys.append(float(value))
    return xs, ys


def _rolling_mean(values: list[float], window: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


# (title, kind, accepted keys, rolling mean) for each panel of curves.png
_PANELS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("episode return", "episode", ("return",), True),
    ("episode x_pos", "episode", ("x_pos",), True),
    ("loss", "train", ("loss",), True),
    ("epsilon", "train", ("epsilon",), False),
    ("eval x_pos (mean)", "eval", ("x_pos_mean", "x_pos"), False),
    ("eval flag rate", "eval", ("flag_rate",), False),
)


def plot_metrics(records: list[dict[str, Any]], out: Path) -> Path:
    """Draw the learning curves of ``records`` into the PNG ``out`` (temp file + rename)."""
    fig = draw_metrics(records)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def draw_metrics(records: list[dict[str, Any]]) -> Figure:
    """The learning curves' figure: one panel per measure the run has logged so far (a short
    run shows only what it has), a rolling mean only where it averages something."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    records = drop_rewound(records)
    panels = [
        (title, keys, smooth, *_series(records, kind, keys))
        for title, kind, keys, smooth in _PANELS
    ]
    panels = [p for p in panels if p[3]]
    columns = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(4.4 * columns, 3.75 * rows), dpi=100, layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    if not panels:
        axes[0].text(0.5, 0.5, "nothing logged yet", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (title, keys, smooth, xs, ys) in zip(axes, panels, strict=False):
        key = keys[0]
        ax.set_title(title)
        ax.set_xlabel("agent steps")
        ax.grid(alpha=0.3)
        window = max(1, min(100, math.ceil(len(ys) / 10)))
        if smooth and window > 1:
            ax.plot(xs, ys, ".", ms=2 if len(ys) > 200 else 5, alpha=0.4, label=key)
            ax.plot(xs, _rolling_mean(ys, window), lw=1.5, label=f"mean of last {window}")
            ax.legend(loc="upper left", fontsize="small")
        else:
            ax.plot(xs, ys, lw=1.2, marker="o" if len(xs) < 30 else None, ms=3)
        if key == "loss" and min(ys) > 0 and max(ys) / min(ys) > 100:
            ax.set_yscale("log")
    for ax in axes[len(panels) or 1 :]:
        ax.set_axis_off()
    return fig
