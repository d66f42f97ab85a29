"""The QueueConsumer spec, parsed into typed, validated values.

The CRD's schema rejects most bad input at the API server and is the one place the defaults live
(`schema.with_defaults` fills them for specs that never went through one); what the schema cannot
express is checked here and raised as `SpecError`, which the handlers turn into a status condition. Each
source parses its own settings (`qc_operator.sources`); this module parses the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qc_operator import scaling, schema
from qc_operator.errors import SpecError
from qc_operator.sources import BACKLOG_SOURCES, MESSAGE_SOURCES
from qc_operator.sources.base import BacklogSettings, MessageSourceSettings, SecretKeyRef

__all__ = ["QueueConsumerSpec", "SecretKeyRef", "SpecError", "WorkerSpec", "parse", "parse_policy"]


@dataclass(frozen=True)
class WorkerSpec:
    image: str
    task: str
    concurrency: int
    task_time_limit_seconds: int
    max_delivery_attempts: int
    drain_grace_seconds: int | None = None  # None: the task time limit
    max_tasks_per_child: int = 0  # 0: a pool process is never replaced for its task count
    max_memory_per_child_mib: int = 0  # 0: ... nor for its resident memory
    image_pull_policy: str | None = None
    service_account_name: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    env: tuple[dict[str, Any], ...] = ()
    pod_template: dict[str, Any] = field(default_factory=dict)
    max_messages_per_second: float | None = None  # the fleet's budget, split among the pods (`budget`)

    @property
    def effective_drain_grace_seconds(self) -> int:
        if self.drain_grace_seconds is not None:
            return self.drain_grace_seconds
        return self.task_time_limit_seconds


@dataclass(frozen=True)
class DownstreamProtection:
    """No scale-up into a failing downstream (`scaling.downstreamProtection`)."""

    enabled: bool
    failure_ratio: float
    minimum_attempts: int


@dataclass(frozen=True)
class QueueConsumerSpec:
    source: MessageSourceSettings
    backlog: BacklogSettings  # the source itself, or spec.backlog's reader when set
    worker: WorkerSpec
    policy: scaling.ScalingPolicy
    polling_interval_seconds: float
    downstream: DownstreamProtection

    @property
    def source_kind(self) -> str:
        return self.source.kind

    @property
    def backlog_description(self) -> str:
        """What the status's `source` says: the broker, and where its backlog is read when elsewhere."""
        if self.backlog.backlog_kind == self.source.kind:
            return self.source.kind
        return f"{self.source.kind} ({self.backlog.backlog_kind})"


def _one_of(section: Mapping[str, Any], known: Mapping[str, Any], where: str) -> tuple[str, Any] | None:
    chosen = [key for key in known if section.get(key)]
    if len(chosen) > 1 or (not chosen and section):
        raise SpecError(f"{where} must set exactly one of {', '.join(known)}")
    return (chosen[0], section[chosen[0]]) if chosen else None


def _rules(raw: Mapping[str, Any], direction: str) -> scaling.ScalingRules:
    # An explicit empty list of policies means the defaults, as when the field is left out.
    policies = raw.get("policies") or schema.default_at("scaling", "behavior", direction, "policies")
    return scaling.ScalingRules(
        stabilization_window_seconds=float(raw["stabilizationWindowSeconds"]),
        policies=_rate_policies(policies),
        select_policy=raw["selectPolicy"],
    )


def _rate_policies(raw: Iterable[Mapping[str, Any]]) -> tuple[scaling.RatePolicy, ...]:
    return tuple(scaling.RatePolicy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in raw)


def _hpa_rules(raw: Mapping[str, Any], default: scaling.ScalingRules) -> scaling.ScalingRules:
    """`scaling.hpa.behavior.<direction>`: each field left out is the HPA's default, as the HPA fills it."""
    policies = raw.get("policies")
    return scaling.ScalingRules(
        stabilization_window_seconds=float(
            raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
        ),
        policies=_rate_policies(policies) if policies else default.policies,
        select_policy=raw.get("selectPolicy", default.select_policy),
    )


