"""The runtime with the in-memory source: a retry that holds its message holds its slot, a message past
its attempts is dead-lettered unrun, start-up retries the broker, and readiness follows the connection.

On looptime's fake loop clock, as `test_window_and_settlement`.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from qc_worker.messages import Delivery, Message
from qc_worker.sources.memory import MemorySource
from tests.worker.test_window_and_settlement import body, make_runtime, run_until, sample

pytestmark = pytest.mark.looptime


@dataclasses.dataclass
class HoldingSource(MemorySource):
    """Like RabbitMQ: a retry waits out its backoff with the message still unacked."""

    retry_holds_delivery: bool = True
    batches_pulls: bool = False

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        await asyncio.sleep(delay_seconds)
        await super().retry(delivery, delay_seconds)


async def test_a_retry_holding_its_message_keeps_its_slot_and_a_failing_backlog_is_never_empty() -> None:
    source = HoldingSource()
    runtime, metrics = make_runtime(
        "worker_tasks:work_async",
        source,
        concurrency=2,
        max_delivery_attempts=1000,
        retry_backoff_min_seconds=5,
        retry_backoff_max_seconds=5,
        drain_grace_seconds=1,
    )
    for i in range(10):
        source.put(body(i, fail="always"))
    await run_until(runtime, lambda: len(source.retried) >= 6, timeout_seconds=60)
    # Slots held by retries are not free: the loop never asked an empty-handed broker for more.
    assert sample(metrics, "qc_worker_empty_receives_total") == 0
    assert sample(metrics, "qc_worker_messages_received_total") <= len(source.retried) + 2


async def test_a_retry_handing_its_message_back_frees_its_slot_at_once() -> None:
    source = HoldingSource(retry_holds_delivery=False)  # like Pub/Sub: the service redelivers after the delay
    runtime, _ = make_runtime(
        "worker_tasks:work_async",
        source,
        concurrency=2,
        retry_backoff_min_seconds=50,
        retry_backoff_max_seconds=50,
        drain_grace_seconds=1,
    )
    source.put(body(0, fail="always"))
    source.put(body(1, fail="always"))
    good = [source.put(body(i)) for i in range(2, 6)]
    # Both failures wait out 50 s backoffs; the good messages run in the slots they freed meanwhile.
    await run_until(runtime, lambda: source.acked == good, timeout_seconds=10)
    # Only the stop ended the backoffs: both went back at once with their failed attempt counted.
    assert sorted(source.retried) == [("m0", 0), ("m1", 0)]
    assert [m.delivery_attempt for m in (source._queue.get_nowait(), source._queue.get_nowait())] == [2, 2]


async def test_a_message_delivered_past_its_attempts_is_dead_lettered_as_crashed_without_running() -> None:
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:work_async", source, max_delivery_attempts=3)
    source._queue.put_nowait(Message(body(1), "m-crash", {"keep": "me"}, delivery_attempt=4))
    source.put(body(2))
    await run_until(runtime, lambda: len(source.dead_letters) == 1 and len(source.acked) == 1)
    [dead] = source.dead_letters
    assert dead["qc-dead-letter-reason"] == "crashed"
    assert dead["keep"] == "me"
    assert source.acked == ["m0"]
    assert sample(metrics, "qc_worker_tasks_failed_total", reason="crashed") == 1


@dataclasses.dataclass
class FlakySource(MemorySource):
    failing_connects: int = 2
    connects: int = 0

    async def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.failing_connects:
            raise ConnectionRefusedError("the broker is down")


async def test_start_up_retries_the_broker_with_backoff_and_readiness_follows_the_connection() -> None:
    source = FlakySource()
    runtime, _ = make_runtime("worker_tasks:work_async", source)
    loop = asyncio.get_running_loop()
    started = loop.time()
    running = asyncio.create_task(runtime.run())
    while not runtime.ready:
        assert not running.done(), running.exception()
        await asyncio.sleep(0.1)
    assert source.connects == 3
    assert loop.time() - started >= 1 + 2  # backed off 1 s, then 2 s
    source.connected = False
    assert not runtime.ready
    source.connected = True
    assert runtime.ready
    runtime.request_stop()
    await asyncio.wait_for(running, 10)


async def test_a_stop_while_the_broker_is_down_ends_the_start_up_retries() -> None:
    source = FlakySource(failing_connects=10**6)
    runtime, _ = make_runtime("worker_tasks:work_async", source)
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(5)
    runtime.request_stop()
    await asyncio.wait_for(running, 60)
    assert not runtime.ready
    assert 2 <= source.connects < 10


async def test_the_broker_s_own_delivery_limit_caps_the_attempts() -> None:
    source = MemorySource(delivery_limit=2)  # a quorum queue's x-delivery-limit, a Pub/Sub policy's maximum
    runtime, _ = make_runtime("worker_tasks:work_async", source, max_delivery_attempts=5)
    source.put(body(1, fail="always"))
    await run_until(runtime, lambda: len(source.dead_letters) == 1)
    assert source.dead_letters[0]["qc-delivery-attempts"] == "2"
    assert len(source.retried) == 1


@dataclasses.dataclass
class HangingSource(MemorySource):
    async def connect(self) -> None:
        await asyncio.sleep(3600)  # a broker that accepts the TCP connection and never answers


async def test_a_stop_during_a_hanging_connect_ends_at_once() -> None:
    runtime, _ = make_runtime("worker_tasks:work_async", HangingSource())
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(5)
    stopped = loop.time()
    runtime.request_stop()
    await asyncio.wait_for(running, 60)
    assert loop.time() - stopped < 1
