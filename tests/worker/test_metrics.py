"""`qc_worker.metrics`: the busy time the operator divides completions by (`qc_worker_busy_seconds_total`),
integrated between the changes of the busy fraction and read up to the scrape."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from qc_common import metrics as names
from qc_worker.metrics import BusyTime, WorkerMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_busy_time_integrates_the_fraction_between_its_changes_and_up_to_the_reading() -> None:
    clock = FakeClock()
    busy = BusyTime(clock)
    clock.now += 10  # idle: nothing counts
    busy.set_fraction(0.5)
    clock.now += 4
    assert busy.total_seconds() == 2.0  # read while busy: the time so far counts at once
    busy.set_fraction(1.0)
    clock.now += 3
    busy.set_fraction(0.0)
    clock.now += 50
    assert busy.total_seconds() == 2.0 + 3.0


def busy_seconds(metrics: WorkerMetrics) -> float:
    text = generate_latest(metrics.registry).decode()
    [value] = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == names.WORKER_BUSY_SECONDS
    ]
    return value


def test_the_worker_exports_its_busy_time_as_a_counter_that_rises_while_a_task_runs() -> None:
    metrics = WorkerMetrics("rabbitmq", "t", capacity=4)
    assert busy_seconds(metrics) == 0.0
    metrics.set_in_flight(2)  # half the capacity
    time.sleep(0.4)
    running = busy_seconds(metrics)
    assert 0.15 <= running <= 0.4  # about 0.2 s: half of 0.4 s, read up to the scrape with nothing settled
    metrics.set_rate_limit(waiting=2, share_per_second=1.0)  # both wait for a token: not busy
    time.sleep(0.2)
    assert busy_seconds(metrics) - running < 0.05