def parse_policy(raw: Mapping[str, Any]) -> scaling.ScalingPolicy:
    """`spec.scaling` (defaults filled from the CRD for whatever is left out)."""
    raw = schema.with_defaults({"scaling": dict(raw)})["scaling"]
    behavior = raw["behavior"]
    fallback = int(raw["fallbackReplicas"]) if raw.get("fallbackReplicas") is not None else None
    if raw["preset"] == "hpa":
        if not raw.get("messagesPerReplica"):
            raise SpecError("scaling.preset hpa needs messagesPerReplica (the HPA's AverageValue target)")
        hpa = raw.get("hpa") or {}
        hpa_behavior = hpa.get("behavior") or {}
        up = hpa_behavior.get("scaleUp") or {}
        down = hpa_behavior.get("scaleDown") or {}
        policy = scaling.hpa_compatible(
            int(raw["minReplicas"]),
            int(raw["maxReplicas"]),
            float(raw["messagesPerReplica"]),
            activation_backlog=float(raw["activationBacklog"]),
            fallback_replicas=fallback,
            cooldown_seconds=float(hpa.get("cooldownSeconds", scaling.KEDA_COOLDOWN_SECONDS)),
            scale_up=_hpa_rules(up, scaling.HPA_SCALE_UP),
            scale_down=_hpa_rules(down, scaling.HPA_SCALE_DOWN),
            scale_up_tolerance=_optional_float(up.get("tolerance")),
            scale_down_tolerance=_optional_float(down.get("tolerance")),
        )
        return _checked(policy)
    policy = scaling.ScalingPolicy(
        min_replicas=int(raw["minReplicas"]),
        max_replicas=int(raw["maxReplicas"]),
        messages_per_replica=float(raw["messagesPerReplica"]) if raw.get("messagesPerReplica") else None,
        target_drain_seconds=float(raw["targetDrainSeconds"]),
        activation_backlog=float(raw["activationBacklog"]),
        cooldown_seconds=float(raw["cooldownSeconds"]),
        tolerance=float(raw["tolerance"]),
        scale_up=_rules(behavior["scaleUp"], "scaleUp"),
        scale_down=_rules(behavior["scaleDown"], "scaleDown"),
        fallback_replicas=fallback,
        scale_up_tolerance=_optional_float(behavior["scaleUp"].get("tolerance")),
        scale_down_tolerance=_optional_float(behavior["scaleDown"].get("tolerance")),
    )
    return _checked(policy)


def _optional_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _checked(policy: scaling.ScalingPolicy) -> scaling.ScalingPolicy:
    if policy.min_replicas > policy.max_replicas:
        raise SpecError(
            f"scaling.minReplicas ({policy.min_replicas}) exceeds maxReplicas ({policy.max_replicas})"
        )
    if policy.fallback_replicas is not None and policy.fallback_replicas > policy.max_replicas:
        raise SpecError(f"scaling.fallbackReplicas ({policy.fallback_replicas}) exceeds maxReplicas")
    return policy


def _worker(w: Mapping[str, Any]) -> WorkerSpec:
    return WorkerSpec(
        image=str(w["image"]),
        task=str(w["task"]),
        concurrency=int(w["concurrency"]),
        task_time_limit_seconds=int(w["taskTimeLimitSeconds"]),
        max_delivery_attempts=int(w["maxDeliveryAttempts"]),
        max_tasks_per_child=int(w["maxTasksPerChild"]),
        max_memory_per_child_mib=int(w["maxMemoryPerChildMiB"]),
        drain_grace_seconds=int(w["drainGraceSeconds"]) if w.get("drainGraceSeconds") is not None else None,
        image_pull_policy=w.get("imagePullPolicy"),
        service_account_name=w.get("serviceAccountName"),
        resources=dict(w.get("resources") or {}),
        env=tuple(dict(e) for e in w.get("env") or []),
        pod_template=dict(w.get("podTemplate") or {}),
        max_messages_per_second=_rate(w.get("maxMessagesPerSecond")),
    )


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    rate = float(value)
    if not rate > 0 or rate == float("inf"):  # the schema says so too; this is for specs it never saw
        raise SpecError(f"worker.maxMessagesPerSecond must be a positive number, not {value!r}")
    return rate


def parse(raw_spec: Mapping[str, Any]) -> QueueConsumerSpec:
    """The whole spec; raises SpecError with a message for the status when it cannot be acted on."""
    try:
        return _parse(schema.with_defaults(dict(raw_spec)))
    except SpecError:
        raise
    except KeyError as error:  # only without an API server: it enforces the schema's required fields
        raise SpecError(f"the spec has no {error.args[0]!r} where the schema requires it") from error
    except (TypeError, ValueError) as error:
        raise SpecError(f"the spec is malformed: {error}") from error


def _parse(raw: dict[str, Any]) -> QueueConsumerSpec:
    backlog_choice = _one_of(raw.get("backlog") or {}, BACKLOG_SOURCES, "spec.backlog")
    source_choice = _one_of(raw.get("source") or {}, MESSAGE_SOURCES, "spec.source")
    if source_choice is None:
        raise SpecError(f"spec.source must set exactly one of {', '.join(MESSAGE_SOURCES)}")
    source_key, source_raw = source_choice
    source = MESSAGE_SOURCES[source_key](source_raw, backlog_choice is not None)
    backlog = BACKLOG_SOURCES[backlog_choice[0]](backlog_choice[1]) if backlog_choice else source
    if "worker" not in raw:
        raise SpecError("spec.worker is required")
    scaling_raw = raw["scaling"]
    return QueueConsumerSpec(
        source=source,
        backlog=backlog,
        worker=_worker(raw["worker"]),
        policy=parse_policy(scaling_raw),
        polling_interval_seconds=float(scaling_raw["pollingIntervalSeconds"]),
        downstream=DownstreamProtection(
            enabled=bool(scaling_raw["downstreamProtection"]["enabled"]),
            failure_ratio=float(scaling_raw["downstreamProtection"]["failureRatio"]),
            minimum_attempts=int(scaling_raw["downstreamProtection"]["minimumAttempts"]),
        ),
    )
