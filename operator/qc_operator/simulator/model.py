"""The queue model: one-second steps of arrivals, service by ready replicas, pod start-up delay and metric
lag; the scaler sees the backlog as it was `metric_lag_seconds` ago, as a real metrics pipeline shows it,
and the workers' own metrics (throughput, in flight, busy fractions, empty receives) as they are now, as the
operator scrapes them from the pods."""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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


def simulate(
    arrivals: Arrivals, scenario: Scenario, scaler: Scaler, progress: Callable[[int, int], None] | None = None
) -> Run:
    horizon = len(arrivals) + MAX_DRAIN_TAIL_SECONDS
    arriving = np.zeros(horizon)
    arriving[: len(arrivals)] = arrivals
    backlog_series, departures = np.zeros(horizon), np.zeros(horizon)
    replicas_series, ready_series = np.zeros(horizon), np.zeros(horizon)
    pods: collections.deque[float] = collections.deque()  # ready-at times, oldest first
    backlog = 0.0
    measured: float | None = None
    lag = scenario.metric_lag_seconds
    end = horizon
    for t in range(horizon):
        backlog += arriving[t]
        ready = sum(1 for ready_at in pods if ready_at <= t)
        served = min(backlog, ready * scenario.throughput_per_replica)
        backlog -= served
        departures[t], backlog_series[t] = served, backlog
        if ready and served >= ready * scenario.throughput_per_replica * 0.5:
            measured = scenario.throughput_per_replica  # the workers' metrics reveal it once they are busy
        seen = backlog_series[t - lag] if t >= lag else 0.0
        busy = served / scenario.throughput_per_replica  # the ready pods' busy fractions, summed
        # Spare capacity means the queue ran dry this second: a worker with free slots received nothing.
        ran_dry = served < ready * scenario.throughput_per_replica if ready else None
        wanted = scaler.step(float(t), Signals(float(seen), measured, served, busy, ran_dry), len(pods))
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
    )
