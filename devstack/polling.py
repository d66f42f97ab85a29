"""Waiting for a condition, with a deadline: the one polling helper of the tests, devstack and benchmarks.

Used by the test harnesses (tests/operator, tests/worker, tests/chart, tests/stack), by devstack while a
service starts (`process.ManagedProcess.wait_ready`, `services.Prometheus.wait_for`) and by the
benchmarks. Every wait has a timeout; when it runs out, `WaitTimeout` says what was awaited and the last
value the probe returned, so a failed test shows how far things got.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL_SECONDS = 0.2


class WaitTimeout(TimeoutError):
    """A probe did not return anything truthy in time; carries what was awaited and the last value seen."""

    def __init__(self, what: str, timeout_seconds: float, last: object) -> None:
        super().__init__(f"timed out after {timeout_seconds:g} s waiting for {what} (last: {last!r})")
        self.what = what
        self.last = last


def wait_until(
    probe: Callable[[], T],
    timeout_seconds: float,
    what: str,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Call `probe` until it returns something truthy, and return that; raise `WaitTimeout` at the deadline.

    The probe runs at least once, and once more after the deadline has passed, so a slow probe is never
    cut short. An exception of a `retry_on` type counts as "not yet" (it becomes the last value seen).
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        last: object
        try:
            last = value = probe()
            if value:
                return value
        except retry_on as error:
            last = error
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout_seconds, last)
        time.sleep(interval_seconds)


async def wait_until_async(
    probe: Callable[[], Awaitable[T]],
    timeout_seconds: float,
    what: str,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """`wait_until` for coroutines: awaits `probe` and sleeps on the event loop between tries.

    The deadline is on the event loop's clock, so a test on a fake loop clock (looptime) waits no real time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while True:
        last: object
        try:
            last = value = await probe()
            if value:
                return value
        except retry_on as error:
            last = error
        if loop.time() >= deadline:
            raise WaitTimeout(what, timeout_seconds, last)
        await asyncio.sleep(interval_seconds)
