"""``RUN/metrics.jsonl``, the source of truth of a run's history: one JSON object per line with
``step`` (agent steps), ``kind`` and ``time`` plus the metrics; read back here."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"


def drop_partial_last_line(path: Path) -> None:
    """Cut a line that a kill left without its newline, so appends start on a fresh line."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                f.seek(start)
                chunk = f.read(pos - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    f.truncate(start + cut + 1)
                    return
                pos = start
            f.truncate(0)
    except FileNotFoundError:
        return


def read_metrics(path: Path, *, skip_bad: bool = False) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; an unfinished last line (from a kill) is skipped.

    A malformed line elsewhere raises ValueError naming the file and line (``skip_bad``:
    it is left out instead, as the plots do).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) or skip_bad:  # no newline after the last: cut short
                continue
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            if skip_bad:
                continue
            raise ValueError(f"{path}:{number}: not a metrics record (needs an int 'step')")
        records.append(record)
    return records


def drop_rewound(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one history: a session that starts at step S (a resume from the checkpoint at
    S) replaces what earlier sessions logged after S."""
    kept: list[dict[str, Any]] = []
    for record in records:
        if record.get("kind") == "session":
            kept = [r for r in kept if r["step"] <= record["step"]]
        kept.append(record)
    return kept
