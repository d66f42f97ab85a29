"""Lease renewal (`qc_worker.leaser.Leaser`) on the loop's clock: when it renews, what, and how it stops."""

from __future__ import annotations

import asyncio
import random

import pytest

from qc_worker.leaser import JITTER_RATIO, Leaser, renewal_interval_seconds
from qc_worker.messages import Delivery, Message
from qc_worker.metrics import WorkerMetrics

pytestmark = pytest.mark.looptime


class Extensions:
    """Stands where `Source.extend` does: records each call with its loop time; can fail on request."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[float, list[str], float]] = []
        self.failures = failures

    async def __call__(self, deliveries: list[Delivery], seconds: float) -> int:
        self.calls.append(
            (asyncio.get_running_loop().time(), [d.message.message_id for d in deliveries], seconds)
        )
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("modify_ack_deadline failed")
        return len(deliveries)


def delivery(message_id: str, received: float = 0.0) -> Delivery:
    return Delivery(Message(b"", message_id), handle=message_id, received_monotonic=received)


def extended(metrics: WorkerMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "qc_worker_lease_extensions_total", {"source": "memory", "task": "t"}
    )
    return value or 0.0


def make_leaser(
    extend: Extensions, held: list[Delivery], lease_seconds: float = 30, max_lease_seconds: float = 3600
) -> tuple[Leaser, WorkerMetrics]:
    metrics = WorkerMetrics("memory", "t", 1)
    leaser = Leaser(
        extend,
        lambda: held,
        metrics,
        lease_seconds,
        max_lease_seconds,
        deadline_seconds=10,
        rng=random.Random(7),
        clock=asyncio.get_running_loop().time,
    )
    return leaser, metrics


@pytest.mark.parametrize(
    ("lease_seconds", "deadline_seconds", "expected"),
    [(30, 10, 5), (30, 600, 15), (10, 10, 5)],
)
def test_renewal_comes_at_half_the_shorter_deadline(
    lease_seconds: float, deadline_seconds: float, expected: float
) -> None:
    assert renewal_interval_seconds(lease_seconds, deadline_seconds) == expected


async def test_renews_every_half_deadline_with_jitter_by_our_lease() -> None:
    extend = Extensions()
    leaser, metrics = make_leaser(extend, [delivery("m1"), delivery("m2")])
    leaser.start()
    await asyncio.sleep(21)
    await leaser.stop()
    times = [at for at, _, _ in extend.calls]
    gaps = [later - earlier for earlier, later in zip([0.0, *times], times, strict=False)]
    assert len(times) == 4  # 21 s at 4.5-5 s each
    assert all(5 * (1 - JITTER_RATIO) <= gap <= 5 for gap in gaps), gaps
    assert {(tuple(ids), seconds) for _, ids, seconds in extend.calls} == {(("m1", "m2"), 30)}
    assert extended(metrics) == 8


async def test_settled_messages_and_those_held_past_the_max_lease_are_not_extended() -> None:
    extend = Extensions()
    settled = delivery("settled")
    settled.settled = True
    held = [delivery("fresh"), settled, delivery("old", received=-100.0)]
    leaser, metrics = make_leaser(extend, held, max_lease_seconds=100)
    leaser.start()
    await asyncio.sleep(5)
    await leaser.stop()
    assert [ids for _, ids, _ in extend.calls] == [["fresh"]]
    assert extended(metrics) == 1


async def test_a_failed_renewal_is_retried_at_the_next_one() -> None:
    extend = Extensions(failures=1)
    leaser, metrics = make_leaser(extend, [delivery("m1")])
    leaser.start()
    await asyncio.sleep(10)
    await leaser.stop()
    assert len(extend.calls) == 2
    assert extended(metrics) == 1  # only the renewal that went through is counted


async def test_stop_ends_the_loop_at_once_not_at_the_next_renewal() -> None:
    leaser, _ = make_leaser(Extensions(), [])
    leaser.start()
    await asyncio.sleep(1)
    await leaser.stop()
    assert asyncio.get_running_loop().time() == 1
