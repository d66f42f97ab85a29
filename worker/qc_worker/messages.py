"""What a task receives, and what the runtime tracks for each message it holds.

`Message` is the user's view: small, immutable and picklable, because it crosses into the process pool.
`Delivery` is the runtime's: the message plus the source's handle needed to ack, nack or extend it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


class MalformedMessage(ValueError):
    """The message cannot be decoded for its task; retrying will not help, so it is dead-lettered at once."""


@dataclass(frozen=True)
class Message:
    data: bytes
    message_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int = 1
    ordering_key: str = ""

    def json(self) -> Any:
        """The body decoded as JSON; raises MalformedMessage (dead-lettered with its reason) if it is not."""
        try:
            return json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedMessage(f"body is not JSON: {error}") from error

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedMessage(f"body is not UTF-8: {error}") from error


@dataclass
class Delivery:
    """One message held by this worker, from receipt to ack, nack or dead-letter."""

    message: Message
    handle: Any  # the source's own: an ack_id for Pub/Sub, an IncomingMessage for RabbitMQ
    received_monotonic: float = field(default_factory=time.monotonic)
    settled: bool = False
    span: Any = None  # its attempt's span while tracing is on (`qc_worker.tracing`), until it is settled
