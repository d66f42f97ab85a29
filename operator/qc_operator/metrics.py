"""The operator's own Prometheus metrics (registry created at start-up) and their HTTP endpoint."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

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


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, KEYS, registry=r)

        def counter(name: str, text: str, *extra: str) -> Counter:
            return Counter(name.removesuffix("_total"), text, [*KEYS, *extra], registry=r)

        self.backlog = gauge(names.OPERATOR_BACKLOG, "Backlog last read from the source.")
        self.oldest_age = gauge(names.OPERATOR_OLDEST_MESSAGE_AGE, "Age of the oldest unacked message.")
        self.desired = gauge(names.OPERATOR_DESIRED_REPLICAS, "Replicas the last decision asked for.")
        self.current = gauge(names.OPERATOR_CURRENT_REPLICAS, "The Deployment's replicas.")
        self.ready = gauge(names.OPERATOR_READY_REPLICAS, "The Deployment's ready replicas.")
        self.max_replicas = gauge(names.OPERATOR_MAX_REPLICAS, "The spec's maxReplicas.")
        self.throughput = gauge(names.OPERATOR_THROUGHPUT, "Measured messages/s per fully busy replica.")
        self.target_drain = gauge(names.OPERATOR_TARGET_DRAIN, "The spec's scaling.targetDrainSeconds.")
        self.fallback = gauge(names.OPERATOR_FALLBACK_ACTIVE, "1 while fallback replicas are in use.")
        self.paused = gauge(names.OPERATOR_PAUSED, "1 while scaling is paused by annotation.")
        self.downstream_failing = gauge(
            names.OPERATOR_DOWNSTREAM_FAILING, "1 while failing tasks hold scale-up back."
        )
        self.scale_events = counter(
            names.OPERATOR_SCALE_EVENTS, "Replica changes made.", "direction", "reason"
        )
        self.source_errors = counter(names.OPERATOR_SOURCE_ERRORS, "Failed backlog reads.", "source")
        self.reconciles = counter(names.OPERATOR_RECONCILES, "Reconciles and scaling ticks.", "result")
        self.source_latency = Histogram(
            names.OPERATOR_SOURCE_LATENCY, "Backlog read duration.", [*KEYS, "source"], registry=r
        )
        self._gauges = (
            self.backlog,
            self.oldest_age,
            self.desired,
            self.current,
            self.ready,
            self.max_replicas,
            self.throughput,
            self.target_drain,
            self.fallback,
            self.paused,
            self.downstream_failing,
        )
        # Every labelled series of one consumer, to drop them all when it is deleted.
        self._series: dict[tuple[str, str], set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}

    def series_for(self, namespace: str, consumer: str, source: str) -> dict[str, str]:
        """The labels of the per-source series; creates, at zero, the series that dashboards and alerts
        rate() over, so they exist from the first tick. `source` is where the backlog is read from."""
        labels = {"namespace": namespace, "consumer": consumer, "source": source}
        self.source_errors.labels(**labels)
        for direction, reasons in SCALE_REASONS.items():
            for reason in reasons:
                self.scale_events.labels(namespace, consumer, direction, reason)
                self._remember(namespace, consumer, self.scale_events, direction, reason)
        self._remember(namespace, consumer, self.source_errors, source)
        self._remember(namespace, consumer, self.source_latency, source)
        return labels

    def reconciled(self, namespace: str, consumer: str, result: str) -> None:
        self.reconciles.labels(namespace=namespace, consumer=consumer, result=result).inc()
        self._remember(namespace, consumer, self.reconciles, result)

    def scaled(self, namespace: str, consumer: str, spec: QueueConsumerSpec, the_plan: Plan) -> None:
        """Count a scale the plan made, by direction and by the kind of decision behind it."""
        direction = "up" if the_plan.target > the_plan.current else "down"
        reason = scale_reason(the_plan, spec)
        self.scale_events.labels(namespace, consumer, direction, reason).inc()
        self._remember(namespace, consumer, self.scale_events, direction, reason)

    def _remember(self, namespace: str, consumer: str, metric: MetricWrapperBase, *extra: str) -> None:
        self._series.setdefault((namespace, consumer), set()).add((metric, (namespace, consumer, *extra)))

    def record(self, namespace: str, consumer: str, spec: QueueConsumerSpec, the_plan: Plan) -> None:
        """The gauges after a tick's plan was applied."""
        keys = (namespace, consumer)
        state = the_plan.status
        if state.backlog is not None:
            self.backlog.labels(*keys).set(state.backlog)
        if state.oldest_message_age_seconds is not None:
            self.oldest_age.labels(*keys).set(state.oldest_message_age_seconds)
        if state.throughput_per_replica is not None:
            self.throughput.labels(*keys).set(state.throughput_per_replica)
        self.desired.labels(*keys).set(the_plan.decision.replicas)
        self.current.labels(*keys).set(the_plan.target)
        self.ready.labels(*keys).set(state.ready_replicas)
        self.max_replicas.labels(*keys).set(spec.policy.max_replicas)
        if spec.policy.target_drain_seconds is not None:
            self.target_drain.labels(*keys).set(spec.policy.target_drain_seconds)
        self.fallback.labels(*keys).set(1 if the_plan.decision.fallback else 0)
        self.paused.labels(*keys).set(1 if the_plan.paused else 0)
        self.downstream_failing.labels(*keys).set(1 if the_plan.held_for_downstream else 0)

    def forget(self, namespace: str, consumer: str) -> None:
        """Drop every series of a deleted consumer: gauges, counters and histograms alike."""
        for gauge in self._gauges:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, consumer)
        for metric, labels in self._series.pop((namespace, consumer), set()):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)


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
