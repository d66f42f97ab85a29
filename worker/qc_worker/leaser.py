"""Keeps the ack deadlines of messages in flight ahead of the clock, for sources that have deadlines.

Like the Pub/Sub client's Leaser: one loop, renewals every half deadline (the shorter of the subscription's
and our lease) with jitter so many pods do not renew in step, and a message held past
`max_lease_seconds` is no longer extended (it will be redelivered).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from qc_worker.messages import Delivery
from qc_worker.metrics import WorkerMetrics
from qc_worker.sources.base import Source

log = logging.getLogger(__name__)
JITTER_RATIO = 0.1


class Leaser:
    def __init__(
        self,
        source: Source,
        held: Callable[[], list[Delivery]],
        metrics: WorkerMetrics,
        lease_seconds: float,
        max_lease_seconds: float,
    ) -> None:
        self._source = source
        self._held = held
        self._metrics = metrics
        self.lease_seconds = lease_seconds
        self.max_lease_seconds = max_lease_seconds
        self.renew_every_seconds = lease_seconds / 2
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            interval = self.renew_every_seconds * random.uniform(1 - JITTER_RATIO, 1)
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
            except TimeoutError:
                now = time.monotonic()
                due = [
                    d
                    for d in self._held()
                    if not d.settled and now - d.received_monotonic < self.max_lease_seconds
                ]
                await self._extend(due)

    async def _extend(self, deliveries: list[Delivery]) -> None:
        try:
            extended = await self._source.extend(deliveries, self.lease_seconds)
        except Exception as error:  # the next renewal retries; the deadline still has half a lease left
            log.warning("lease extension failed: %s", error)
            return
        self._metrics.lease_extended(extended)

    def stop(self) -> None:
        self._stop.set()
