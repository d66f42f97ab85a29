"""`qc_operator.workers`: the workers' Prometheus text read into samples, throughput per busy replica, and
the empty-receive signal compared between scrapes. Plain data, no server."""

from __future__ import annotations

import pytest

from qc_operator.workers import (
    PodSample,
    ThroughputEstimator,
    outcomes_since,
    parse_pod_metrics,
    queue_found_empty,
    summarize,
)


def test_worker_metrics_parse_and_throughput_per_busy_replica() -> None:
    text = (
        'qc_worker_messages_acked_total{source="rabbitmq",task="t"} 120.0\n'
        'qc_worker_tasks_in_flight{source="rabbitmq",task="t"} 3.0\n'
        'qc_worker_busy_ratio{source="rabbitmq",task="t"} 0.5\n'
    )
    assert parse_pod_metrics(text) == PodSample(acked_total=120, in_flight=3, busy_ratio=0.5)
    estimator = ThroughputEstimator()
    assert estimator.update({"a": PodSample(100, 2, 0.5), "b": PodSample(0, 2, 0.5)}, 0.0) is None
    # 40 + 40 completions in 2 s (40 msg/s) from two pods each busy half the time: one busy replica's worth.
    busy = estimator.update({"a": PodSample(140, 2, 0.5), "b": PodSample(40, 2, 0.5)}, 2.0)
    assert busy == pytest.approx(40)
    # An idle fleet keeps the last estimate instead of reading its idleness as slowness.
    idle = estimator.update({"a": PodSample(140, 0, 0.0), "b": PodSample(40, 0, 0.0)}, 4.0)
    assert idle == pytest.approx(40)


def empty_receives(total: float | None) -> PodSample:
    return PodSample(acked_total=100, in_flight=1, busy_ratio=0.1, empty_receives_total=total)


@pytest.mark.parametrize(
    ("name", "previous", "current", "expected"),
    [
        ("rose: the queue was found empty", {"a": empty_receives(5)}, {"a": empty_receives(6)}, True),
        ("unchanged: never found empty", {"a": empty_receives(5)}, {"a": empty_receives(5)}, False),
        ("went down: restarted, no information", {"a": empty_receives(5)}, {"a": empty_receives(0)}, None),
        ("no previous scrape: no information", {}, {"a": empty_receives(5)}, None),
        ("no pod answered", {"a": empty_receives(5)}, {}, None),
        ("a worker without the counter", {"a": empty_receives(None)}, {"a": empty_receives(None)}, None),
        (
            "one pod's rise is enough",
            {"a": empty_receives(5), "b": empty_receives(9)},
            {"a": empty_receives(5), "b": empty_receives(10)},
            True,
        ),
        (
            "a restarted pod beside an unchanged one",
            {"a": empty_receives(5), "b": empty_receives(9)},
            {"a": empty_receives(5), "b": empty_receives(1)},
            False,
        ),
        (
            "a new pod beside an unchanged one",
            {"a": empty_receives(5)},
            {"a": empty_receives(5), "b": empty_receives(3)},
            False,
        ),
    ],
)
def test_queue_found_empty_from_the_empty_receive_counters(
    name: str, previous: dict[str, PodSample], current: dict[str, PodSample], expected: bool | None
) -> None:
    assert queue_found_empty(previous, current) is expected, name


def test_summarize_adds_up_the_fleet_and_keeps_the_estimate_when_no_pod_answers() -> None:
    estimator = ThroughputEstimator()
    summarize({"a": PodSample(0, 1, 1.0), "b": PodSample(0, 2, 1.0)}, estimator, 0.0)
    stats = summarize({"a": PodSample(10, 3, 1.0), "b": PodSample(10, 1, 1.0)}, estimator, 1.0)
    assert stats.in_flight_by_pod == {"a": 3, "b": 1}
    assert stats.total_in_flight == 4
    assert stats.busy_replicas == 2
    assert stats.throughput_per_replica == pytest.approx(10)
    nobody = summarize({}, estimator, 2.0)
    assert nobody.busy_replicas is None, "no pod answered: unknown, not idle"
    assert nobody.queue_found_empty is None
    assert nobody.throughput_per_replica == pytest.approx(10), "a fleet scaled to zero keeps its estimate"


