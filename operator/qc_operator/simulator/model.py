"""The queue model: one-second steps of arrivals, service by ready replicas, pod start-up delay and metric
lag; the scaler sees the backlog as it was `metric_lag_seconds` ago, as a real metrics pipeline shows it,
and the workers' own metrics (in flight, busy fractions, empty receives, acks and failed attempts) as they
are now, as the operator scrapes them from the pods; the throughput per replica is the scaler's to learn
from them, as the operator's estimator does (`scalers.OurScaler`). With a downstream (a trace's
`downstream` column) attempts beyond what it accepts fail and are retried (`simulator.downstream`)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qc_operator.simulator.downstream import RetryingQueue, default_max_attempts
from qc_operator.simulator.scalers import Scaler, Signals
from qc_operator.simulator.traces import Arrivals

Series = npt.NDArray[np.float64]
MAX_DRAIN_TAIL_SECONDS = 6 * 3600  # after the trace ends, keep simulating until the queue is empty


@dataclass(frozen=True)
class Scenario:
    throughput_per_replica: float = 10.0  # messages/s one replica completes
    startup_seconds: float = 20.0  # from scale-up to a pod serving
    metric_lag_seconds: int = 0  # RabbitMQ's management API ~5 s; Cloud Monitoring's Pub/Sub 60-180 s
    max_replicas: int = 50


@dataclass(frozen=True)
class Run:
    scaler: str
    arrivals: Series
    departures: Series
    backlog: Series
    replicas: Series  # pods that exist (cost), starting ones included
    ready: Series
    # With a downstream: calls it got again for messages that had failed, messages dead-lettered after
    # their last attempt, and the second it accepted everything again for good (None: it never failed).
    retries: float = 0.0
    dead_letters: float = 0.0
    recovered_at: int | None = None
    dead_lettered: Series | None = None  # per second: they leave the queue too
    failed: Series | None = None  # attempts the downstream refused, per second


def recovery_second(accepted_per_second: Series | None) -> int | None:
    """The second after the downstream's last limited one, if it was limited and recovered in the trace."""
    if accepted_per_second is None:
        return None
    limited = np.nonzero(np.isfinite(accepted_per_second))[0]
    if not len(limited) or limited[-1] + 1 >= len(accepted_per_second):
        return None
    return int(limited[-1]) + 1


def simulate(
    arrivals: Arrivals,
    scenario: Scenario,
    scaler: Scaler,
    progress: Callable[[int, int], None] | None = None,
    accepted_per_second: Series | None = None,
) -> Run:
    """`accepted_per_second`: the downstream's limit at each second of the trace (inf: none); after the
    trace, its last value holds. None: every attempt succeeds."""
    horizon = len(arrivals) + MAX_DRAIN_TAIL_SECONDS
    arriving = np.zeros(horizon)
    arriving[: len(arrivals)] = arrivals
    backlog_series, departures = np.zeros(horizon), np.zeros(horizon)
    dead_lettered, failed = np.zeros(horizon), np.zeros(horizon)
    replicas_series, ready_series = np.zeros(horizon), np.zeros(horizon)
    pods: collections.deque[float] = collections.deque()  # ready-at times, oldest first
    backlog = 0.0
    lag = scenario.metric_lag_seconds
    end = horizon
    queue = RetryingQueue(default_max_attempts()) if accepted_per_second is not None else None
    for t in range(horizon):
        ready = sum(1 for ready_at in pods if ready_at <= t)
        slots = ready * scenario.throughput_per_replica
        if queue is None:
            backlog += arriving[t]
            attempts = served = min(backlog, slots)
            backlog -= served
        else:
            assert accepted_per_second is not None
            accepted = accepted_per_second[min(t, len(accepted_per_second) - 1)]
            step = queue.step(t, arriving[t], slots, accepted)
            attempts, served, backlog = step.attempts, step.acked, queue.messages
            dead_lettered[t], failed[t] = step.dead_lettered, step.failed
        departures[t], backlog_series[t] = served, backlog
        seen = backlog_series[t - lag] if t >= lag else 0.0
        busy = attempts / scenario.throughput_per_replica  # the ready pods' busy fractions, summed
        # Spare capacity means the queue ran dry this second: a worker with free slots received nothing.
        ran_dry = attempts < slots if ready else None
        signals = Signals(float(seen), attempts, busy, ran_dry, served, attempts - served)
        wanted = scaler.step(float(t), signals, len(pods))
        while len(pods) < wanted:
            pods.append(t + scenario.startup_seconds)
        while len(pods) > wanted:
            pods.pop()  # the newest (perhaps still starting) pods go first
        replicas_series[t], ready_series[t] = len(pods), ready
        if progress is not None and t % 3600 == 0:
            progress(t, len(arrivals))
        if t >= len(arrivals) and backlog <= 1e-9 and not pods:
            end = t + 1
            break
    return Run(
        scaler.name,
        arriving[:end],
        departures[:end],
        backlog_series[:end],
        replicas_series[:end],
        ready_series[:end],
        retries=queue.retries if queue else 0.0,
        dead_letters=queue.dead_letters if queue else 0.0,
        recovered_at=recovery_second(accepted_per_second),
        dead_lettered=dead_lettered[:end] if queue else None,
        failed=failed[:end] if queue else None,
    )
