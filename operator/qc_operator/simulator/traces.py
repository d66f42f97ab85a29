"""Arrival traces: messages arriving in each second, from a CSV file or a built-in shape.

A CSV is either one column of arrival timestamps (seconds, sorted; each line one message) or two columns
`second,rate` (messages per second from that second on). A third column, `downstream`, says how many task
calls per second the workers' downstream accepts from that second on (`inf`: all of them, 0: an outage);
`downstream_from_csv` reads it. Bad input gets a clear `TraceError`.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

Arrivals = npt.NDArray[np.float64]
SHAPES = ("step", "spikes", "diurnal", "random-walk")


class TraceError(ValueError):
    """The trace cannot be used; the message says which line and why."""


def from_csv(path: Path) -> Arrivals:
    rows = _rows(path)
    width = len(rows[0])
    if width == 1:
        return _from_timestamps(path, rows)
    if width in (2, 3):
        return _from_rates(path, [row[:2] for row in rows])
    raise TraceError(f"{path}: expected 1 column (timestamps), 2 (second,rate) or 3 (second,rate,downstream)")


def downstream_from_csv(path: Path) -> Arrivals | None:
    """Task calls per second the downstream accepts, per second of the trace (inf: no limit); None when the
    trace has no `downstream` column."""
    rows = _rows(path)
    if len(rows[0]) != 3:
        return None
    capacity = [[row[0], row[2].replace("inf", "-1")] for row in rows]  # -1 stands for inf while parsing
    per_second = _from_rates(path, capacity, allow_unlimited=True)
    return np.where(per_second < 0, np.inf, per_second)


def _rows(path: Path) -> list[list[str]]:
    rows = [row for row in csv.reader(path.read_text().splitlines()) if row and not row[0].startswith("#")]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]  # a header line
    if not rows:
        raise TraceError(f"{path}: the trace is empty")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(path: Path, rows: list[list[str]]) -> list[list[float]]:
    values = []
    for line, row in enumerate(rows, start=1):
        try:
            values.append([float(cell) for cell in row])
        except ValueError as error:
            raise TraceError(f"{path}: line {line}: {error}") from error
        if any(math.isnan(v) or math.isinf(v) for v in values[-1]):
            raise TraceError(f"{path}: line {line}: not a finite number")
    return values


def _from_timestamps(path: Path, rows: list[list[str]]) -> Arrivals:
    stamps = [v[0] for v in _numbers(path, rows)]
    for line, (before, after) in enumerate(itertools.pairwise(stamps), start=2):
        if after < before:
            raise TraceError(f"{path}: line {line}: timestamps are not sorted ({after} after {before})")
    if stamps[0] < 0:
        raise TraceError(f"{path}: line 1: negative timestamp {stamps[0]}")
    start = math.floor(stamps[0])
    arrivals = np.zeros(math.floor(stamps[-1]) - start + 1)
    np.add.at(arrivals, np.floor(np.array(stamps)).astype(int) - start, 1.0)
    return arrivals


def _from_rates(path: Path, rows: list[list[str]], allow_unlimited: bool = False) -> Arrivals:
    points = _numbers(path, rows)
    for line, (second, rate) in enumerate(points, start=1):
        if rate < 0 and not (allow_unlimited and rate == -1):
            raise TraceError(f"{path}: line {line}: negative rate {rate}")
        if line > 1 and second <= points[line - 2][0]:
            raise TraceError(f"{path}: line {line}: seconds are not increasing")
    seconds = [int(p[0]) for p in points]
    arrivals = np.zeros(seconds[-1] - seconds[0] + 1)
    for (second, rate), following in zip(points, [*seconds[1:], seconds[-1] + 1], strict=True):
        arrivals[int(second) - seconds[0] : following - seconds[0]] = rate
    return arrivals


def shape(name: str, duration_seconds: int, peak_rate: float, seed: int = 1) -> Arrivals:
    """A built-in trace: a step burst, periodic spikes, a diurnal sine, or a random walk."""
    if duration_seconds <= 0 or peak_rate < 0:
        raise TraceError("duration must be positive and the peak rate not negative")
    t = np.arange(duration_seconds, dtype=np.float64)
    if name == "step":  # quiet, then a burst at the peak rate for a tenth of the trace, then quiet
        start, length = duration_seconds // 10, max(1, duration_seconds // 10)
        return np.where((t >= start) & (t < start + length), peak_rate, 0.0)
    if name == "spikes":  # a 30 s spike every 10 minutes over a low base load
        return np.where(t % 600 < 30, peak_rate, peak_rate * 0.05)
    if name == "diurnal":  # one day-long sine between 5% and 100% of the peak, squeezed into the duration
        return peak_rate * (0.525 + 0.475 * np.sin(2 * np.pi * t / duration_seconds - np.pi / 2))
    if name == "random-walk":
        steps = np.random.default_rng(seed).normal(0, peak_rate * 0.01, duration_seconds)
        return np.asarray(np.clip(np.cumsum(steps) + peak_rate / 2, 0, peak_rate), dtype=np.float64)
    raise TraceError(f"unknown shape {name!r}: choose one of {', '.join(SHAPES)}")
