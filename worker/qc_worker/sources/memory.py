"""An in-process source for unit tests of the runtime: records every settlement, redelivers retries."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass, field

from qc_worker.messages import Delivery, Message
from qc_worker.sources.base import ReceiveFailed, dead_letter_reasons


@dataclass
class MemorySource:
    name: str = "memory"
    ack_deadline_seconds: float | None = None  # set: the runtime leases (extends) what it holds
    receive_wait_seconds: float = 0.05
    batches_pulls: bool = True
    retry_holds_delivery: bool = False
    connected: bool = True
    delivery_limit: int | None = None
    acked: list[str] = field(default_factory=list)
    retried: list[tuple[str, float]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    extensions: int = 0
    failing_receives: int = 0  # for tests: this many next receives fail as a broken connection would
    _queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def put(self, data: bytes, ordering_key: str = "", **attributes: str) -> str:
        message_id = f"m{next(self._ids)}"
        self._queue.put_nowait(Message(data, message_id, dict(attributes), ordering_key=ordering_key))
        return message_id

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def holds_back(self) -> bool:
        return False

    async def connect(self) -> None:
        return None

    async def receive(self, max_messages: int) -> list[Delivery]:
        if self.failing_receives > 0:
            self.failing_receives -= 1
            raise ReceiveFailed("the memory source was told to fail")
        try:
            first = await asyncio.wait_for(self._queue.get(), self.receive_wait_seconds)
        except TimeoutError:
            return []
        messages = [first]
        while len(messages) < max_messages and not self._queue.empty():
            messages.append(self._queue.get_nowait())
        return [Delivery(m, handle=m.message_id) for m in messages]

    async def ack(self, delivery: Delivery) -> bool:
        self.acked.append(delivery.message.message_id)
        return True

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        self.retried.append((delivery.message.message_id, delay_seconds))
        message = delivery.message
        again = dataclasses.replace(message, delivery_attempt=message.delivery_attempt + 1)
        self._queue.put_nowait(again)  # the delay is recorded, not waited: tests stay instant

    async def release(self, delivery: Delivery) -> None:
        self.released.append(delivery.message.message_id)
        self._queue.put_nowait(delivery.message)

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        self.dead_letters.append(
            {**delivery.message.attributes, **dead_letter_reasons(delivery, self.name, reason, detail, None)}
        )

    async def extend(self, deliveries: list[Delivery], seconds: float) -> int:
        self.extensions += len(deliveries)
        return len(deliveries)

    async def close(self) -> None:
        return None