def test_failed_attempts_by_reason_between_two_scrapes() -> None:
    text = (
        'qc_worker_messages_acked_total{source="rabbitmq",task="t"} 10.0\n'
        'qc_worker_tasks_failed_total{source="rabbitmq",task="t",reason="exception"} 4.0\n'
        'qc_worker_tasks_failed_total{source="rabbitmq",task="t",reason="time_limit"} 1.0\n'
    )
    sample = parse_pod_metrics(text)
    assert sample.failed_by_reason == {"exception": 4.0, "time_limit": 1.0}
    later = PodSample(30, 0, 1.0, None, {"exception": 19.0, "time_limit": 1.0})
    restarted = PodSample(1, 0, 1.0, None, {"exception": 0.0})
    failed, acked = outcomes_since({"a": sample, "b": sample}, {"a": later, "b": restarted, "c": later})
    assert failed == {"exception": 15.0}, "only pods that can be compared; a restarted one tells nothing"
    assert acked == 20.0
    estimator = ThroughputEstimator()
    summarize({"a": sample}, estimator, 0.0)
    stats = summarize({"a": later}, estimator, 5.0)
    assert stats.failure_ratio == 15 / 35
    assert summarize({"a": later}, estimator, 10.0).failure_ratio is None, "nothing attempted"


def test_the_busy_time_counter_gives_the_interval_s_mean_where_two_readings_see_two_instants() -> None:
    text = 'qc_worker_busy_seconds_total{source="rabbitmq",task="t"} 12.5\n'
    assert parse_pod_metrics(text).busy_seconds_total == 12.5
    # One long task ran from just after a scrape to just before the next: both readings of the ratio
    # say idle, the counter says busy the whole 10 s. 50 completions of short tasks beside it alike.
    counted, readings = ThroughputEstimator(), ThroughputEstimator()
    counted.update({"a": PodSample(0, 0, 0.0, busy_seconds_total=0.0)}, 0.0)
    readings.update({"a": PodSample(0, 0, 0.0)}, 0.0)
    assert counted.update({"a": PodSample(50, 0, 0.0, busy_seconds_total=10.0)}, 10.0) == pytest.approx(5)
    assert readings.update({"a": PodSample(50, 0, 0.0)}, 10.0) is None  # idle at both instants: no figure
    # A restarted container's counter went down: its two readings are all there is for that interval.
    restarted = counted.update({"a": PodSample(60, 1, 1.0, busy_seconds_total=1.0)}, 20.0)
    assert restarted == pytest.approx(10 / 10 / 0.5)  # 10 completions in 10 s, busy (0 + 1) / 2


@pytest.mark.parametrize("broken", [float("nan"), float("inf"), -5.0])
def test_a_busy_time_that_is_not_a_finite_rise_falls_back_to_the_two_readings(broken: float) -> None:
    estimator = ThroughputEstimator()
    estimator.update({"a": PodSample(0, 1, 0.5, busy_seconds_total=10.0)}, 0.0)
    estimate = estimator.update({"a": PodSample(20, 1, 0.5, busy_seconds_total=broken)}, 10.0)
    assert estimate == pytest.approx(4.0)  # 2 completions a second from a pod read busy half the time


def test_a_pod_counts_at_most_fully_busy_whatever_its_counter_or_ratio_says() -> None:
    ratio = 'qc_worker_busy_ratio{source="rabbitmq",task="t"} %s\n'
    read = [parse_pod_metrics(ratio % v).busy_ratio for v in ("5", "+Inf", "NaN", "-1")]
    assert read == [1.0, 1.0, 0.0, 0.0]
    estimator = ThroughputEstimator()
    estimator.update({"a": PodSample(0, 1, 1.0, busy_seconds_total=0.0)}, 0.0)
    # A rise of a billion seconds in 10 s is one fully busy pod: 20 completions in 10 s, 2 a second.
    assert estimator.update({"a": PodSample(20, 1, 1.0, busy_seconds_total=1e9)}, 10.0) == pytest.approx(2.0)
