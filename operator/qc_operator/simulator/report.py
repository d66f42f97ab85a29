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
    # With a downstream: the most replicas while it refused calls, the calls it got again for failed
    # messages, messages dead-lettered, and the time from its recovery to an empty queue (None: it never
    # failed, or never recovered within the trace).
    max_replicas_while_failing: float = 0.0
    retries: float = 0.0
    dead_letters: float = 0.0
    drain_after_recovery_seconds: float | None = None
    downstream: bool = False  # the trace had a downstream: the table shows the columns above


def waits(run: Run) -> Series:
    """FIFO waits of evenly spaced messages: when the k-th arrived and when the k-th left the queue (acked,
    or dead-lettered after its last attempt)."""
    left = run.departures if run.dead_lettered is None else run.departures + run.dead_lettered
    arrived, served = np.cumsum(run.arrivals), np.cumsum(left)
    total = served[-1] if len(served) else 0.0
    if total <= 0:
        return np.zeros(1)
    ks = np.linspace(0.5, total - 0.5, num=min(WAIT_SAMPLES, max(1, int(total))))
    delay = np.searchsorted(served, ks, side="left") - np.searchsorted(arrived, ks, side="left")
    return delay.astype(np.float64)


def drain_after(run: Run, second: int | None) -> float | None:
    """Seconds from `second` to the first empty queue after it."""
    if second is None or second >= len(run.backlog):
        return None
    empty = np.nonzero(run.backlog[second:] <= 1e-6)[0]
    return float(empty[0]) if len(empty) else float(len(run.backlog) - second)


def summarize(run: Run, downstream: bool = False) -> Summary:
    wait = waits(run)
    failing = run.failed > 0 if run.failed is not None else np.zeros(len(run.replicas), dtype=bool)
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
        max_replicas_while_failing=float(np.max(run.replicas[failing], initial=0.0)),
        retries=run.retries,
        dead_letters=run.dead_letters,
        drain_after_recovery_seconds=drain_after(run, run.recovered_at),
        downstream=downstream,
    )


def _downstream_cells(s: Summary) -> tuple[str, ...]:
    drain = s.drain_after_recovery_seconds
    return (
        f"{s.max_replicas_while_failing:.0f}",
        f"{s.retries:.0f}",
        f"{s.dead_letters:.0f}",
        "-" if drain is None else f"{drain:.0f}",
    )


def table(summaries: list[Summary]) -> str:
    header: tuple[str, ...] = (
        "scaler",
        "p50 wait s",
        "p95 wait s",
        "max wait s",
        "drain s",
        "replica-s",
        "events",
        "reversals",
    )
    downstream = any(s.downstream for s in summaries)
    if downstream:
        header += ("max replicas failing", "retries", "dead letters", "drain after recovery s")
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
        + (_downstream_cells(s) if downstream else ())
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join(line(row) for row in rows)
