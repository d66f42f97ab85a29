"""The operator's work for one QueueConsumer: make its children exist, and one scaling tick.

Invoked from `handlers`: `ensure_children` on create/update/resume, `Scaler.tick` from the per-object
daemon every polling interval. Decisions are `scaling.decide`'s; this module gathers the observation,
applies the decision (pod-deletion costs first, then the Deployment's scale) and reports it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from qc_common import api
from qc_operator import builders, scaling, status
from qc_operator.kube import Kube, SecretError
from qc_operator.metrics import OperatorMetrics
from qc_operator.sources import prometheus as promql
from qc_operator.sources import pubsub, rabbitmq, workers
from qc_operator.sources.base import BacklogSource, SourceError
from qc_operator.spec import QueueConsumerSpec, SpecError

log = logging.getLogger(__name__)


async def ensure_children(kube: Kube, body: dict[str, Any], spec: QueueConsumerSpec) -> None:
    """Create what the workers need and roll the Deployment when its pod template changed."""
    namespace = body["metadata"]["namespace"]
    if spec.rabbitmq is not None:
        await kube.secret_exists(namespace, spec.rabbitmq.connection)  # fail early, with a clear condition
    if spec.worker.service_account_name is None:
        await kube.ensure_exists(builders.service_account(body))
    await kube.ensure_exists(builders.metrics_service(body))
    await kube.ensure_exists(builders.pod_disruption_budget(body))
    initial = (body.get("status") or {}).get("desiredReplicas", spec.policy.min_replicas)
    await kube.apply_deployment(builders.deployment(body, spec, int(initial)))


async def backlog_source(kube: Kube, namespace: str, spec: QueueConsumerSpec) -> BacklogSource:
    """The configured backlog source, with its credentials read from their Secrets."""
    if spec.backlog is not None:
        p = spec.backlog
        token = await kube.secret_value(namespace, p.bearer_token) if p.bearer_token else None
        return promql.PrometheusBacklog(p.server_address, p.query, token)
    if spec.rabbitmq is not None:
        if spec.rabbitmq.management is None:
            raise SpecError("a RabbitMQ source needs managementSecretRef to read the backlog")
        url = await kube.secret_value(namespace, spec.rabbitmq.management)
        return rabbitmq.RabbitMQBacklog(url, spec.rabbitmq.queue, spec.rabbitmq.vhost)
    assert spec.pubsub is not None
    ps = spec.pubsub
    token = await kube.secret_value(namespace, ps.credentials) if ps.credentials else None
    return pubsub.PubSubBacklog(ps.project, ps.subscription, ps.monitoring_endpoint, token)


def deletion_costs(in_flight_by_pod: dict[str, float]) -> dict[str, int]:
    """Busier pods cost more to delete, so the ReplicaSet removes idle ones first."""
    return {pod: round(in_flight) for pod, in_flight in in_flight_by_pod.items()}


def pause_override(annotations: dict[str, str], current: int) -> tuple[int | None, str]:
    """(replicas to hold, message) when paused by annotation; (None, "") otherwise."""
    raw = annotations.get(api.PAUSED_REPLICAS_ANNOTATION)
    if raw is not None:
        if raw.strip().isdigit():
            return int(raw), f"paused by {api.PAUSED_REPLICAS_ANNOTATION} at {int(raw)} replicas"
        return (
            current,
            f"paused, but {api.PAUSED_REPLICAS_ANNOTATION}={raw!r} is not a number: holding {current}",
        )
    if annotations.get(api.PAUSED_ANNOTATION, "").lower() == "true":
        return current, f"paused by {api.PAUSED_ANNOTATION}: holding {current} replicas"
    return None, ""


@dataclass
class Scaler:
    """Per-QueueConsumer scaling memory: the decision state, throughput estimator, last status written."""

    kube: Kube
    session: aiohttp.ClientSession
    metrics: OperatorMetrics
    state: scaling.ScalingState | None = None
    estimator: workers.ThroughputEstimator = field(default_factory=workers.ThroughputEstimator)
    last_status: dict[str, Any] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message) to post

    async def tick(self, body: dict[str, Any], spec: QueueConsumerSpec) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        labels = {"namespace": namespace, "consumer": name}
        previous = dict(body.get("status") or {})
        # Series that dashboards and alerts rate() over exist from the first tick, at zero.
        self.metrics.source_errors.labels(**labels, source=spec.source_kind)
        for direction in ("up", "down"):
            self.metrics.scale_events.labels(**labels, direction=direction)
        if self.state is None:  # first tick after (re)start: continue from what the status recorded
            self.state = status.decode_state(previous.get("scalingState"), time.monotonic(), time.time())
            self.last_status = previous
        deployment_name = builders.worker_name(name)
        deployment = await self.kube.deployment_state(namespace, deployment_name)
        if deployment is None:  # deleted by someone, or not created yet: heal it, then scale it
            await ensure_children(self.kube, body, spec)
            deployment = await self.kube.deployment_state(namespace, deployment_name)
        if deployment is None:
            raise SpecError(f"the worker Deployment {deployment_name!r} does not exist yet")
        current = deployment.replicas

        source_message = ""
        reading = None
        try:
            source = await backlog_source(self.kube, namespace, spec)
            started = time.monotonic()
            try:
                reading = await source.read(self.session)
            finally:
                self.metrics.source_latency.labels(**labels, source=source.kind).observe(
                    time.monotonic() - started
                )
        except (SourceError, SecretError) as error:
            source_message = str(error)
            self.metrics.source_errors.labels(**labels, source=spec.source_kind).inc()

        # A fleet at zero with no pods left has nothing to scrape: skip the list (most consumers, most ticks).
        has_pods = deployment.replicas > 0 or deployment.pods > 0
        pods = await self.kube.worker_pods(namespace, name) if has_pods else []
        endpoints = {p.name: p.metrics_url for p in pods if p.metrics_url and not p.terminating}
        stats = await workers.read_workers(self.session, endpoints, self.estimator)
        observation = scaling.Observation(
            backlog_messages=reading.messages if reading else None,
            throughput_per_replica=stats.throughput_per_replica,
            in_flight_messages=stats.total_in_flight,
            oldest_message_age_seconds=reading.oldest_message_age_seconds if reading else None,
            busy_replicas=stats.busy_replicas,
            # A worker with free slots got nothing from the queue since the previous tick: fresh, where the
            # backlog reading may be minutes old.
            queue_found_empty=stats.queue_found_empty,
        )
        decision = scaling.decide(spec.policy, observation, current, self.state, time.monotonic())
        self.state = decision.state
        annotations = meta.get("annotations") or {}
        paused_replicas, paused_message = pause_override(annotations, current)
        target = paused_replicas if paused_replicas is not None else decision.replicas

        scaled = False
        if target != current:
            if target < current:  # idle pods first: costs before the ReplicaSet picks victims
                for pod, cost in deletion_costs(stats.in_flight_by_pod).items():
                    known = next((p.deletion_cost for p in pods if p.name == pod), None)
                    if known != cost:
                        await self.kube.set_deletion_cost(namespace, pod, cost)
            await self.kube.scale(namespace, deployment_name, target)
            scaled = True
            direction = "up" if target > current else "down"
            self.metrics.scale_events.labels(**labels, direction=direction).inc()
            reason = paused_message or decision.reason
            self.events.append(("Normal", "Scaled", reason))
            log.info("%s/%s: %s", namespace, name, reason)
        if source_message and (self.last_status or {}).get("lastSourceError") != source_message:
            self.events.append(("Warning", "SourceError", source_message))

        now = status.now_rfc3339()
        conditions = [
            status.condition(
                "Ready", True, "Reconciled", "the worker Deployment exists and the spec is valid"
            ),
            status.condition(
                "Active", decision.active, "Backlog" if decision.active else "Idle", decision.reason
            ),
            status.condition(
                "Fallback",
                decision.fallback,
                "SourceFailed" if decision.fallback else "SourceHealthy",
                decision.reason if decision.fallback else "the backlog source answers",
            ),
            status.condition(
                "Paused",
                paused_replicas is not None,
                "Annotation" if paused_message else "NotPaused",
                paused_message or "scaling decisions are applied",
            ),
            status.condition(
                "SourceError",
                bool(source_message),
                "ReadFailed" if source_message else "ReadOK",
                source_message or "the last backlog read succeeded",
            ),
        ]
        new_status: dict[str, Any] = {
            "observedGeneration": meta.get("generation"),
            "source": spec.source_kind if spec.backlog is None else f"{spec.source_kind} (promql)",
            "backlog": reading.messages if reading else previous.get("backlog"),
            "oldestMessageAgeSeconds": status.round_significant(reading.oldest_message_age_seconds)
            if reading
            else None,
            "throughputPerReplica": status.round_significant(stats.throughput_per_replica, 2),
            "inFlight": stats.total_in_flight,
            "replicas": target,
            "desiredReplicas": decision.replicas,
            "readyReplicas": deployment.ready_replicas,
            "conditions": status.merge_conditions(previous.get("conditions") or [], conditions, now),
            "lastSourceError": source_message or None,
        }
        if scaled:
            new_status["lastScaleTime"] = now
            new_status["lastScaleReason"] = paused_message or decision.reason
            new_status["scalingState"] = status.encode_state(decision.state, time.monotonic(), time.time())
        self._record_metrics(labels, new_status, decision, spec, paused_replicas is not None)
        comparable = {k: v for k, v in new_status.items() if k not in ("lastScaleTime", "lastScaleReason")}
        before = {k: (self.last_status or {}).get(k) for k in comparable}
        if comparable != before or scaled:
            await self.kube.patch_status(namespace, name, new_status)
            self.last_status = {**(self.last_status or {}), **new_status}

    def _record_metrics(
        self, labels: dict[str, str], new_status: dict[str, Any], decision: scaling.Decision,
        spec: QueueConsumerSpec, paused: bool,
    ) -> None:  # fmt: skip
        if new_status["backlog"] is not None:
            self.metrics.backlog.labels(**labels).set(new_status["backlog"])
        if new_status["oldestMessageAgeSeconds"] is not None:
            self.metrics.oldest_age.labels(**labels).set(new_status["oldestMessageAgeSeconds"])
        if new_status["throughputPerReplica"] is not None:
            self.metrics.throughput.labels(**labels).set(new_status["throughputPerReplica"])
        self.metrics.desired.labels(**labels).set(decision.replicas)
        self.metrics.current.labels(**labels).set(new_status["replicas"])
        self.metrics.ready.labels(**labels).set(new_status["readyReplicas"])
        self.metrics.max_replicas.labels(**labels).set(spec.policy.max_replicas)
        self.metrics.fallback.labels(**labels).set(1 if decision.fallback else 0)
        self.metrics.paused.labels(**labels).set(1 if paused else 0)
