"""The runtime's loop with the in-memory source: window, ack on success, retry, dead letter, drain.

Tests run on looptime's fake loop clock (sleeps, receive waits and timeouts take no real time, and times
are exact), except the one whose tasks run in real processes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from typing import Any

import pytest
import worker_tasks

import qc_worker
from qc_worker.executors import AsyncExecutor, ProcessExecutor
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime, retry_delay_seconds
from qc_worker.settings import WorkerSettings
from qc_worker.sources.memory import MemorySource
from qc_worker.tasks import load_task

pytestmark = pytest.mark.looptime


def make_runtime(
    task_ref: str, source: MemorySource, concurrency: int = 4, **overrides: Any
) -> tuple[Runtime, WorkerMetrics]:
    settings = WorkerSettings(task=task_ref, source="rabbitmq", concurrency=concurrency, **overrides)
    spec = load_task(task_ref)
    executor = AsyncExecutor() if spec.kind == "async" else ProcessExecutor(concurrency)
    metrics = WorkerMetrics("memory", task_ref, concurrency)
    return Runtime(settings, spec, source, executor, metrics), metrics


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(
        name, {"source": "memory", "task": metrics.labels["task"], **labels}
    )
    return value or 0.0


async def run_until(runtime: Runtime, condition: Any, timeout_seconds: float = 20) -> None:
    running = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        assert not running.done(), running.exception()
        await asyncio.sleep(0.01)
    runtime.request_stop()
    await asyncio.wait_for(running, 30)


def body(i: int, **extra: Any) -> bytes:
    return json.dumps({"id": i, **extra}).encode()


async def test_window_keeps_n_in_flight_and_refills_without_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    source = MemorySource()
    in_flight, peak = 0, 0

    async def tracked(message: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        # One slow task must not hold back the others (no rounds): message 0 takes 10x longer.
        await asyncio.sleep(0.5 if message.json()["id"] == 0 else 0.05)
        in_flight -= 1

    monkeypatch.setattr(worker_tasks, "noop_async", tracked)
    runtime, metrics = make_runtime("worker_tasks:noop_async", source, concurrency=4)
    for i in range(20):
        source.put(body(i))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run_until(runtime, lambda: len(source.acked) == 20)
    elapsed = loop.time() - started
    assert peak == 4
    # Rounds would take 5 rounds x 0.5 s; a continuous window finishes the 19 short ones beside the slow one.
    assert elapsed < 1.5, f"took {elapsed:.2f} s: the window waited for the slowest task"
    assert sample(metrics, "qc_worker_messages_acked_total") == 20
    assert sample(metrics, "qc_worker_messages_received_total") == 20
    assert sample(metrics, "qc_worker_tasks_in_flight") == 0


async def test_failure_is_retried_with_backoff_then_dead_lettered_with_its_reason() -> None:
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:work_async", source, max_delivery_attempts=3)
    source.put(body(7, fail="always"))
    await run_until(runtime, lambda: len(source.dead_letters) == 1)
    assert [delay > 0 for _, delay in source.retried] == [True, True]
    dead = source.dead_letters[0]
    assert dead["qc-dead-letter-reason"] == "exception"
    assert "RuntimeError: failed on purpose" in dead["qc-dead-letter-detail"]
    assert dead["qc-delivery-attempts"] == "3"
    assert source.acked == []
    assert sample(metrics, "qc_worker_tasks_failed_total", reason="exception") == 3
    assert sample(metrics, "qc_worker_messages_retried_total") == 2
    assert sample(metrics, "qc_worker_messages_dead_lettered_total", reason="exception") == 1


async def test_malformed_message_is_dead_lettered_at_once_and_the_worker_keeps_going() -> None:
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:work_async", source)
    source.put(b"\xff not json")
    source.put(body(1))
    await run_until(runtime, lambda: len(source.dead_letters) == 1 and len(source.acked) == 1)
    assert source.dead_letters[0]["qc-dead-letter-reason"] == "malformed"
    assert "body is not JSON" in source.dead_letters[0]["qc-dead-letter-detail"]
    assert source.retried == []
    assert sample(metrics, "qc_worker_messages_dead_lettered_total", reason="malformed") == 1


async def test_an_empty_queue_is_counted_as_empty_receives_and_a_failed_receive_is_not() -> None:
    # The operator reads a rising empty-receive count as "the queue has nothing now": a broken connection
    # must never pass for that, and must not stop the loop either.
    source = MemorySource(failing_receives=2, receive_wait_seconds=0.01)
    runtime, metrics = make_runtime("worker_tasks:work_async", source)
    running = asyncio.create_task(runtime.run())
    while source.failing_receives > 0:
        await asyncio.sleep(0.01)
    assert sample(metrics, "qc_worker_empty_receives_total") == 0
    await asyncio.sleep(2.5)  # past the 1 s back-off after each failure: the queue is empty now
    assert sample(metrics, "qc_worker_empty_receives_total") > 0
    source.put(body(1))
    while len(source.acked) < 1:
        assert not running.done(), running.exception()
        await asyncio.sleep(0.01)
    runtime.request_stop()
    await asyncio.wait_for(running, 10)


async def test_batch_acks_each_message_only_after_its_batch_succeeded() -> None:
    source = MemorySource()
    runtime, _ = make_runtime("worker_tasks:bulk", source, concurrency=25, max_delivery_attempts=1)
    for i in range(20):
        source.put(body(i))
    source.put(body(99, fail="always"))
    await run_until(runtime, lambda: len(source.acked) + len(source.dead_letters) == 21)
    # 21 messages in batches of <= 10: the batch holding the bad row is dead-lettered whole, none acked.
    dead_ids = {d["qc-original-message-id"] for d in source.dead_letters}
    assert "m20" in dead_ids
    assert set(source.acked).isdisjoint(dead_ids)
    assert len(source.acked) + len(dead_ids) == 21


async def test_sigterm_drain_releases_what_never_started() -> None:
    source = MemorySource()
    runtime, _ = make_runtime("worker_tasks:work_async", source, concurrency=2, drain_grace_seconds=5)
    for i in range(6):
        source.put(body(i, sleep=0.3))
    running = asyncio.create_task(runtime.run())
    while len(runtime._held) < 2:
        await asyncio.sleep(0.01)
    runtime.request_stop()
    await asyncio.wait_for(running, 10)
    # The two in flight finished and were acked; the four never pulled stay in the queue; none lost.
    assert len(source.acked) == 2
    assert source.pending + len(source.released) == 4


@pytest.mark.looptime(False)  # the pool's processes run on the real clock
async def test_time_limit_kills_the_process_within_a_second() -> None:
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:stuck", source, concurrency=1)
    source.put(body(1))
    started = time.monotonic()
    await run_until(runtime, lambda: len(source.dead_letters) == 1, timeout_seconds=30)
    # Two attempts (max_delivery_attempts=2) of a 1 s limit; spawn start-up of the replacement included.
    assert time.monotonic() - started < 2 * (1 + 1) + 3
    assert source.dead_letters[0]["qc-dead-letter-reason"] == "time_limit"
    assert sample(metrics, "qc_worker_time_limit_kills_total") == 2


def test_retry_delay_grows_and_is_capped() -> None:
    rng = random.Random(3)
    delays = [retry_delay_seconds(attempt, 1, 8, rng) for attempt in range(1, 8)]
    assert delays[0] == 1
    assert all(0.5 <= d <= 8 for d in delays)
    assert max(delays[4:]) <= 8
    assert min(delays[4:]) >= 4


class Timeline:
    """A task that records when each message started and ended, on the loop's clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    async def run(self, message: Any) -> None:
        name = message.json()["id"]
        self.started[name] = asyncio.get_running_loop().time()
        await asyncio.sleep(self.seconds)
        self.ended[name] = asyncio.get_running_loop().time()


