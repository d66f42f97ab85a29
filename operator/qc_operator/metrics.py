"""The operator's own Prometheus metrics (registry created at start-up) and their HTTP endpoint.

Invoked from `handlers` (a registry in kopf's memo) and `reconcile` (each tick records into it). Every
series is per QueueConsumer, so they are kept as plain numbers, one small `_Series` per QueueConsumer, and
turned into metric families only when scraped (`_Collector`): a prometheus_client child per series (a
value and a lock each, a histogram's per bucket) cost about 20 KiB per QueueConsumer, 200 MiB at 10,000.
Updates and scrapes both run on the event loop's thread, so the numbers need no lock.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from qc_common import metrics as names
from qc_operator.plan import Plan
from qc_operator.spec import QueueConsumerSpec

KEYS = ["namespace", "consumer"]
# The scale events' `reason` label: what kind of decision moved the replicas (the full sentence is in the
# status and the Kubernetes Event; a label must stay low-cardinality). Pairs that can happen, by direction.
SCALE_REASONS = {
    "up": ("activation", "backlog", "bounds", "fallback", "pause"),
    "down": ("cooldown", "backlog", "bounds", "fallback", "pause"),
}
# The gauges, in the order `_Series.gauges` holds them: (name, help).
GAUGES = (
    (names.OPERATOR_BACKLOG, "Backlog last read from the source."),
    (names.OPERATOR_OLDEST_MESSAGE_AGE, "Age of the oldest unacked message."),
    (names.OPERATOR_DESIRED_REPLICAS, "Replicas the last decision asked for."),
    (names.OPERATOR_CURRENT_REPLICAS, "The Deployment's replicas."),
    (names.OPERATOR_READY_REPLICAS, "The Deployment's ready replicas."),
    (names.OPERATOR_MAX_REPLICAS, "The spec's maxReplicas."),
    (names.OPERATOR_THROUGHPUT, "Measured messages/s per fully busy replica."),
    (names.OPERATOR_TARGET_DRAIN, "The spec's scaling.targetDrainSeconds."),
    (names.OPERATOR_FALLBACK_ACTIVE, "1 while fallback replicas are in use."),
    (names.OPERATOR_PAUSED, "1 while scaling is paused by annotation."),
    (names.OPERATOR_DOWNSTREAM_FAILING, "1 while failing tasks hold scale-up back."),
)
# prometheus_client's default histogram buckets (seconds), the ones the dashboards were made with.
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def scale_reason(the_plan: Plan, spec: QueueConsumerSpec) -> str:
    """The kind of decision behind a scale: pause, fallback, the replica bounds, activation from zero,
    cooldown to zero, or the backlog (the scaler's recommendation)."""
    policy, current = spec.policy, the_plan.current
    if the_plan.paused:
        return "pause"
    if the_plan.decision.fallback:
        return "fallback"
    if current > policy.max_replicas or 0 < current < policy.min_replicas:
        return "bounds"
    if current == 0:
        return "activation"
    if the_plan.target == 0 and not the_plan.decision.active:
        return "cooldown"
    return "backlog"


@dataclass(slots=True)
class _Series:
    """One QueueConsumer's series as plain numbers; a gauge never set (None) is not exported."""

    gauges: list[float | None] = field(default_factory=lambda: [None] * len(GAUGES))
    scale_events: dict[tuple[str, str], float] = field(default_factory=dict)  # (direction, reason)
    reconciles: dict[str, float] = field(default_factory=dict)  # result -> count
    source: str | None = None  # the per-source series exist once a tick named it
    source_errors: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_SECONDS) + 1))
    latency_sum_seconds: float = 0.0
    created_seconds: float = field(default_factory=time.time)


