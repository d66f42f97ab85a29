"""`qc_operator.metrics`: series exist from the first tick, come from one `source` label, and a deleted
QueueConsumer leaves no series behind (gauges, counters and histograms alike)."""

from __future__ import annotations

import pytest

from qc_common import api
from qc_common import metrics as names
from qc_operator.metrics import SCALE_REASONS, OperatorMetrics, scale_reason
from qc_operator.plan import Observed, plan
from qc_operator.scaling import ScalingState
from qc_operator.sources.base import BacklogReading
from qc_operator.spec import parse
from qc_operator.status import ConsumerStatus
from qc_operator.workers import WorkerStats
from tests.operator.specs import spec


def series_of(metrics: OperatorMetrics, consumer: str) -> list[str]:
    return [
        f"{sample.name}{sample.labels}"
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.labels.get("consumer") == consumer
    ]


def test_a_deleted_consumer_leaves_no_series_and_its_neighbour_keeps_its_own() -> None:
    metrics = OperatorMetrics()
    the_spec = parse(spec(scaling={"messagesPerReplica": 10}))
    seen = Observed(1, {}, 1, 1, BacklogReading(30), "", WorkerStats({}, 0.0, None, None, None))
    the_plan = plan(the_spec, seen, ScalingState(), ConsumerStatus(), 10.0, 1_010.0, "now")
    for consumer in ("orders", "billing"):
        metrics.series_for("shop", consumer, the_spec.backlog.backlog_kind)
        labels = {"namespace": "shop", "consumer": consumer, "source": "rabbitmq"}
        assert metrics.registry.get_sample_value(names.OPERATOR_SOURCE_ERRORS, labels) == 0.0
        metrics.source_read("shop", consumer, 0.1)
        metrics.reconciled("shop", consumer, "ok")
        metrics.record("shop", consumer, the_spec, the_plan)
    zero = metrics.registry.get_sample_value(
        names.OPERATOR_SCALE_EVENTS,
        {"namespace": "shop", "consumer": "orders", "direction": "down", "reason": "cooldown"},
    )
    assert zero == 0.0, "series that alerts rate() over exist from the first tick, at zero"
    assert series_of(metrics, "orders")
    metrics.forget("shop", "orders")
    assert series_of(metrics, "orders") == []
    billing = series_of(metrics, "billing")
    assert any(names.OPERATOR_SOURCE_LATENCY in s for s in billing)
    assert any(names.OPERATOR_RECONCILES in s for s in billing)


def observed(replicas: int, backlog: float | None, annotations: dict[str, str] | None = None) -> Observed:
    reading = BacklogReading(backlog) if backlog is not None else None
    error = "" if backlog is not None else "connection refused"
    return Observed(
        1, annotations or {}, replicas, replicas, reading, error, WorkerStats({}, 0.0, None, None, None)
    )


@pytest.mark.parametrize(
    ("name", "replicas", "backlog", "annotations", "scaling", "reason"),
    [
        ("from zero", 0, 30.0, None, {}, "activation"),
        ("more backlog", 1, 30.0, None, {}, "backlog"),
        ("idle past the cooldown", 2, 0.0, None, {"cooldownSeconds": 0}, "cooldown"),
        ("source down, fallback", 1, None, None, {"fallbackReplicas": 4}, "fallback"),
        ("paused", 3, 30.0, {api.PAUSED_REPLICAS_ANNOTATION: "1"}, {}, "pause"),
        ("above maxReplicas", 9, 30.0, None, {"maxReplicas": 5}, "bounds"),
    ],
)
def test_each_scale_is_counted_with_the_kind_of_decision_behind_it(
    name: str,
    replicas: int,
    backlog: float | None,
    annotations: dict[str, str] | None,
    scaling: dict[str, object],
    reason: str,
) -> None:
    the_spec = parse(spec(scaling={"messagesPerReplica": 10, **scaling}))
    the_plan = plan(
        the_spec,
        observed(replicas, backlog, annotations),
        ScalingState(),
        ConsumerStatus(),
        10.0,
        1_010.0,
        "now",
    )
    assert the_plan.scales, f"{name}: {the_plan.decision.reason}"
    assert scale_reason(the_plan, the_spec) == reason, the_plan.status.last_scale_reason
    direction = "up" if the_plan.target > replicas else "down"
    assert reason in SCALE_REASONS[direction]
    metrics = OperatorMetrics()
    metrics.series_for("shop", "orders", "rabbitmq")
    metrics.scaled("shop", "orders", the_spec, the_plan)
    labels = {"namespace": "shop", "consumer": "orders", "direction": direction, "reason": reason}
    assert metrics.registry.get_sample_value(names.OPERATOR_SCALE_EVENTS, labels) == 1.0
    metrics.forget("shop", "orders")
    assert series_of(metrics, "orders") == []


def test_the_drain_target_is_exported_for_the_dashboards() -> None:
    metrics = OperatorMetrics()
    the_spec = parse(spec(scaling={"targetDrainSeconds": 45}))
    the_plan = plan(the_spec, observed(1, 30.0), ScalingState(), ConsumerStatus(), 10.0, 1_010.0, "now")
    metrics.record("shop", "orders", the_spec, the_plan)
    labels = {"namespace": "shop", "consumer": "orders"}
    assert metrics.registry.get_sample_value(names.OPERATOR_TARGET_DRAIN, labels) == 45.0
