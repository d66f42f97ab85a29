"""What a run cost and how long messages waited: the numbers the simulator's table shows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc_operator.simulator.model import Run, Series

WAIT_SAMPLES = 50_000


@dataclass(frozen=True)
class Summary:
    scaler: str
    p50_wait_seconds: float
    p95_wait_seconds: float
    max_wait_seconds: float
    drain_seconds: float  # from the largest backlog peak back to an empty queue
    replica_seconds: float
    scale_events: int
    reversals: int
    undelivered: float


def waits(run: Run) -> Series:
    """FIFO waits of evenly spaced messages: when the k-th arrived and when the k-th was served."""
    arrived, served = np.cumsum(run.arrivals), np.cumsum(run.departures)
    total = served[-1] if len(served) else 0.0
    if total <= 0:
        return np.zeros(1)
    ks = np.linspace(0.5, total - 0.5, num=min(WAIT_SAMPLES, max(1, int(total))))
    delay = np.searchsorted(served, ks, side="left") - np.searchsorted(arrived, ks, side="left")
    return delay.astype(np.float64)


def summarize(run: Run) -> Summary:
    wait = waits(run)
    peak = int(np.argmax(run.backlog)) if len(run.backlog) else 0
    empty_after = np.nonzero(run.backlog[peak:] <= 1e-9)[0]
    drain = float(empty_after[0]) if len(empty_after) else float(len(run.backlog) - peak)
    changes = np.diff(run.replicas)
    moves = np.sign(changes[changes != 0])
    return Summary(
        scaler=run.scaler,
        p50_wait_seconds=float(np.percentile(wait, 50)),
        p95_wait_seconds=float(np.percentile(wait, 95)),
        max_wait_seconds=float(np.max(wait)),
        drain_seconds=drain,
        replica_seconds=float(np.sum(run.replicas)),
        scale_events=len(moves),
        reversals=int(np.sum(moves[1:] != moves[:-1])) if len(moves) > 1 else 0,
        undelivered=float(np.sum(run.arrivals) - np.sum(run.departures)),
    )


def table(summaries: list[Summary]) -> str:
    header = (
        "scaler",
        "p50 wait s",
        "p95 wait s",
        "max wait s",
        "drain s",
        "replica-s",
        "events",
        "reversals",
    )
    rows = [header] + [
        (
            s.scaler,
            f"{s.p50_wait_seconds:.0f}",
            f"{s.p95_wait_seconds:.0f}",
            f"{s.max_wait_seconds:.0f}",
            f"{s.drain_seconds:.0f}",
            f"{s.replica_seconds:.0f}",
            str(s.scale_events),
            str(s.reversals),
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join(line(row) for row in rows)
