"""`qc_operator.plan`: one tick's target, writes, status and Events from plain observations."""

from __future__ import annotations

import dataclasses

import pytest

from qc_common import api
from qc_operator import scaling
from qc_operator.plan import (
    COUNTS_PENDING_GRACE_SECONDS,
    Event,
    Observed,
    Plan,
    deletion_costs,
    pause_override,
    plan,
)
from qc_operator.sources.base import BacklogReading
from qc_operator.spec import QueueConsumerSpec, parse
from qc_operator.status import ConsumerStatus
from qc_operator.workers import WorkerStats
from tests.operator.specs import spec

NOW = "2026-12-02T08:00:00Z"
IDLE = WorkerStats({}, 0.0, None, None, None)


def consumer(**scaling_spec: object) -> QueueConsumerSpec:
    return parse(spec(scaling={"messagesPerReplica": 10, "maxReplicas": 8, **scaling_spec}))


def observed(
    backlog: float | None,
    replicas: int = 1,
    source_error: str = "",
    annotations: dict[str, str] | None = None,
    workers: WorkerStats = IDLE,
    known: dict[str, int | None] | None = None,
) -> Observed:
    return Observed(
        generation=3,
        annotations=annotations or {},
        replicas=replicas,
        ready_replicas=replicas,
        reading=BacklogReading(backlog) if backlog is not None else None,
        source_error=source_error,
        workers=workers,
        known_deletion_costs=known or {},
    )


def tick(the_spec: QueueConsumerSpec, seen: Observed, last: ConsumerStatus | None = None) -> Plan:
    return plan(the_spec, seen, scaling.ScalingState(), last or ConsumerStatus(), 100.0, 1_000.0, NOW)


def test_a_backlog_scales_out_with_an_event_a_status_and_the_scaling_memory() -> None:
    result = tick(consumer(), observed(45, replicas=1))
    assert result.target == 5
    assert result.scales
    assert result.events == (Event("Normal", "Scaled", result.decision.reason),)
    assert result.write_status
    assert result.status.replicas == 5
    assert result.status.desired_replicas == 5
    assert result.status.last_scale_time == NOW
    assert result.status.scaling_state is not None, "the memory goes with a scale"
    assert {c.type: c.status for c in result.status.conditions} == {
        "Ready": True,
        "Active": True,
        "Fallback": False,
        "Paused": False,
        "SourceError": False,
        "DownstreamFailing": False,
        "RateLimited": False,
    }


def test_a_steady_state_writes_nothing() -> None:
    the_spec = consumer()
    first = tick(the_spec, observed(20, replicas=2))
    assert not first.scales
    second = plan(the_spec, observed(20, replicas=2), first.decision.state, first.status, 105.0, 1_005.0, NOW)
    assert not second.write_status
    assert second.events == ()


def test_a_source_error_is_a_condition_and_one_warning_per_new_message() -> None:
    first = tick(consumer(fallbackReplicas=2), observed(None, replicas=4, source_error="queue: HTTP 500"))
    assert first.target == 2
    assert first.decision.fallback
    assert Event("Warning", "SourceError", "queue: HTTP 500") in first.events
    conditions = {c.type: c for c in first.status.conditions}
    assert conditions["SourceError"].status
    assert conditions["SourceError"].message == "queue: HTTP 500"
    still_failing = observed(None, replicas=2, source_error="queue: HTTP 500")
    again = tick(consumer(fallbackReplicas=2), still_failing, first.status)
    assert not [e for e in again.events if e.reason == "SourceError"], "the same error is not posted twice"
    assert again.status.backlog == first.status.backlog


NO_COUNTS = "RabbitMQ queue 'orders' in vhost '/': the management API has no message counts yet"


def not_counted(replicas: int, for_seconds: float) -> Observed:
    seen = observed(None, replicas=replicas, source_error=NO_COUNTS)
    return dataclasses.replace(seen, counts_pending_seconds=for_seconds)


def test_a_new_queue_not_counted_yet_leaves_a_fleet_at_zero_asleep_without_a_warning() -> None:
    waiting = tick(consumer(), not_counted(replicas=0, for_seconds=4))
    assert waiting.target == 0
    assert not waiting.decision.fallback
    assert "waiting for the new queue's first message counts" in waiting.decision.reason
    assert waiting.events == (), "a new queue is not a failing source"
    conditions = {c.type: c for c in waiting.status.conditions}
    assert not conditions["Fallback"].status
    assert conditions["SourceError"].message == NO_COUNTS, "what the read gave is still shown"
    assert waiting.status.last_source_error is None


def test_a_queue_never_counted_past_the_grace_is_a_failing_source_with_the_fallback() -> None:
    waited = tick(consumer(), not_counted(replicas=0, for_seconds=4))
    past = COUNTS_PENDING_GRACE_SECONDS
    failed = tick(consumer(), not_counted(replicas=0, for_seconds=past), waited.status)
    assert failed.target == 1, "the fallback holds at least one replica"
    assert failed.decision.fallback
    message = f"{NO_COUNTS} after {past:g} s (are the broker's statistics off?)"
    assert Event("Warning", "SourceError", message) in failed.events
    running = tick(consumer(), not_counted(replicas=3, for_seconds=4))
    assert running.target == 3, "a running fleet is held while its queue is not counted"
    assert running.decision.fallback
    plain = tick(consumer(), observed(None, replicas=0, source_error="queue: HTTP 500"))
    assert plain.target == 1, "any other failure wakes the fleet from zero, as before"


