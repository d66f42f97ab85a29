"""Batched acks (`qc_worker.ack_batcher.AckBatcher`): one call per window, every caller told the outcome."""

from __future__ import annotations

import asyncio

import pytest

from qc_worker.ack_batcher import AckBatcher

pytestmark = pytest.mark.looptime


class Broker:
    """Stands where Pub/Sub's `acknowledge` does: records each call and its loop time; can fail or be slow."""

    def __init__(self, call_seconds: float = 0.0, failures: int = 0) -> None:
        self.calls: list[tuple[float, list[str]]] = []
        self.call_seconds = call_seconds
        self.failures = failures

    async def __call__(self, ack_ids: list[str]) -> None:
        self.calls.append((asyncio.get_running_loop().time(), ack_ids))
        await asyncio.sleep(self.call_seconds)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("acknowledge failed")


async def test_acks_within_the_window_share_one_call_sent_when_the_window_ends() -> None:
    broker = Broker()
    batcher = AckBatcher(broker, window_seconds=0.5)
    results = await asyncio.gather(*(batcher.ack(f"a{i}") for i in range(5)))
    assert results == [True] * 5
    assert broker.calls == [(0.5, ["a0", "a1", "a2", "a3", "a4"])]


async def test_a_large_batch_is_split_at_the_maximum_ids_per_call() -> None:
    broker = Broker()
    batcher = AckBatcher(broker, window_seconds=0.5, max_ids=2)
    results = await asyncio.gather(*(batcher.ack(f"a{i}") for i in range(5)))
    assert results == [True] * 5
    assert [ids for _, ids in broker.calls] == [["a0", "a1"], ["a2", "a3"], ["a4"]]


async def test_a_failed_call_tells_each_of_its_callers_and_later_acks_go_through() -> None:
    broker = Broker(failures=1)
    batcher = AckBatcher(broker, window_seconds=0.5)
    assert await asyncio.gather(batcher.ack("a0"), batcher.ack("a1")) == [False, False]
    assert await batcher.ack("a2") is True
    assert [ids for _, ids in broker.calls] == [["a0", "a1"], ["a2"]]


async def test_acks_arriving_during_a_call_go_in_the_next_call_without_another_window() -> None:
    broker = Broker(call_seconds=1.0)
    batcher = AckBatcher(broker, window_seconds=0.5)
    first = asyncio.create_task(batcher.ack("a0"))
    await asyncio.sleep(0.8)  # the first call is under way (0.5-1.5)
    second = asyncio.create_task(batcher.ack("a1"))
    assert await asyncio.gather(first, second) == [True, True]
    assert broker.calls == [(0.5, ["a0"]), (1.5, ["a1"])]
