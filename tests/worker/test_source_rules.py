"""The sources' pure rules: RabbitMQ attempt counts and republished copies, Pub/Sub limits and deadlines."""

from __future__ import annotations

import datetime

import pytest

from qc_worker.messages import Delivery, Message
from qc_worker.sources import base
from qc_worker.sources import rabbitmq_messages as rules
from qc_worker.sources.pubsub import dead_letter_attributes, deadline_seconds

KEY = rules.signing_key("amqp://worker:secret@broker:5672/")
BODY = b'{"id": 1}'


def signed(attempts: int, queue: str = "q", body: bytes = BODY) -> dict[str, object]:
    return rules.attempt_headers(KEY, queue, body, attempts)


@pytest.mark.parametrize(
    ("name", "headers", "redelivered", "expected"),
    [
        ("first delivery", {}, False, rules.Attempt(1, move_first=False)),
        ("our signed count", signed(2), False, rules.Attempt(3, move_first=False)),
        (
            "a forged count is ignored",
            {"x-qc-attempts": 99, "x-qc-attempts-signature": "0" * 32},
            False,
            rules.Attempt(1, move_first=False),
        ),
        ("an unsigned count is ignored", {"x-qc-attempts": 99}, False, rules.Attempt(1, move_first=False)),
        ("signed for another queue", signed(4, queue="other"), False, rules.Attempt(1, move_first=False)),
        ("signed for another body", signed(4, body=b"other"), False, rules.Attempt(1, move_first=False)),
        ("classic redelivery: moved first", signed(1), True, rules.Attempt(3, move_first=True, suspect=True)),
        (
            "quorum count added",
            {**signed(1), "x-delivery-count": 2},
            True,
            rules.Attempt(4, move_first=False, suspect=True),
        ),
        (
            "quorum first return",
            {"x-delivery-count": 1},
            True,
            rules.Attempt(2, move_first=False, suspect=True),
        ),
        ("quorum, never returned", {"x-delivery-count": 0}, False, rules.Attempt(1, move_first=False)),
        (
            "a moved copy stays a suspect",
            rules.attempt_headers(KEY, "q", BODY, 1, suspect=True),
            False,
            rules.Attempt(2, move_first=False, suspect=True),
        ),
        (
            "a publisher's marker without our signed count is ignored",
            {"x-qc-after-crash": 1},
            False,
            rules.Attempt(1, move_first=False),
        ),
        (
            "a publisher's count on a first delivery is not the broker's (a replayed dead letter)",
            {"x-delivery-count": 7},
            False,
            rules.Attempt(1, move_first=False),
        ),
        (
            "a publisher's count beside our signed one on a first delivery",
            {**signed(2), "x-delivery-count": 7},
            False,
            rules.Attempt(3, move_first=False),
        ),
        (
            "a marked copy on a quorum queue",
            {**rules.attempt_headers(KEY, "q", BODY, 1, suspect=True), "x-delivery-count": 0},
            False,
            rules.Attempt(2, move_first=False, suspect=True),
        ),
    ],
)
def test_delivery_attempt(
    name: str, headers: dict[str, object], redelivered: bool, expected: rules.Attempt
) -> None:
    assert rules.delivery_attempt(headers, redelivered, KEY, "q", BODY) == expected, name


def test_a_copy_keeps_every_property_and_typed_header_and_drops_only_our_count_and_foreign_user_ids() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    headers = {"n": {"a": [1, b"\x00"]}, "t": when, "x-qc-attempts": 5, "x-delivery-count": 3}
    headers["x-qc-after-crash"] = 1
    properties = {name: f"v-{name}" for name in rules.PROPERTIES} | {"priority": 4, "delivery_mode": 1}
    fields = rules.copy_fields(properties, headers, "worker", "someone-else", {"extra": 1})
    assert fields["headers"] == {"n": {"a": [1, bytearray(b"\x00")]}, "t": when, "extra": 1}
    assert {name: fields[name] for name in rules.PROPERTIES} == properties
    assert fields["user_id"] is None
    assert rules.copy_fields(properties, None, "worker", "worker", {})["user_id"] == "worker"
    assert rules.copy_fields({}, None, "worker", None, {})["delivery_mode"] == rules.PERSISTENT


def test_dead_letter_values_fit_pubsub_s_byte_limit_without_splitting_a_character() -> None:
    delivery = Delivery(Message(b"", "id-" + "x" * 2000), handle=None)
    values = base.dead_letter_reasons(
        delivery, "pubsub", "exception", "€" * 1000, base.PUBSUB_VALUE_LIMIT_BYTES
    )
    assert all(len(v.encode()) <= base.PUBSUB_VALUE_LIMIT_BYTES for v in values.values())
    assert values[base.DEAD_LETTER_DETAIL] == "€" * (1024 // 3)


def test_dead_letter_attributes_keep_the_message_s_own_within_a_hundred() -> None:
    ours = {"qc-dead-letter-reason": "exception", "qc-source": "pubsub"}
    assert dead_letter_attributes({"retry": "1"}, ours) == {"retry": "1", **ours}
    full = {f"a{i}": "v" for i in range(99)}
    assert dead_letter_attributes(full, ours) == {**full, "qc-dead-letter-reason": "exception"}


@pytest.mark.parametrize(
    ("delay", "expected"), [(0, 0), (0.2, 1), (1.0, 1), (1.5, 2), (10_000, 600), (-1, 0)]
)
def test_a_retry_deadline_is_rounded_up_to_whole_seconds(delay: float, expected: int) -> None:
    assert deadline_seconds(delay) == expected
