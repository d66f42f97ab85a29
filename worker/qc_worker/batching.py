"""Batches for batch tasks: up to `size` items, or whatever arrived within `max_wait_seconds` of the first.

Used by `qc_worker.runtime` for tasks declared with `batch_size`: each delivery is `add`ed, and a full
batch, or the batch whose wait has run out, is handed to the `flush` callback (which starts its task).
The runtime calls `flush` itself when the window is full (nothing more can arrive, so waiting is
pointless) and `take_all` on stop (what never started is released). Synchronous and free of I/O: the
only thing it schedules is the max-wait timer on the running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, size: int, max_wait_seconds: float, flush: Callable[[list[T]], None]) -> None:
        if size < 1:
            raise ValueError("a batch holds at least one item")
        self.size = size
        self.max_wait_seconds = max_wait_seconds
        self._flush = flush
        self._items: list[T] = []
        self._timer: asyncio.TimerHandle | None = None  # runs from the first item of a batch

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append(item)
        if len(self._items) >= self.size:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_seconds, self.flush)

    def flush(self) -> None:
        """Hand what has been collected to the callback now (nothing if empty)."""
        items = self.take_all()
        if items:
            self._flush(items)

    def take_all(self) -> list[T]:
        """Stop the timer and return what has been collected, without handing it to the callback."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._items = self._items, []
        return items
