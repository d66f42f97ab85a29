"""Acks sent in batches: ids collected for a few milliseconds go in one call; each caller learns its outcome.

Used by `qc_worker.sources.pubsub` (one `acknowledge` call for many ack ids), as the Pub/Sub client's
dispatcher does. `ack` only enqueues and waits; one flusher task per batching window sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

WINDOW_SECONDS = 0.01  # acks arriving within this of the first share a call
MAX_IDS = 1000  # per call: Pub/Sub's limit on an acknowledge request's size


class AckBatcher:
    def __init__(
        self,
        send: Callable[[list[str]], Awaitable[None]],
        window_seconds: float = WINDOW_SECONDS,
        max_ids: int = MAX_IDS,
    ) -> None:
        self._send = send
        self.window_seconds = window_seconds
        self.max_ids = max_ids
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, ack_id: str) -> bool:
        """True once the broker took the ack; False if the call failed (the message will come back)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((ack_id, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(self.window_seconds)
        while self._pending:  # acks arriving while a call is under way go in the next call, at once
            batch, self._pending = self._pending[: self.max_ids], self._pending[self.max_ids :]
            ok = False  # whatever goes wrong, every caller learns it: an unacked message comes back
            try:
                await self._send([ack_id for ack_id, _ in batch])
                ok = True
            except Exception as error:
                # With exactly-once delivery a refused ack is reported here; the message will come back.
                log.warning("acknowledge failed for %d messages: %s", len(batch), error)
            finally:
                for _, future in batch:
                    if not future.done():
                        future.set_result(ok)