class _Collector(Collector):
    def __init__(self, series: dict[tuple[str, str], _Series]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        everything = list(self._series.items())
        for index, (name, text) in enumerate(GAUGES):
            gauge = GaugeMetricFamily(name, text, labels=KEYS)
            for keys, one in everything:
                value = one.gauges[index]
                if value is not None:
                    gauge.add_metric(keys, value)
            yield gauge
        scale_events = CounterMetricFamily(
            names.OPERATOR_SCALE_EVENTS, "Replica changes made.", labels=[*KEYS, "direction", "reason"]
        )
        reconciles = CounterMetricFamily(
            names.OPERATOR_RECONCILES, "Reconciles and scaling ticks.", labels=[*KEYS, "result"]
        )
        errors = CounterMetricFamily(
            names.OPERATOR_SOURCE_ERRORS, "Failed backlog reads.", labels=[*KEYS, "source"]
        )
        latency = HistogramMetricFamily(
            names.OPERATOR_SOURCE_LATENCY, "Backlog read duration.", labels=[*KEYS, "source"]
        )
        bounds = [*(repr(b) for b in LATENCY_BUCKETS_SECONDS), "+Inf"]
        for keys, one in everything:
            created = one.created_seconds
            for (direction, reason), count in one.scale_events.items():
                scale_events.add_metric([*keys, direction, reason], count, created=created)
            for result, count in one.reconciles.items():
                reconciles.add_metric([*keys, result], count, created=created)
            if one.source is not None:
                errors.add_metric([*keys, one.source], one.source_errors, created=created)
                cumulative, buckets = 0, []
                for bound, count in zip(bounds, one.latency_counts, strict=True):
                    cumulative += count
                    buckets.append((bound, float(cumulative)))
                latency.add_metric([*keys, one.source], buckets, one.latency_sum_seconds)
        yield from (scale_events, reconciles, errors, latency)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._series: dict[tuple[str, str], _Series] = {}
        self.registry.register(_Collector(self._series))

    def _of(self, namespace: str, consumer: str) -> _Series:
        one = self._series.get((namespace, consumer))
        if one is None:
            one = self._series[(namespace, consumer)] = _Series()
        return one

    def series_for(self, namespace: str, consumer: str, source: str) -> None:
        """Names the source of the per-source series and creates, at zero, the series that dashboards and
        alerts rate() over, so they exist from the first tick. `source` is where the backlog is read from."""
        one = self._of(namespace, consumer)
        if one.source != source:  # a new source starts its own series
            one.source, one.source_errors = source, 0.0
            one.latency_counts = [0] * len(one.latency_counts)
            one.latency_sum_seconds = 0.0
        for direction, reasons in SCALE_REASONS.items():
            for reason in reasons:
                one.scale_events.setdefault((direction, reason), 0.0)

    def source_read(self, namespace: str, consumer: str, seconds: float) -> None:
        """A backlog read's duration (after `series_for` named the source)."""
        one = self._of(namespace, consumer)
        one.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
        one.latency_sum_seconds += seconds

    def source_failed(self, namespace: str, consumer: str) -> None:
        self._of(namespace, consumer).source_errors += 1

    def reconciled(self, namespace: str, consumer: str, result: str) -> None:
        reconciles = self._of(namespace, consumer).reconciles
        reconciles[result] = reconciles.get(result, 0.0) + 1

    def scaled(self, namespace: str, consumer: str, spec: QueueConsumerSpec, the_plan: Plan) -> None:
        """Count a scale the plan made, by direction and by the kind of decision behind it."""
        direction = "up" if the_plan.target > the_plan.current else "down"
        events = self._of(namespace, consumer).scale_events
        key = (direction, scale_reason(the_plan, spec))
        events[key] = events.get(key, 0.0) + 1

    def record(self, namespace: str, consumer: str, spec: QueueConsumerSpec, the_plan: Plan) -> None:
        """The gauges after a tick's plan was applied (in the order of GAUGES)."""
        state, gauges = the_plan.status, self._of(namespace, consumer).gauges
        updates = (
            state.backlog,
            state.oldest_message_age_seconds,
            the_plan.decision.replicas,
            the_plan.target,
            state.ready_replicas,
            spec.policy.max_replicas,
            state.throughput_per_replica,
            spec.policy.target_drain_seconds,
            1 if the_plan.decision.fallback else 0,
            1 if the_plan.paused else 0,
            1 if the_plan.held_for_downstream else 0,
        )
        for index, value in enumerate(updates):
            if value is not None:  # an unknown value keeps the last one known
                gauges[index] = float(value)

    def forget(self, namespace: str, consumer: str) -> None:
        """Drop every series of a deleted consumer: gauges, counters and histograms alike."""
        self._series.pop((namespace, consumer), None)


async def serve(registry: CollectorRegistry, port: int) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
