"""`qc_operator.budget`: the fleet's rate budget split among the pods, the order of share changes and
scaling that keeps the fleet within it, and the replicas it can use."""

from __future__ import annotations

import pytest

from qc_operator import budget, builders
from qc_operator.budget import BudgetPlan, plan_budget
from qc_operator.plan import Observed, plan
from qc_operator.scaling import ScalingState
from qc_operator.sources.base import BacklogReading
from qc_operator.spec import parse
from qc_operator.status import ConsumerStatus
from qc_operator.workers import WorkerStats, parse_pod_metrics
from tests.operator.specs import RABBITMQ_SPEC, body, spec

NOW = "2026-12-02T08:00:00Z"


@pytest.mark.parametrize(
    ("rate", "pods", "expected"), [(10.0, 4, "2.5"), (10.0, 3, "3.33333"), (0.7, 1, "0.7"), (5.0, 0, "5")]
)
def test_a_share_splits_the_budget_and_never_rounds_up(rate: float, pods: int, expected: str) -> None:
    share = budget.share_of(rate, pods)
    assert budget.share_text(share) == expected
    assert share * max(1, pods) <= rate * (1 + 1e-12)


def test_no_budget_changes_nothing() -> None:
    assert plan_budget(None, 2, 6, 2, {}, 1.0) == BudgetPlan(6, None)


def test_scale_out_lowers_the_share_first_and_waits_for_every_pod_to_report_it() -> None:
    old = budget.share_of(20.0, 2)
    waiting = plan_budget(20.0, 2, 4, 2, {"a": old, "b": old}, None)
    assert waiting.replicas == 2, "no replica before the pods apply the lower share"
    assert waiting.share_per_second == budget.share_of(20.0, 4)
    assert waiting.waiting_for_pods == ("a", "b")
    assert "until the running pods apply the share 5 msg/s for 4" in waiting.reason
    half_way = plan_budget(20.0, 2, 4, 2, {"a": waiting.share_per_second, "b": old}, None)
    assert (half_way.replicas, half_way.waiting_for_pods) == (2, ("b",))
    applied = plan_budget(20.0, 2, 4, 2, {"a": waiting.share_per_second, "b": waiting.share_per_second}, None)
    assert applied == BudgetPlan(4, budget.share_of(20.0, 4))


def test_a_pod_exporting_no_share_holds_a_scale_out() -> None:
    assert plan_budget(20.0, 1, 2, 1, {"a": None}, None).replicas == 1


def test_scale_from_zero_writes_the_share_and_scales_at_once() -> None:
    assert plan_budget(20.0, 0, 4, 0, {}, None) == BudgetPlan(4, budget.share_of(20.0, 4))


def test_scale_in_keeps_the_share_until_the_removed_pods_are_gone() -> None:
    going = plan_budget(20.0, 4, 2, 4, {}, None)
    assert (going.replicas, going.share_per_second) == (2, budget.share_of(20.0, 4))
    terminating = plan_budget(20.0, 2, 2, 3, {}, None)
    assert terminating.share_per_second == budget.share_of(20.0, 3)
    gone = plan_budget(20.0, 2, 2, 2, {}, None)
    assert gone.share_per_second == budget.share_of(20.0, 2)


@pytest.mark.parametrize(
    ("rate", "throughput", "current", "wanted", "expected"),
    [
        (20.0, 8.0, 1, 10, 3),  # ceil(20 / 8)
        (20.0, 10.0, 1, 10, 2),  # exactly 2 busy replicas: not 3
        (20.0, 8.0, 5, 10, 5),  # never removes what runs: only additions are refused
        (20.0, 8.0, 1, 2, 2),  # below the cap: the backlog's count
        (20.0, None, 1, 10, 10),  # not measured yet: nothing to cap with
    ],
)
def test_no_replicas_the_budget_cannot_use(
    rate: float, throughput: float | None, current: int, wanted: int, expected: int
) -> None:
    result = plan_budget(rate, current, wanted, current, {}, throughput)
    assert result.replicas == expected


def test_the_cap_says_why() -> None:
    result = plan_budget(20.0, 1, 10, 1, {}, 8.0)
    assert result.capped_at == 3
    assert result.reason == (
        "holding at 3 replicas instead of 10: 20 msg/s (maxMessagesPerSecond) keeps at most 3 busy at "
        "8 msg/s each"
    )


