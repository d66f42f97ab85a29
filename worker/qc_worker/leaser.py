"""Keeps the ack deadlines of messages in flight ahead of the clock, for sources that have deadlines.

Started by `qc_worker.runtime` once the source is connected, only if the source reports an ack deadline
(`Source.ack_deadline_seconds`, Pub/Sub). Like the Pub/Sub client's Leaser: one loop, renewals every half
deadline (the shorter of the subscription's and our lease) with jitter so many pods do not renew in step,
and a message held past `max_lease_seconds` is no longer extended (it will be redelivered).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from qc_worker.messages import Delivery
from qc_worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)
JITTER_RATIO = 0.1  # each wait is 90-100% of the renewal interval

Extend = Callable[[list[Delivery], float], Awaitable[int]]  # `Source.extend`


def renewal_interval_seconds(lease_seconds: float, deadline_seconds: float) -> float:
    """Half the shorter deadline: the subscription's holds until our first extension, ours after it."""
    return min(lease_seconds, deadline_seconds) / 2


class Leaser:
    def __init__(
        self,
        extend: Extend,
        held: Callable[[], Iterable[Delivery]],
        metrics: WorkerMetrics,
        lease_seconds: float,
        max_lease_seconds: float,
        deadline_seconds: float,
        rng: random.Random | None = None,  # for tests: a seeded jitter
        clock: Callable[[], float] = time.monotonic,  # for tests: the clock of Delivery.received_monotonic
    ) -> None:
        self._extend = extend
        self._held = held
        self._metrics = metrics
        self.lease_seconds = lease_seconds
        self.max_lease_seconds = max_lease_seconds
        self.renew_every_seconds = renewal_interval_seconds(lease_seconds, deadline_seconds)
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Renew in the background until `stop`."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Wake the loop at once (not at its next renewal) and wait for it to end."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            interval = self.renew_every_seconds * self._rng.uniform(1 - JITTER_RATIO, 1)
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
            except TimeoutError:
                await self._renew()

    async def _renew(self) -> None:
        now = self._clock()
        due = [
            d for d in self._held() if not d.settled and now - d.received_monotonic < self.max_lease_seconds
        ]
        try:
            extended = await self._extend(due, self.lease_seconds)
        except Exception as error:  # the next renewal retries; the deadline still has half a lease left
            log.warning("lease extension failed: %s", error)
            return
        self._metrics.lease_extended(extended)
