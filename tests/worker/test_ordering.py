"""Ordering keys (`qc_worker.ordering.OrderingKeys`): one task per key, arrival order, release on stop.

The cases follow python-pubsub's tests/unit/pubsub_v1/subscriber/test_messages_on_hold.py: one key, two
keys, ordered and unordered messages interleaved, cleaning up a key that does not exist; plus our own
drain on stop.
"""

from __future__ import annotations

from qc_worker.messages import Delivery, Message
from qc_worker.ordering import OrderingKeys


def delivery(message_id: str, key: str) -> Delivery:
    return Delivery(Message(b"", message_id, ordering_key=key), handle=message_id)


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.message.message_id for d in deliveries]


def test_messages_without_a_key_always_start() -> None:
    keys = OrderingKeys()
    assert [keys.admit(delivery(f"n{i}", "")) for i in range(3)] == [True, True, True]
    assert keys.waiting == 0


def test_one_key_starts_one_message_and_hands_out_the_rest_in_arrival_order() -> None:
    keys = OrderingKeys()
    a1, a2, a3 = delivery("a1", "a"), delivery("a2", "a"), delivery("a3", "a")
    assert [keys.admit(a1), keys.admit(a2), keys.admit(a3)] == [True, False, False]
    assert keys.waiting == 2
    assert keys.next_after("a") is a2
    assert keys.next_after("a") is a3
    assert keys.next_after("a") is None
    # The key is free again: its next message starts at once.
    assert keys.admit(delivery("a4", "a")) is True


def test_different_keys_start_in_parallel() -> None:
    keys = OrderingKeys()
    assert keys.admit(delivery("a1", "a")) is True
    assert keys.admit(delivery("b1", "b")) is True
    assert keys.admit(delivery("a2", "a")) is False
    assert keys.admit(delivery("b2", "b")) is False
    assert ids([d for d in (keys.next_after("b"), keys.next_after("a")) if d is not None]) == ["b2", "a2"]


def test_ordered_and_unordered_messages_interleaved() -> None:
    keys = OrderingKeys()
    a1, a2, free = delivery("a1", "a"), delivery("a2", "a"), delivery("free", "")
    assert [keys.admit(a1), keys.admit(a2), keys.admit(free)] == [True, False, True]
    assert keys.next_after("a") is a2
    assert keys.next_after("a") is None
    assert keys.waiting == 0


def test_a_key_with_no_task_running_has_nothing_to_hand_out() -> None:
    keys = OrderingKeys()
    assert keys.next_after("never-seen") is None
    keys.admit(delivery("a1", "a"))
    keys.admit(delivery("a2", "a"))
    assert keys.next_after("never-seen") is None
    assert keys.waiting == 1  # the other key's waiting message is untouched


def test_drain_returns_the_waiting_messages_and_none_starts_afterwards() -> None:
    keys = OrderingKeys()
    for d in [delivery("a1", "a"), delivery("a2", "a"), delivery("b1", "b"), delivery("a3", "a")]:
        keys.admit(d)
    assert ids(keys.drain()) == ["a2", "a3"]
    assert keys.waiting == 0
    # The running tasks settle later: nothing is left to start behind them, and the keys are freed.
    assert keys.next_after("a") is None
    assert keys.next_after("b") is None
    assert keys.drain() == []
