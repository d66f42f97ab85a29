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

from qc_common import metrics as names

KEYS = ["namespace", "consumer"]


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, KEYS, registry=r)

        def counter(name: str, text: str, extra: str) -> Counter:
            return Counter(name.removesuffix("_total"), text, [*KEYS, extra], registry=r)

        self.backlog = gauge(names.OPERATOR_BACKLOG, "Backlog last read from the source.")
        self.oldest_age = gauge(names.OPERATOR_OLDEST_MESSAGE_AGE, "Age of the oldest unacked message.")
        self.desired = gauge(names.OPERATOR_DESIRED_REPLICAS, "Replicas the last decision asked for.")
        self.current = gauge(names.OPERATOR_CURRENT_REPLICAS, "The Deployment's replicas.")
        self.ready = gauge(names.OPERATOR_READY_REPLICAS, "The Deployment's ready replicas.")
        self.max_replicas = gauge(names.OPERATOR_MAX_REPLICAS, "The spec's maxReplicas.")
        self.throughput = gauge(names.OPERATOR_THROUGHPUT, "Measured messages/s per fully busy replica.")
        self.fallback = gauge(names.OPERATOR_FALLBACK_ACTIVE, "1 while fallback replicas are in use.")
        self.paused = gauge(names.OPERATOR_PAUSED, "1 while scaling is paused by annotation.")
        self.scale_events = counter(names.OPERATOR_SCALE_EVENTS, "Replica changes made.", "direction")
        self.source_errors = counter(names.OPERATOR_SOURCE_ERRORS, "Failed backlog reads.", "source")
        self.reconciles = counter(names.OPERATOR_RECONCILES, "Reconciles and scaling ticks.", "result")
        self.source_latency = Histogram(
            names.OPERATOR_SOURCE_LATENCY, "Backlog read duration.", [*KEYS, "source"], registry=r
        )
        self._gauges = (self.backlog, self.oldest_age, self.desired, self.current, self.ready,
                        self.max_replicas, self.throughput, self.fallback, self.paused)  # fmt: skip

    def forget(self, namespace: str, consumer: str) -> None:
        """Drop a deleted consumer's series."""
        for gauge in self._gauges:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, consumer)


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