async def test_one_ordering_key_runs_one_at_a_time_in_arrival_order_and_keys_run_in_parallel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = MemorySource()
    timeline = Timeline(seconds=1)
    monkeypatch.setattr(worker_tasks, "noop_async", timeline.run)
    runtime, _ = make_runtime("worker_tasks:noop_async", source, concurrency=8)
    for name, key in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a"), ("b2", "b"), ("free", "")]:
        source.put(body(name), ordering_key=key)
    await run_until(runtime, lambda: len(source.acked) == 6)
    for key, names in {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]}.items():
        order = sorted(names, key=timeline.started.__getitem__)
        assert order == names, f"key {key} ran out of arrival order"
        for earlier, later in itertools.pairwise(names):
            assert timeline.started[later] >= timeline.ended[earlier], f"{later} overlapped {earlier}"
    # Different keys, and messages without a key, do not wait for each other.
    assert timeline.started["a1"] == timeline.started["b1"] == timeline.started["free"]


async def test_stop_releases_the_messages_waiting_behind_their_key_without_starting_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = MemorySource()
    timeline = Timeline(seconds=5)
    monkeypatch.setattr(worker_tasks, "noop_async", timeline.run)
    runtime, _ = make_runtime("worker_tasks:noop_async", source, concurrency=8, drain_grace_seconds=30)
    ids = {name: source.put(body(name), ordering_key="a") for name in ["a1", "a2", "a3"]}
    running = asyncio.create_task(runtime.run())
    while "a1" not in timeline.started:
        await asyncio.sleep(0.01)
    runtime.request_stop()
    await asyncio.wait_for(running, 60)
    assert list(timeline.started) == ["a1"]  # the running one finished; those behind it never started
    assert source.acked == [ids["a1"]]
    assert sorted(source.released) == sorted([ids["a2"], ids["a3"]])


async def test_a_full_window_starts_its_batch_at_once_instead_of_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[tuple[float, int]] = []

    @qc_worker.task(batch_size=10, batch_max_wait_seconds=5)
    async def collect(messages: list[Any]) -> None:
        batches.append((asyncio.get_running_loop().time(), len(messages)))

    monkeypatch.setattr(worker_tasks, "collect", collect, raising=False)
    source = MemorySource()
    runtime, _ = make_runtime("worker_tasks:collect", source, concurrency=4)
    for i in range(4):
        source.put(body(i))
    await run_until(runtime, lambda: len(source.acked) == 4)
    # Four messages fill a window of four: nothing more can join, so one batch of four starts before the
    # 5 s max wait, not four batches of one.
    assert [size for _, size in batches] == [4]
    assert batches[0][0] < 5


@pytest.mark.parametrize(("deadline_seconds", "renewals"), [(None, 0), (10.0, 2)])
async def test_messages_are_leased_only_where_the_source_has_a_deadline(
    monkeypatch: pytest.MonkeyPatch, deadline_seconds: float | None, renewals: int
) -> None:
    source = MemorySource(ack_deadline_seconds=deadline_seconds)
    timeline = Timeline(seconds=12)
    monkeypatch.setattr(worker_tasks, "noop_async", timeline.run)
    runtime, metrics = make_runtime("worker_tasks:noop_async", source, concurrency=1, lease_seconds=30)
    source.put(body("long"))
    await run_until(runtime, lambda: len(source.acked) == 1)
    # A 10 s deadline is renewed every 4.5-5 s (half of it, with jitter): twice during a 12 s task.
    assert source.extensions == renewals
    assert sample(metrics, "qc_worker_lease_extensions_total") == renewals