def stats(shares: dict[str, float | None], throughput: float | None = None) -> WorkerStats:
    return WorkerStats(
        {pod: 1.0 for pod in shares}, float(len(shares)), throughput, 1.0, False, rate_shares_by_pod=shares
    )


def limited_spec(rate: float = 20.0) -> object:
    worker = {**RABBITMQ_SPEC["worker"], "maxMessagesPerSecond": rate}
    return parse(spec(worker=worker, scaling={"messagesPerReplica": 10, "maxReplicas": 8}))


def seen(replicas: int, workers: WorkerStats, share_text: str | None, backlog: float = 80) -> Observed:
    return Observed(3, {}, replicas, replicas, BacklogReading(backlog), "", workers, {}, replicas, share_text)


def test_the_plan_holds_a_scale_out_for_the_share_with_a_condition_and_one_event() -> None:
    the_spec = limited_spec()
    old = budget.share_of(20.0, 2)
    first = plan(
        the_spec,
        seen(2, stats({"a": old, "b": old}), "10"),
        ScalingState(),
        ConsumerStatus(),
        100.0,
        1e3,
        NOW,
    )
    assert first.decision.replicas == 8
    assert (first.target, first.rate_share_text, first.write_rate_share) == (2, "2.5", True)
    condition = {c.type: c for c in first.status.conditions}["RateLimited"]
    assert (condition.status, condition.reason) == (True, "ApplyingShare")
    assert [e.reason for e in first.events] == ["RateLimited"]
    low = budget.share_of(20.0, 8)
    second = plan(
        the_spec, seen(2, stats({"a": low, "b": low}), "2.5"), first.state, first.status, 105.0, 1e3, NOW
    )
    assert (second.target, second.write_rate_share) == (8, False)
    assert {c.type: c for c in second.status.conditions}["RateLimited"].reason == "WithinBudget"


def test_the_plan_caps_replicas_at_what_the_budget_keeps_busy() -> None:
    the_spec = limited_spec()
    share = budget.share_of(20.0, 1)
    result = plan(
        the_spec,
        seen(1, stats({"a": share}, throughput=8.0), "20"),
        ScalingState(),
        ConsumerStatus(),
        100.0,
        1e3,
        NOW,
    )
    assert result.decision.replicas == 8
    assert result.target == 1, "the share for 3 pods first"
    assert result.rate_share_text == budget.share_text(budget.share_of(20.0, 3))
    assert {c.type: c for c in result.status.conditions}["RateLimited"].reason == "ApplyingShare"
    for_three = budget.share_of(20.0, 3)
    workers = stats({"a": for_three}, throughput=8.0)
    capped = plan(the_spec, seen(1, workers, "6.66666"), result.state, result.status, 105.0, 1e3, NOW)
    assert capped.target == 3
    condition = {c.type: c for c in capped.status.conditions}["RateLimited"]
    assert (condition.status, condition.reason) == (True, "BudgetBound")
    assert "keeps at most 3 busy at 8 msg/s each" in condition.message
    assert "keeps at most 3 busy" in capped.status.last_scale_reason


def test_the_pods_mount_the_share_and_its_value_is_not_in_the_pod_template() -> None:
    owner = body(spec(worker={**RABBITMQ_SPEC["worker"], "maxMessagesPerSecond": 20}))
    the_spec = parse(owner["spec"])
    template = builders.pod_template(owner, the_spec)
    container = template["spec"]["containers"][0]
    assert {"name": "QC_RATE_LIMIT_FILE", "value": "/etc/queue-consumer/rate-limit/messages-per-second"} in (
        container["env"]
    )
    assert {"name": "rate-limit", "configMap": {"name": "orders-worker-rate-limit"}} in template["spec"][
        "volumes"
    ]
    config_map = builders.rate_limit_config_map(owner, "5")
    assert config_map["data"] == {"messages-per-second": "5"}
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    unlimited = builders.pod_template(body(spec()), parse(spec()))
    assert "rate-limit" not in str(unlimited["spec"]["volumes"])


def test_a_pods_share_is_read_from_its_metrics() -> None:
    text = (
        'qc_worker_rate_share_messages_per_second{source="rabbitmq",task="t"} 2.5\n'
        'qc_worker_messages_acked_total{source="rabbitmq",task="t"} 3\n'
    )
    assert parse_pod_metrics(text).rate_share == 2.5
    assert parse_pod_metrics(text.replace("2.5", "0")).rate_share is None