@pytest.mark.parametrize(
    ("annotations", "current", "expected"),
    [
        ({}, 3, None),
        ({api.PAUSED_ANNOTATION: "true"}, 3, 3),
        ({api.PAUSED_ANNOTATION: "TRUE"}, 3, 3),
        ({api.PAUSED_ANNOTATION: "false"}, 3, None),
        ({api.PAUSED_REPLICAS_ANNOTATION: "4"}, 3, 4),
        ({api.PAUSED_REPLICAS_ANNOTATION: " 0 "}, 3, 0),
        ({api.PAUSED_REPLICAS_ANNOTATION: "four"}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: "2", api.PAUSED_ANNOTATION: "true"}, 3, 2),
        ({api.PAUSED_REPLICAS_ANNOTATION: "²"}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: "٣"}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: "-1"}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: "1.5"}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: ""}, 3, 3),
        ({api.PAUSED_REPLICAS_ANNOTATION: "40"}, 3, 10),
        ({api.PAUSED_REPLICAS_ANNOTATION: "9" * 5000}, 3, 10),
    ],
)
def test_pause_override(annotations: dict[str, str], current: int, expected: int | None) -> None:
    replicas, message = pause_override(annotations, current, max_replicas=10)
    assert replicas == expected
    assert bool(message) == (expected is not None)


def test_a_pause_holds_the_count_and_says_why() -> None:
    paused = tick(consumer(), observed(80, replicas=2, annotations={api.PAUSED_REPLICAS_ANNOTATION: "3"}))
    assert paused.target == 3
    assert paused.paused
    assert paused.decision.replicas == 8, "the decision is still made and shown as desiredReplicas"
    assert paused.status.desired_replicas == 8
    assert paused.status.last_scale_reason is not None
    assert "paused" in paused.status.last_scale_reason


def test_deletion_costs_only_before_a_scale_down_and_only_the_changes() -> None:
    busy = WorkerStats({"a": 0.0, "b": 3.4, "c": 1.0}, 4.4, 10.0, 1.0, False)
    down = tick(consumer(), observed(0, replicas=3, workers=busy, known={"a": 0, "b": None, "c": 2}))
    assert down.target < 3
    assert down.deletion_costs == {"b": 3, "c": 1}
    up = tick(consumer(), observed(80, replicas=3, workers=busy))
    assert up.deletion_costs == {}


def test_deletion_costs_rank_busier_pods_higher() -> None:
    assert deletion_costs({"idle": 0.0, "busy": 7.6}, {}) == {"idle": 0, "busy": 8}
    assert deletion_costs({"idle": 0.0}, {"idle": 0}) == {}


def test_a_paused_tick_remembers_the_count_it_held_not_the_decision() -> None:
    held = tick(consumer(), observed(80, replicas=2, annotations={api.PAUSED_REPLICAS_ANNOTATION: "3"}))
    assert held.decision.replicas == 8
    assert held.state.recommendations[-1][1] == 3, "the windows remember what ran"
    assert held.state.changes == ((100.0, 1),), "the change applied is the pause's, not the decision's"


def failing(failed: float, acked: float, reason: str = "exception") -> WorkerStats:
    return WorkerStats({"a": 4.0}, 4.0, 10.0, 1.0, False, {reason: failed} if failed else {}, acked)


def test_a_failing_downstream_holds_scale_up_with_a_condition_and_one_warning() -> None:
    held = tick(consumer(), observed(80, replicas=2, workers=failing(40, 10)))
    assert held.decision.replicas == 8
    assert held.target == 2
    assert held.held_for_downstream
    assert not held.scales
    assert held.state.recommendations[-1][1] == 2, "a hold spends no rate-limit budget, as a pause"
    condition = {c.type: c for c in held.status.conditions}["DownstreamFailing"]
    assert condition.status
    assert "80% of 50 task attempts" in condition.message
    assert "exception 100%" in condition.message
    assert [e.reason for e in held.events] == ["DownstreamFailing"]
    again = tick(consumer(), observed(80, replicas=2, workers=failing(40, 10)), held.status)
    assert again.target == 2
    assert again.events == (), "posted once, not every tick"
    recovered = tick(consumer(), observed(80, replicas=2, workers=failing(1, 49)), again.status)
    assert recovered.target == 8, "scale-up resumes once failures fall"
    assert not {c.type: c for c in recovered.status.conditions}["DownstreamFailing"].status


@pytest.mark.parametrize(
    ("scaling_spec", "workers", "current", "backlog", "expected"),
    [
        ({}, failing(40, 10), 6, 10, 3),  # scaling down stays allowed (here by 50%): fewer workers, less load
        ({"downstreamProtection": {"enabled": False}}, failing(40, 10), 2, 80, 8),
        ({}, failing(6, 2), 2, 80, 8),  # 8 attempts: below minimumAttempts, says nothing
        ({"downstreamProtection": {"failureRatio": 0.9}}, failing(40, 10), 2, 80, 8),
        ({}, failing(0, 50), 2, 80, 8),
    ],
)
def test_when_the_downstream_hold_does_not_apply(
    scaling_spec: dict[str, object], workers: WorkerStats, current: int, backlog: float, expected: int
) -> None:
    seen = observed(backlog, replicas=current, workers=workers)
    assert tick(consumer(**scaling_spec), seen).target == expected
