"""The worker's Prometheus metrics, in a registry of its own (created at start-up, never at import time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from qc_common import metrics as names

FAILURE_REASONS = ("exception", "time_limit", "crashed", "malformed")
DURATION_BUCKETS_SECONDS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
)


def _bare(name: str) -> str:
    # prometheus_client appends _total to counters itself.
    return name.removesuffix("_total")


class BusyTime:
    """The busy fraction integrated over time, in seconds of the whole capacity busy. Advanced at each change
    of the fraction and read up to now when scraped, so a task that runs for minutes counts as it runs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._fraction = 0.0
        self._since = clock()
        self._seconds = 0.0

    def set_fraction(self, fraction: float) -> None:
        now = self._clock()
        self._seconds += self._fraction * (now - self._since)
        self._fraction, self._since = fraction, now

    def total_seconds(self) -> float:
        return self._seconds + self._fraction * (self._clock() - self._since)


class _BusySecondsCollector:
    """`BusyTime` as a counter (prometheus_client's Counter cannot be read from a function)."""

    def __init__(self, busy: BusyTime, labels: dict[str, str]) -> None:
        self._busy = busy
        self._labels = labels

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            _bare(names.WORKER_BUSY_SECONDS),
            "The busy ratio integrated over time: seconds of the whole capacity busy.",
            labels=list(self._labels),
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        family.add_metric(list(self._labels.values()), self._busy.total_seconds())
        yield family


class WorkerMetrics:
    def __init__(
        self, source: str, task: str, capacity: int, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        labels = {"source": source, "task": task}
        keys = list(labels)
        r = self.registry

        def counter(name: str, text: str) -> Counter:
            return Counter(_bare(name), text, keys, registry=r)

        self._received = counter(names.WORKER_MESSAGES_RECEIVED, "Messages received from the source.")
        self._acked = counter(names.WORKER_MESSAGES_ACKED, "Messages acked after their task succeeded.")
        self._nacked = counter(names.WORKER_MESSAGES_NACKED, "Messages handed back for redelivery.")
        self._retried = counter(
            names.WORKER_MESSAGES_RETRIED, "Failed messages scheduled for another attempt."
        )
        self._lease = counter(names.WORKER_LEASE_EXTENSIONS, "Ack-deadline extensions of messages in flight.")
        self._empty = counter(
            names.WORKER_EMPTY_RECEIVES, "Receives that found the queue empty while slots were free."
        )
        self._kills = counter(
            names.WORKER_TIME_LIMIT_KILLS, "Tasks stopped for running past their time limit."
        )
        self._dead = Counter(
            _bare(names.WORKER_MESSAGES_DEAD_LETTERED),
            "Messages sent to the dead-letter destination.",
            [*keys, "reason"],
            registry=r,
        )
        self._failed = Counter(
            _bare(names.WORKER_TASKS_FAILED), "Task attempts that failed.", [*keys, "reason"], registry=r
        )
        self._in_flight = Gauge(
            names.WORKER_TASKS_IN_FLIGHT, "Messages held by this worker now.", keys, registry=r
        )
        self._capacity = Gauge(names.WORKER_CAPACITY, "Tasks this worker runs at once.", keys, registry=r)
        self._busy = Gauge(
            names.WORKER_BUSY_RATIO,
            "Running (in flight, not waiting for a token) / capacity, 0-1.",
            keys,
            registry=r,
        )
        self._share = Gauge(
            names.WORKER_RATE_SHARE, "This pod's share of the fleet's rate limit (0: none).", keys, registry=r
        )
        self._last_success = Gauge(
            names.WORKER_LAST_SUCCESS, "When a task last succeeded (Unix time).", keys, registry=r
        )
        self._duration = Histogram(
            names.WORKER_TASK_DURATION, "Task run time.", keys, buckets=DURATION_BUCKETS_SECONDS, registry=r
        )
        self._latency = Histogram(
            names.WORKER_RECEIVE_TO_ACK,
            "From receipt to ack.",
            keys,
            buckets=DURATION_BUCKETS_SECONDS,
            registry=r,
        )
        self.labels = labels
        self.capacity = capacity
        # Children bound once: .labels() on every message costs more than the increment itself.
        self._received_c = self._received.labels(**labels)
        self._acked_c = self._acked.labels(**labels)
        self._nacked_c = self._nacked.labels(**labels)
        self._retried_c = self._retried.labels(**labels)
        self._lease_c = self._lease.labels(**labels)
        self._empty_c = self._empty.labels(**labels)
        self._kills_c = self._kills.labels(**labels)
        # Gauges of the hot path are read when scraped, not set per message (each set takes a lock).
        self._in_flight_now = 0
        self._last_success_unix_seconds = 0.0
        self._in_flight.labels(**labels).set_function(lambda: self._in_flight_now)
        # A message waiting for a rate-limit token is held but not busy: the operator's per-replica capacity
        # (completions / busy fraction) then stays what an unthrottled replica would do.
        self._waiting_now = 0
        self._share_now = 0.0
        self._busy.labels(**labels).set_function(self._busy_fraction)
        self._busy_time = BusyTime()
        r.register(_BusySecondsCollector(self._busy_time, labels))
        self._share.labels(**labels).set_function(lambda: self._share_now)
        self._last_success.labels(**labels).set_function(lambda: self._last_success_unix_seconds)
        self._duration_c = self._duration.labels(**labels)
        self._latency_c = self._latency.labels(**labels)
        # Export every series we know will exist, at 0, so rates and alerts work from the first scrape.
        for reason in FAILURE_REASONS:
            self._failed.labels(**labels, reason=reason)
            self._dead.labels(**labels, reason=reason)
        self._capacity.labels(**labels).set(capacity)

    def received(self, count: int = 1) -> None:
        self._received_c.inc(count)

    def acked(self, task_seconds: float, receive_to_ack_seconds: float) -> None:
        self._acked_c.inc()
        self._duration_c.observe(task_seconds)
        self._latency_c.observe(receive_to_ack_seconds)
        self._last_success_unix_seconds = time.time()

    def empty_receive(self) -> None:
        self._empty_c.inc()

    def nacked(self) -> None:
        self._nacked_c.inc()

    def failed(self, reason: str, task_seconds: float) -> None:
        self._failed.labels(**self.labels, reason=reason).inc()
        self._duration_c.observe(task_seconds)
        if reason == "time_limit":
            self._kills_c.inc()

    def retried(self) -> None:
        self._retried_c.inc()

    def dead_lettered(self, reason: str) -> None:
        self._dead.labels(**self.labels, reason=reason).inc()

    def lease_extended(self, count: int) -> None:
        self._lease_c.inc(count)

    def _busy_fraction(self) -> float:
        return min(1.0, max(0, self._in_flight_now - self._waiting_now) / self.capacity)

    def set_in_flight(self, in_flight: int) -> None:
        self._in_flight_now = in_flight
        self._busy_time.set_fraction(self._busy_fraction())

    def set_rate_limit(self, waiting: int, share_per_second: float | None) -> None:
        """Messages held waiting for a token, and the share enforced (None: none)."""
        self._waiting_now = waiting
        self._share_now = share_per_second or 0.0
        self._busy_time.set_fraction(self._busy_fraction())
