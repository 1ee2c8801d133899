"""Percentiles and plain-text tables for bench/run.py (printed and kept for bench/out/report.txt)."""

from __future__ import annotations

import math
import statistics
from typing import Sequence

LINES: list[str] = []  # everything printed, for the report file


def say(text: str = "") -> None:
    print(text, flush=True)
    LINES.append(text)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence], notes: Sequence[str] = ()) -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    say()
    say(title)
    say("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    say("  ".join("-" * w for w in widths))
    for row in cells:
        say("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for note in notes:
        say(f"  {note}")
