"""Which shard owns a QueueConsumer (pure): every one exactly one owner, stable, the label first."""

from __future__ import annotations

import uuid

import pytest

from qc_common import api
from qc_operator.__main__ import peering_priority
from qc_operator.sharding import Shard, hashed_shard, label_problem, owner


def test_every_uid_has_exactly_one_owner_and_the_shares_are_even() -> None:
    uids = [str(uuid.uuid4()) for _ in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(uid, {})] for uid in uids]
    assert all(len(o) == 1 for o in owners), "no overlap, no gap"
    sizes = [sum(o == [i] for o in owners) for i in range(3)]
    assert min(sizes) > 850, f"uneven shares {sizes}"


def test_the_owner_is_stable_across_processes() -> None:
    # sha256 of the uid: the same number in every process (Python's hash() is salted per process)
    assert hashed_shard("6f1c6a58-93c4-4b9a-9f62-2b7b0b0f8a11", 1000) == hashed_shard(
        "6f1c6a58-93c4-4b9a-9f62-2b7b0b0f8a11", 1000
    )
    assert hashed_shard("6f1c6a58-93c4-4b9a-9f62-2b7b0b0f8a11", 7) == 6


@pytest.mark.parametrize(
    ("label", "expected_owner", "problem"),
    [
        ("1", 1, None),
        ("0", 0, None),
        ("2", "hash", "names no shard (0 to 1)"),
        ("one", "hash", "names no shard"),
        ("-1", "hash", "names no shard"),
        (None, "hash", None),
    ],
)
def test_the_shard_label_pins_a_queue_consumer_and_a_wrong_one_falls_back_to_the_hash(
    label: str | None, expected_owner: int | str, problem: str | None
) -> None:
    uid = "0b6e1d2c-0000-4000-8000-000000000000"
    labels = {api.SHARD_LABEL: label} if label is not None else {}
    wanted = hashed_shard(uid, 2) if expected_owner == "hash" else expected_owner
    assert owner(uid, labels, 2) == wanted
    found = label_problem(labels, 2)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_one_shard_owns_everything_and_a_bad_shard_is_refused() -> None:
    assert Shard().owns("any", {api.SHARD_LABEL: "5"})
    with pytest.raises(ValueError, match="want 0 <= index < count"):
        Shard(2, 2)


def test_an_older_replica_has_the_higher_peering_priority() -> None:
    # kopf pauses a replica that sees an equal or higher priority: equal ones would all pause.
    started = 1_790_000_000.0
    assert peering_priority(started, 0) > peering_priority(started + 0.001, 999)
    assert peering_priority(started, 1) != peering_priority(started, 2), "a same-millisecond tie is broken"
