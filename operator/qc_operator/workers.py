"""What the workers' own metrics say, once scraped from each pod (`qc_operator.http` scrapes): work in
flight per pod, measured throughput, and whether the queue was found empty since the previous scrape.

Throughput per replica is estimated as completions per second divided by the summed busy fraction: ten
messages a second from pods busy half the time means twenty a second per fully busy replica. That is the
capacity figure the latency target needs, and it does not fall when the queue runs dry. The busy fraction
of an interval is the rise of the pod's busy-time counter over it (`mean_busy_fraction`), not the ratio
read at its two ends: a pod can be idle at both scrapes and busy in between.

A worker counts the receives that, with slots free, got nothing: if any pod's count rose since the previous
scrape, the queue had nothing to give at some moment of that interval (`scaling.present_backlog` uses it
against a backlog reading that may be minutes old). A busy fraction cannot tell that: for tasks much
shorter than the broker round trip, a worker at full speed holds few messages in flight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from qc_common import metrics as names

MIN_BUSY_FOR_ESTIMATE = 0.05  # below this, completions say nothing about capacity: keep the last estimate


@dataclass(frozen=True)
class PodSample:
    acked_total: float
    in_flight: float
    busy_ratio: float
    empty_receives_total: float | None = None  # None: the worker does not export the counter
    failed_by_reason: Mapping[str, float] = field(default_factory=dict)  # task attempts that failed
    rate_share: float | None = None  # the share of the fleet's rate limit it enforces; None: none
    busy_seconds_total: float | None = None  # the busy ratio integrated over time; None: not exported


@dataclass(frozen=True)
class WorkerStats:
    in_flight_by_pod: dict[str, float]
    total_in_flight: float
    throughput_per_replica: float | None
    busy_replicas: float | None  # the sum of the pods' busy fractions; None when no pod answered
    # Some pod's empty-receive counter rose since its previous scrape; None when no pod could be compared.
    queue_found_empty: bool | None
    # Since the previous scrape, over the pods that can be compared: failed attempts by reason, and acks.
    failed_by_reason: Mapping[str, float] = field(default_factory=dict)
    acked: float = 0.0
    rate_shares_by_pod: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def failure_ratio(self) -> float | None:
        """Failed attempts / (failed + acked) since the previous scrape; None when nothing was attempted."""
        failed = sum(self.failed_by_reason.values())
        return failed / (failed + self.acked) if failed + self.acked > 0 else None


def parse_pod_metrics(text: str) -> PodSample:
    acked = in_flight = busy = 0.0
    empty: float | None = None
    share: float | None = None
    busy_seconds: float | None = None
    failed: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == names.WORKER_MESSAGES_ACKED:
                acked += sample.value
            elif sample.name == names.WORKER_TASKS_FAILED:
                reason = sample.labels.get("reason", "unknown")
                failed[reason] = failed.get(reason, 0.0) + sample.value
            elif sample.name == names.WORKER_EMPTY_RECEIVES:
                empty = (empty or 0.0) + sample.value
            elif sample.name == names.WORKER_TASKS_IN_FLIGHT:
                in_flight += sample.value
            elif sample.name == names.WORKER_BUSY_RATIO:
                busy = max(busy, min(sample.value, 1.0))  # a ratio: 5 is one busy pod, NaN none
            elif sample.name == names.WORKER_RATE_SHARE and sample.value > 0:  # 0: no share
                share = sample.value
            elif sample.name == names.WORKER_BUSY_SECONDS:
                busy_seconds = (busy_seconds or 0.0) + sample.value
    return PodSample(acked, in_flight, busy, empty, failed, share, busy_seconds)


def outcomes_since(
    previous: Mapping[str, PodSample], current: Mapping[str, PodSample]
) -> tuple[dict[str, float], float]:
    """(failed attempts by reason, acks) between two scrapes, over the pods present in both whose counters
    did not go down (a restarted container's rise since then is unknown)."""
    failed: dict[str, float] = {}
    acked = 0.0
    for pod, sample in current.items():
        before = previous.get(pod)
        if before is None or sample.acked_total < before.acked_total:
            continue
        rises = {r: v - before.failed_by_reason.get(r, 0.0) for r, v in sample.failed_by_reason.items()}
        if any(rise < 0 for rise in rises.values()):
            continue
        acked += sample.acked_total - before.acked_total
        for reason, rise in rises.items():
            if rise > 0:
                failed[reason] = failed.get(reason, 0.0) + rise
    return failed, acked


def queue_found_empty(previous: Mapping[str, PodSample], current: Mapping[str, PodSample]) -> bool | None:
    """Whether any pod's empty-receive counter rose between two scrapes (pod name -> sample).

    A pod tells nothing without a previous sample, without the counter, or when its counter went down (the
    container restarted, so the rise since then is unknown). None when no pod tells anything.
    """
    told = False
    for pod, sample in current.items():
        before = previous.get(pod)
        if before is None or before.empty_receives_total is None or sample.empty_receives_total is None:
            continue
        if sample.empty_receives_total > before.empty_receives_total:
            return True
        if sample.empty_receives_total == before.empty_receives_total:
            told = True
    return False if told else None


def mean_busy_fraction(before: PodSample, after: PodSample, seconds: float) -> float:
    """A pod's mean busy fraction between two scrapes `seconds` apart: the rise of its busy time over the
    interval when both scrapes have it (and it did not go down: a restart), else the mean of the two
    readings of its ratio, which sees only the two instants (a worker from before the counter). The rise
    counts at most 1: a pod is at most fully busy, whatever a broken exporter or two clocks say."""
    if before.busy_seconds_total is not None and after.busy_seconds_total is not None:
        rise = after.busy_seconds_total - before.busy_seconds_total
        if 0 <= rise < math.inf:  # NaN and infinities from a broken exporter fall back too
            return min(1.0, rise / seconds)
    return (after.busy_ratio + before.busy_ratio) / 2


@dataclass
class ThroughputEstimator:
    """Keeps the previous scrape per pod to turn counters into rates."""

    previous: dict[str, tuple[float, PodSample]] = field(default_factory=dict)
    estimate: float | None = None

    def update(self, samples: Mapping[str, PodSample], now: float) -> float | None:
        completed_per_second = busy = 0.0
        for pod, sample in samples.items():
            before = self.previous.get(pod)
            if before is not None and now > before[0] and sample.acked_total >= before[1].acked_total:
                completed_per_second += (sample.acked_total - before[1].acked_total) / (now - before[0])
                busy += mean_busy_fraction(before[1], sample, now - before[0])
        self.previous = {pod: (now, sample) for pod, sample in samples.items()}
        if busy >= MIN_BUSY_FOR_ESTIMATE and completed_per_second > 0:
            self.estimate = completed_per_second / busy
        return self.estimate


def summarize(samples: Mapping[str, PodSample], estimator: ThroughputEstimator, now: float) -> WorkerStats:
    """The fleet's figures from this scrape (pod name -> sample); updates the estimator's memory."""
    previous = {pod: s for pod, (_, s) in estimator.previous.items()}
    found_empty = queue_found_empty(previous, samples)
    failed, acked = outcomes_since(previous, samples)
    throughput = estimator.update(samples, now)
    in_flight = {pod: s.in_flight for pod, s in samples.items()}
    busy = sum(s.busy_ratio for s in samples.values()) if samples else None
    shares = {pod: s.rate_share for pod, s in samples.items()}
    return WorkerStats(
        in_flight, sum(in_flight.values()), throughput, busy, found_empty, failed, acked, shares
    )
