"""RabbitMQ message rules, pure: a delivery's attempt number, and the copy we republish for a retry.

Used by `qc_worker.sources.rabbitmq`. Attempts survive crashes because the count lives in the message:
`x-qc-attempts` holds the attempts made before this copy was published, signed (HMAC keyed by the
connection URL, which a publisher without the worker's credentials does not have), so a header a
publisher set itself is ignored rather than skipping retries. On top of it comes the broker's own count:
a quorum queue's `x-delivery-count`; a classic queue only says `redelivered`, so the source moves that
count into the message (republishes with one more attempt) before such a delivery runs.

Such a message is a *suspect*: it was held when a worker died, started or only prefetched beyond the
window. Its copies carry `x-qc-after-crash` (a quorum queue's own count says the same) until one of its
attempts ends with a result, and the source runs a suspect alone (`RabbitMQSource`): nothing unstarted
is held beside it, so if it kills the worker again only what was running is counted, never a message
that merely waited behind it.

A republished copy keeps the body, every property and the headers typed as they arrived (nested tables,
bytes, ints, timestamps); only our own headers change. `user_id` is kept only when it names the
connection's user, because RabbitMQ refuses a publish whose user_id is anyone else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ATTEMPTS_HEADER = "x-qc-attempts"  # attempts made before this copy was published
SIGNATURE_HEADER = "x-qc-attempts-signature"
AFTER_CRASH_HEADER = "x-qc-after-crash"  # a copy of a message held when a worker died (a suspect)
DELIVERY_COUNT_HEADER = "x-delivery-count"  # quorum queues: returns so far (crashes, nacks)
OUR_HEADERS = (ATTEMPTS_HEADER, SIGNATURE_HEADER, AFTER_CRASH_HEADER)
PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "app_id",
)
PERSISTENT = 2


def signing_key(url: str) -> bytes:
    return hashlib.sha256(f"qc-worker attempts\n{url}".encode()).digest()


def sign(key: bytes, queue: str, body: bytes, attempts: int) -> str:
    """Bound to the queue and the body, so a signed header copied onto another message is worthless."""
    text = f"{queue}\n{hashlib.sha256(body).hexdigest()}\n{attempts}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:32]


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def attempts_before(headers: Mapping[str, Any], key: bytes, queue: str, body: bytes) -> int:
    """The signed count of earlier attempts; 0 when absent, malformed or not signed by us."""
    raw, signature = headers.get(ATTEMPTS_HEADER), headers.get(SIGNATURE_HEADER)
    if raw is None or signature is None:
        return 0
    try:
        attempts = int(text(raw))
    except ValueError:
        return 0
    expected = sign(key, queue, body, attempts)
    return max(0, attempts) if hmac.compare_digest(text(signature), expected) else 0


@dataclass(frozen=True)
class Attempt:
    number: int  # this delivery's attempt, from 1
    move_first: bool  # a classic redelivery: republish with the count before running it
    suspect: bool = False  # held when a worker died (see the module's docstring): it runs alone


def delivery_attempt(
    headers: Mapping[str, Any], redelivered: bool, key: bytes, queue: str, body: bytes
) -> Attempt:
    before = attempts_before(headers, key, queue, body)
    # Trusted on our own copies only (they carry a signed count of at least 1): a publisher's marker would
    # otherwise make any message run alone.
    marked = AFTER_CRASH_HEADER in headers and before > 0
    # The broker's count only on a redelivery: a first delivery has no returns to count, and on a classic
    # queue the header is whatever the publisher sent (a dead letter replayed with its headers has one).
    count = headers.get(DELIVERY_COUNT_HEADER) if redelivered else None
    if isinstance(count, int) and not isinstance(count, bool):
        return Attempt(before + count + 1, move_first=False, suspect=marked or count > 0)
    if redelivered:  # the previous delivery ended without a settlement: a crash or a lost connection
        return Attempt(before + 2, move_first=True, suspect=True)
    return Attempt(before + 1, move_first=False, suspect=marked)


def publishable(value: Any) -> Any:
    """A header value as the client library can send it again: a long string that was not UTF-8 arrives as
    bytes, which it only sends as a byte array (the same bytes, AMQP type `x`)."""
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, dict):
        return {k: publishable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [publishable(v) for v in value]
    return value


def copy_fields(
    properties: Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    connection_user: str,
    user_id: str | None,
    extra_headers: Mapping[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for `aio_pika.Message` (the body apart): everything kept, our headers set."""
    kept = {
        name: publishable(value)
        for name, value in (headers or {}).items()
        if name not in OUR_HEADERS and name != DELIVERY_COUNT_HEADER
    }
    fields = {name: properties.get(name) for name in PROPERTIES}
    if fields["delivery_mode"] is None:
        fields["delivery_mode"] = PERSISTENT
    fields["headers"] = {**kept, **extra_headers}
    fields["user_id"] = user_id if user_id == connection_user else None
    return fields


def attempt_headers(
    key: bytes, queue: str, body: bytes, attempts: int, suspect: bool = False
) -> dict[str, Any]:
    headers: dict[str, Any] = {ATTEMPTS_HEADER: attempts, SIGNATURE_HEADER: sign(key, queue, body, attempts)}
    if suspect:
        headers[AFTER_CRASH_HEADER] = 1
    return headers
