"""Batches (`qc_worker.batching.Batcher`): by size at once, by max wait on the loop's clock, taken on stop."""

from __future__ import annotations

import asyncio

import pytest

from qc_worker.batching import Batcher

pytestmark = pytest.mark.looptime


class Recorder:
    """The flush callback: each batch with the loop time it was handed over."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[str]]] = []

    def __call__(self, items: list[str]) -> None:
        self.batches.append((asyncio.get_running_loop().time(), items))


async def test_a_full_batch_is_flushed_at_once_in_arrival_order() -> None:
    flushed = Recorder()
    batcher = Batcher(3, max_wait_seconds=5, flush=flushed)
    for item in "abcd":
        batcher.add(item)
    assert flushed.batches == [(0, ["a", "b", "c"])]
    assert len(batcher) == 1
    await asyncio.sleep(10)
    # "d" waited its own max wait, counted from when it arrived; the first batch's timer never fired again.
    assert flushed.batches == [(0, ["a", "b", "c"]), (5, ["d"])]


async def test_a_partial_batch_waits_from_its_first_item_not_its_last() -> None:
    flushed = Recorder()
    batcher = Batcher(10, max_wait_seconds=2, flush=flushed)
    batcher.add("a")
    await asyncio.sleep(1.5)
    batcher.add("b")
    await asyncio.sleep(10)
    assert flushed.batches == [(2, ["a", "b"])]


async def test_flush_hands_over_now_and_cancels_the_timer() -> None:
    flushed = Recorder()
    batcher = Batcher(10, max_wait_seconds=2, flush=flushed)
    batcher.add("a")
    await asyncio.sleep(1)
    batcher.flush()
    batcher.flush()  # nothing collected: no empty batch
    await asyncio.sleep(10)
    assert flushed.batches == [(1, ["a"])]


async def test_take_all_returns_the_collected_items_without_flushing_them() -> None:
    flushed = Recorder()
    batcher = Batcher(10, max_wait_seconds=2, flush=flushed)
    batcher.add("a")
    batcher.add("b")
    assert batcher.take_all() == ["a", "b"]
    assert len(batcher) == 0
    await asyncio.sleep(10)
    assert flushed.batches == []


def test_a_batch_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Batcher(0, max_wait_seconds=1, flush=Recorder())
