"""The interface between the runtime (tasks and the window) and a broker (the wire calls)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from qc_worker.messages import Delivery

# Attribute / header names stamped on dead letters so people can see why a message ended there.
DEAD_LETTER_REASON = "qc-dead-letter-reason"
DEAD_LETTER_DETAIL = "qc-dead-letter-detail"
DEAD_LETTER_ATTEMPTS = "qc-delivery-attempts"
DEAD_LETTER_ORIGINAL_ID = "qc-original-message-id"
DEAD_LETTER_SOURCE = "qc-source"
# Pub/Sub takes attribute values of at most 1,024 bytes and 100 attributes a message.
PUBSUB_VALUE_LIMIT_BYTES = 1024
PUBSUB_ATTRIBUTE_LIMIT = 100
# RabbitMQ has no per-header limit, but a dead letter is read by people: a traceback's tail is not needed.
DETAIL_LIMIT_BYTES = 4096


class ReceiveFailed(Exception):
    """The broker could not be asked for messages (an error, not an empty queue); the runtime backs off."""


class Source(Protocol):
    name: str  # the `source` metric label
    # True where a receive is a network round trip (Pub/Sub pull): the runtime waits for a batch of free
    # slots. False where the broker pushes (RabbitMQ): a free slot is refilled from what already arrived.
    batches_pulls: bool
    # True where a retry keeps the message unacked through its backoff (RabbitMQ): the broker will not
    # deliver into that slot, so the runtime counts it as taken until the retry is settled.
    retry_holds_delivery: bool

    @property
    def delivery_limit(self) -> int | None:
        """The broker's own cap on deliveries, known once connected (a quorum queue's `x-delivery-limit`, a
        Pub/Sub dead-letter policy's `max_delivery_attempts`); the runtime dead-letters within it, so the
        broker's cut never comes first and drops our reason. None where there is none."""
        ...

    def holds_back(self) -> bool:
        """Some of our messages wait out a retry delay at the broker (Pub/Sub: a deadline as the delay), so
        an empty receive does not mean an empty queue: the runtime does not count it as one."""
        ...

    @property
    def connected(self) -> bool:
        """The broker is reachable as far as the source knows (`/readyz` answers 503 otherwise)."""
        ...

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


@runtime_checkable
class AdjustablePrefetch(Protocol):
    """A source the broker pushes to (RabbitMQ): the runtime lowers what it may push while throttled."""

    async def set_prefetch(self, count: int) -> bool:
        """Let the broker push at most `count` unsettled messages; False if that failed (asked again)."""
        ...


def cut_to_bytes(text: str, limit_bytes: int) -> str:
    """`text` shortened to at most `limit_bytes` of UTF-8, never splitting a character."""
    return text.encode()[:limit_bytes].decode("utf-8", "ignore")


def dead_letter_reasons(
    delivery: Delivery, source: str, reason: str, detail: str, limit_bytes: int | None
) -> dict[str, str]:
    """Our reason headers / attributes; every value cut to `limit_bytes` (Pub/Sub's) when given."""
    message = delivery.message
    values = {
        DEAD_LETTER_REASON: reason,
        DEAD_LETTER_DETAIL: cut_to_bytes(detail, DETAIL_LIMIT_BYTES),
        DEAD_LETTER_ATTEMPTS: str(message.delivery_attempt),
        DEAD_LETTER_ORIGINAL_ID: message.message_id,
        DEAD_LETTER_SOURCE: source,
    }
    if limit_bytes is None:
        return values
    return {name: cut_to_bytes(value, limit_bytes) for name, value in values.items()}
