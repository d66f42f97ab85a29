"""The interface between the runtime (tasks and the window) and a broker (the wire calls)."""

from __future__ import annotations

from typing import Protocol

from qc_worker.messages import Delivery

# Attribute / header names stamped on dead letters so people can see why a message ended there.
DEAD_LETTER_REASON = "qc-dead-letter-reason"
DEAD_LETTER_DETAIL = "qc-dead-letter-detail"
DEAD_LETTER_ATTEMPTS = "qc-delivery-attempts"
DEAD_LETTER_ORIGINAL_ID = "qc-original-message-id"
DEAD_LETTER_SOURCE = "qc-source"
DETAIL_LIMIT_CHARACTERS = 1000


class ReceiveFailed(Exception):
    """The broker could not be asked for messages (an error, not an empty queue); the runtime backs off."""


class Source(Protocol):
    name: str  # the `source` metric label

    @property
    def ack_deadline_seconds(self) -> float | None:
        """How long a message stays ours unless extended (Pub/Sub: the subscription's, known once connected);
        None where messages have no deadline (RabbitMQ). The runtime runs a `Leaser` only when it is set."""
        ...

    async def connect(self) -> None: ...

    async def receive(self, max_messages: int) -> list[Delivery]:
        """Up to `max_messages` new deliveries; waits a little for the first. [] means the queue had nothing
        to give (the operator reads it as a fresh "queue empty"), so a failure raises ReceiveFailed."""
        ...

    async def ack(self, delivery: Delivery) -> bool:
        """Settle a success; False if the broker refused it (the message will come back)."""
        ...

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        """Hand a failed message back for another attempt, not before `delay_seconds`."""
        ...

    async def release(self, delivery: Delivery) -> None:
        """Hand back a message whose task never started (shutdown): redelivered as soon as possible."""
        ...

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Publish to the dead-letter destination with the reason (confirmed), then ack the original."""
        ...

    async def extend(self, deliveries: list[Delivery], seconds: float) -> int:
        """Push the ack deadline of `deliveries` `seconds` ahead; returns how many were extended."""
        ...

    async def close(self) -> None: ...


def dead_letter_headers(delivery: Delivery, source: str, reason: str, detail: str) -> dict[str, str]:
    message = delivery.message
    return {
        **message.attributes,
        DEAD_LETTER_REASON: reason,
        DEAD_LETTER_DETAIL: detail[:DETAIL_LIMIT_CHARACTERS],
        DEAD_LETTER_ATTEMPTS: str(message.delivery_attempt),
        DEAD_LETTER_ORIGINAL_ID: message.message_id,
        DEAD_LETTER_SOURCE: source,
    }
