"""devstack.polling: the one wait-with-a-deadline of the tests, devstack and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from devstack.polling import WaitTimeout, wait_until, wait_until_async


class Pending:
    """A falsy answer with a readable repr, to find again in the timeout's message."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Pending(step={self.step})"


def answers(*values: object) -> tuple[Callable[[], object], list[int]]:
    """A probe returning `values` one per call (the last one for ever after), and its call count."""
    calls = [0]
    iterator: Iterator[object] = iter(values)
    last: list[object] = [None]

    def probe() -> object:
        calls[0] += 1
        last[0] = value = next(iterator, last[0])
        if isinstance(value, Exception):
            raise value
        return value

    return probe, calls


def test_returns_the_first_truthy_value_after_the_falsy_ones() -> None:
    probe, calls = answers(0, None, "", [], {"replicas": 3})
    assert wait_until(probe, 5, "a truthy value", interval_seconds=0.001) == {"replicas": 3}
    assert calls == [5]


def test_a_timeout_says_what_was_awaited_and_the_last_value_seen() -> None:
    probe, _ = answers(Pending(1), Pending(2))
    with pytest.raises(WaitTimeout) as caught:
        wait_until(probe, 0.05, "the Deployment to scale out", interval_seconds=0.01)
    assert isinstance(caught.value, TimeoutError)
    assert "waiting for the Deployment to scale out" in str(caught.value)
    assert "last: Pending(step=2)" in str(caught.value)
    assert caught.value.what == "the Deployment to scale out"


def test_retried_exceptions_mean_not_yet_and_others_propagate_at_once() -> None:
    probe, calls = answers(ConnectionRefusedError("starting"), ConnectionRefusedError("starting"), "up")
    assert wait_until(probe, 5, "the service", interval_seconds=0.001, retry_on=(OSError,)) == "up"
    assert calls == [3]

    probe, calls = answers(ValueError("a real bug"), "up")
    with pytest.raises(ValueError, match="a real bug"):
        wait_until(probe, 5, "the service", interval_seconds=0.001, retry_on=(OSError,))
    assert calls == [1]


def test_a_timeout_after_retried_exceptions_shows_the_last_one() -> None:
    probe, _ = answers(ConnectionRefusedError("port 5672 closed"))
    with pytest.raises(WaitTimeout, match="port 5672 closed") as caught:
        wait_until(probe, 0.02, "RabbitMQ", interval_seconds=0.005, retry_on=(OSError,))
    assert isinstance(caught.value.last, ConnectionRefusedError)


@pytest.mark.looptime
async def test_async_waits_on_the_loop_clock_between_tries() -> None:
    probe, calls = answers(False, False, False, "ready")

    async def async_probe() -> object:
        return probe()

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_until_async(async_probe, 10, "ready", interval_seconds=0.5) == "ready"
    assert calls == [4]
    assert loop.time() - started == pytest.approx(1.5)  # three sleeps of 0.5 s on the fake clock


@pytest.mark.looptime
async def test_async_timeout_comes_at_the_deadline_with_the_last_value() -> None:
    probe, calls = answers(Pending(7))

    async def async_probe() -> object:
        return probe()

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(
        WaitTimeout, match=r"after 2 s waiting for the queue to drain \(last: Pending\(step=7\)\)"
    ):
        await wait_until_async(async_probe, 2, "the queue to drain", interval_seconds=0.5)
    assert loop.time() - started == pytest.approx(2.0)
    assert calls == [5]  # at 0, 0.5, 1, 1.5 and 2 s: once more at the deadline
