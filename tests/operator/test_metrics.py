"""`qc_operator.metrics`: series exist from the first tick, come from one `source` label, and a deleted
QueueConsumer leaves no series behind (gauges, counters and histograms alike)."""

from __future__ import annotations

from qc_common import metrics as names
from qc_operator.metrics import OperatorMetrics
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
        labels = metrics.series_for("shop", consumer, the_spec.backlog.backlog_kind)
        assert labels == {"namespace": "shop", "consumer": consumer, "source": "rabbitmq"}
        metrics.source_latency.labels(**labels).observe(0.1)
        metrics.reconciled("shop", consumer, "ok")
        metrics.record("shop", consumer, the_spec, the_plan)
    zero = metrics.registry.get_sample_value(
        names.OPERATOR_SCALE_EVENTS, {"namespace": "shop", "consumer": "orders", "direction": "down"}
    )
    assert zero == 0.0, "series that alerts rate() over exist from the first tick, at zero"
    assert series_of(metrics, "orders")
    metrics.forget("shop", "orders")
    assert series_of(metrics, "orders") == []
    billing = series_of(metrics, "billing")
    assert any(names.OPERATOR_SOURCE_LATENCY in s for s in billing)
    assert any(names.OPERATOR_RECONCILES in s for s in billing)
