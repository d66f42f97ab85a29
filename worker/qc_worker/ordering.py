"""Ordering keys: at most one task per key at a time, in arrival order (Pub/Sub's ordered delivery).

Used by `qc_worker.runtime`, which asks `admit` whether a message may start now and `next_after` what
starts once a task of that key has settled. Like python-pubsub's `MessagesOnHold`, this class only
decides: it holds the messages waiting behind a running one and never starts, settles or awaits anything.
Messages without a key are always admitted.
"""

from __future__ import annotations

import collections

from qc_worker.messages import Delivery


class OrderingKeys:
    def __init__(self) -> None:
        # A key is present while a task of it runs; its deque holds the messages waiting behind that task.
        self._waiting: dict[str, collections.deque[Delivery]] = {}

    def admit(self, delivery: Delivery) -> bool:
        """True: start it now. False: a task of its key is running, so it waits here behind it."""
        key = delivery.message.ordering_key
        if not key:
            return True
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(delivery)
            return False
        self._waiting[key] = collections.deque()
        return True

    def next_after(self, key: str) -> Delivery | None:
        """A task of `key` has settled: the next message of that key to start, or None (the key is free)."""
        waiting = self._waiting.get(key)
        if waiting:
            return waiting.popleft()
        self._waiting.pop(key, None)
        return None

    def drain(self) -> list[Delivery]:
        """On stop: every waiting message (in arrival order within a key), none of which will start."""
        drained = [delivery for waiting in self._waiting.values() for delivery in waiting]
        for waiting in self._waiting.values():
            waiting.clear()
        return drained

    @property
    def waiting(self) -> int:
        """How many messages wait behind a running task of their key."""
        return sum(len(waiting) for waiting in self._waiting.values())
