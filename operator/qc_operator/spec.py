"""The QueueConsumer spec, parsed into typed, validated values.

The CRD's schema (with its defaults and CEL rules) rejects most bad input at the API server; what it
cannot express is checked here and raised as `SpecError`, which the handlers turn into a status condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from qc_operator import scaling

SourceKind = Literal["pubsub", "rabbitmq"]


class SpecError(ValueError):
    """The spec is valid for the schema but cannot be acted on; the message is shown in the status."""


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str

    @staticmethod
    def parse(raw: dict[str, Any] | None) -> SecretKeyRef | None:
        return SecretKeyRef(str(raw["name"]), str(raw["key"])) if raw else None


@dataclass(frozen=True)
class PubSubSource:
    project: str
    subscription: str
    dead_letter_topic: str = ""
    monitoring_endpoint: str = "https://monitoring.googleapis.com"
    credentials: SecretKeyRef | None = None


@dataclass(frozen=True)
class RabbitMQSource:
    queue: str
    connection: SecretKeyRef
    management: SecretKeyRef | None = None
    vhost: str = "/"
    dead_letter_exchange: str = ""


@dataclass(frozen=True)
class PrometheusBacklog:
    server_address: str
    query: str
    bearer_token: SecretKeyRef | None = None


@dataclass(frozen=True)
class WorkerSpec:
    image: str
    task: str
    concurrency: int = 8
    task_time_limit_seconds: int = 300
    max_delivery_attempts: int = 5
    drain_grace_seconds: int | None = None
    image_pull_policy: str | None = None
    service_account_name: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    env: tuple[dict[str, Any], ...] = ()
    pod_template: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueConsumerSpec:
    source_kind: SourceKind
    pubsub: PubSubSource | None
    rabbitmq: RabbitMQSource | None
    backlog: PrometheusBacklog | None
    worker: WorkerSpec
    policy: scaling.ScalingPolicy
    polling_interval_seconds: float


def _rules(raw: dict[str, Any] | None, default: scaling.ScalingRules) -> scaling.ScalingRules:
    if not raw:
        return default
    policies = tuple(
        scaling.RatePolicy(p["type"], int(p["value"]), float(p["periodSeconds"]))
        for p in raw.get("policies", [])
    )
    return scaling.ScalingRules(
        stabilization_window_seconds=float(
            raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
        ),
        policies=policies or default.policies,
        select_policy=raw.get("selectPolicy", default.select_policy),
    )


def parse_policy(raw: dict[str, Any]) -> scaling.ScalingPolicy:
    behavior = raw.get("behavior") or {}
    policy = scaling.ScalingPolicy(
        min_replicas=int(raw.get("minReplicas", 0)),
        max_replicas=int(raw.get("maxReplicas", 10)),
        messages_per_replica=float(raw["messagesPerReplica"]) if raw.get("messagesPerReplica") else None,
        target_drain_seconds=float(raw.get("targetDrainSeconds", scaling.DEFAULT_TARGET_DRAIN_SECONDS)),
        activation_backlog=float(raw.get("activationBacklog", 0)),
        cooldown_seconds=float(raw.get("cooldownSeconds", scaling.DEFAULT_COOLDOWN_SECONDS)),
        tolerance=float(raw.get("tolerance", scaling.DEFAULT_TOLERANCE)),
        scale_up=_rules(behavior.get("scaleUp"), scaling.DEFAULT_SCALE_UP),
        scale_down=_rules(behavior.get("scaleDown"), scaling.DEFAULT_SCALE_DOWN),
        fallback_replicas=int(raw["fallbackReplicas"]) if raw.get("fallbackReplicas") is not None else None,
    )
    if policy.min_replicas > policy.max_replicas:
        raise SpecError(
            f"scaling.minReplicas ({policy.min_replicas}) exceeds maxReplicas ({policy.max_replicas})"
        )
    if policy.fallback_replicas is not None and policy.fallback_replicas > policy.max_replicas:
        raise SpecError(f"scaling.fallbackReplicas ({policy.fallback_replicas}) exceeds maxReplicas")
    return policy


def parse(raw: dict[str, Any]) -> QueueConsumerSpec:
    source = raw.get("source") or {}
    kinds = [k for k in ("pubsub", "rabbitmq") if source.get(k)]
    if len(kinds) != 1:
        raise SpecError("spec.source must set exactly one of pubsub or rabbitmq")
    kind: SourceKind = "pubsub" if kinds[0] == "pubsub" else "rabbitmq"
    pubsub = rabbitmq = None
    if kind == "pubsub":
        p = source["pubsub"]
        pubsub = PubSubSource(
            project=str(p["project"]),
            subscription=str(p["subscription"]),
            dead_letter_topic=str(p.get("deadLetterTopic", "")),
            monitoring_endpoint=str(p.get("monitoringEndpoint", "https://monitoring.googleapis.com")),
            credentials=SecretKeyRef.parse(p.get("credentialsSecretRef")),
        )
    else:
        r = source["rabbitmq"]
        connection = SecretKeyRef.parse(r.get("connectionSecretRef"))
        if connection is None:
            raise SpecError("spec.source.rabbitmq.connectionSecretRef is required")
        rabbitmq = RabbitMQSource(
            queue=str(r["queue"]),
            connection=connection,
            management=SecretKeyRef.parse(r.get("managementSecretRef")),
            vhost=str(r.get("vhost", "/")),
            dead_letter_exchange=str(r.get("deadLetterExchange", "")),
        )
    prometheus = (raw.get("backlog") or {}).get("prometheus")
    backlog = (
        PrometheusBacklog(
            str(prometheus["serverAddress"]),
            str(prometheus["query"]),
            SecretKeyRef.parse(prometheus.get("bearerTokenSecretRef")),
        )
        if prometheus
        else None
    )
    if backlog is None and rabbitmq is not None and rabbitmq.management is None:
        raise SpecError(
            "a RabbitMQ source needs managementSecretRef (or spec.backlog.prometheus) to read the backlog"
        )
    w = raw.get("worker") or {}
    worker = WorkerSpec(
        image=str(w["image"]),
        task=str(w["task"]),
        concurrency=int(w.get("concurrency", 8)),
        task_time_limit_seconds=int(w.get("taskTimeLimitSeconds", 300)),
        max_delivery_attempts=int(w.get("maxDeliveryAttempts", 5)),
        drain_grace_seconds=int(w["drainGraceSeconds"]) if w.get("drainGraceSeconds") is not None else None,
        image_pull_policy=w.get("imagePullPolicy"),
        service_account_name=w.get("serviceAccountName"),
        resources=dict(w.get("resources") or {}),
        env=tuple(dict(e) for e in w.get("env") or []),
        pod_template=dict(w.get("podTemplate") or {}),
    )
    scaling_raw = dict(raw.get("scaling") or {})
    return QueueConsumerSpec(
        source_kind=kind,
        pubsub=pubsub,
        rabbitmq=rabbitmq,
        backlog=backlog,
        worker=worker,
        policy=parse_policy(scaling_raw),
        polling_interval_seconds=float(
            scaling_raw.get("pollingIntervalSeconds", scaling.DEFAULT_POLLING_INTERVAL_SECONDS)
        ),
    )
