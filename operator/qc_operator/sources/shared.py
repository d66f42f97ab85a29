"""SharedReads: one read shared by every caller asking for the same thing while it is young enough.

Used where thousands of QueueConsumers would otherwise each make the same request every tick: the
vhost listings of `sources.rabbitmq` (one per broker) and the Secret values of `reconcile` (one per
Secret). Plain asyncio, no I/O of its own: the caller passes the coroutine that reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
# Entries older than this are dropped when a new one is stored (keys of deleted objects do not pile up).
FORGET_AFTER_SECONDS = 600.0


@dataclass
class SharedReads(Generic[T]):
    """Whoever asks first reads; whoever asks for the same key while that read is at most `max_age_seconds`
    old (or still on its way) gets its result. A failed read is shared only by those who waited for it:
    the next caller reads again."""

    clock: Callable[[], float] = time.monotonic  # a parameter for the tests
    _reads: dict[Hashable, tuple[float, asyncio.Future[T]]] = field(default_factory=dict)

    async def get(
        self, key: Hashable, read: Callable[[], Coroutine[Any, Any, T]], max_age_seconds: float
    ) -> T:
        now = self.clock()
        found = self._reads.get(key)
        if found is None or now - found[0] > max_age_seconds or failed(found[1]):
            self._forget_older_than(now - FORGET_AFTER_SECONDS)
            task = asyncio.ensure_future(read())
            task.add_done_callback(retrieved)
            found = self._reads[key] = (now, task)
        # shield: a caller cancelled (its QueueConsumer deleted) must not cancel the others' read
        return await asyncio.shield(found[1])

    def forget(self, key: Hashable) -> None:
        """The next caller reads anew (e.g. the value was refused: a Secret may have been rotated)."""
        self._reads.pop(key, None)

    def __len__(self) -> int:
        return len(self._reads)

    def _forget_older_than(self, oldest: float) -> None:
        for key in [k for k, (at, read) in self._reads.items() if at < oldest and read.done()]:
            del self._reads[key]


def failed(read: asyncio.Future[Any]) -> bool:
    return read.done() and (read.cancelled() or read.exception() is not None)


def retrieved(read: asyncio.Future[Any]) -> None:
    # Every waiter may have gone: take the exception here, or asyncio logs it as never retrieved.
    if not read.cancelled():
        read.exception()
