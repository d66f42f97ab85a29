"""Receipt counts (`qc_worker.sources.pubsub.Receipts`): the delivery attempt when Pub/Sub reports none."""

from __future__ import annotations

from qc_worker.sources.pubsub import Receipts


def test_each_receipt_of_a_message_counts_one_more_attempt_until_it_is_acked() -> None:
    receipts = Receipts()
    assert [receipts.received("a"), receipts.received("b"), receipts.received("a")] == [1, 1, 2]
    receipts.forget("a")  # acked
    assert receipts.received("a") == 1
    receipts.forget("never-received")
    assert len(receipts) == 2


def test_past_the_limit_the_oldest_message_is_forgotten_so_the_table_stays_bounded() -> None:
    receipts = Receipts(limit=2)
    receipts.received("old")
    receipts.received("old")
    receipts.received("b")
    receipts.received("c")  # a third message: "old" goes
    assert len(receipts) == 2
    assert receipts.received("b") == 2
    assert receipts.received("old") == 1  # counted again from the start; "b", now the oldest, goes
    assert receipts.received("c") == 2
    assert receipts.received("b") == 1
