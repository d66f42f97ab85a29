"""Pure: which operator shard owns a QueueConsumer.

Invoked from `handlers` (the `when=` filter of every QueueConsumer handler) when the operator runs as one
of several shards (QC_SHARD_COUNT > 1, `settings`). Each shard is its own operator Deployment, made highly
available by kopf peering within the shard; the shards share nothing and never talk to each other. The
owner is the label `queueconsumer.io/shard` when it names a shard, else a stable hash of the uid: every
QueueConsumer has exactly one owner, and keeps it for as long as its label and the shard count stay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from qc_common import api


@dataclass(frozen=True)
class Shard:
    """This operator's share: index in [0, count)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} of {self.count}: want 0 <= index < count, count >= 1")

    def owns(self, uid: str, labels: Mapping[str, str]) -> bool:
        return self.count == 1 or owner(uid, labels, self.count) == self.index


def owner(uid: str, labels: Mapping[str, str], count: int) -> int:
    """The shard owning the QueueConsumer with this uid and these labels."""
    pinned = pinned_shard(labels, count)
    return pinned if pinned is not None else hashed_shard(uid, count)


def pinned_shard(labels: Mapping[str, str], count: int) -> int | None:
    """The shard the label names, or None when there is no label or it names no shard (then the hash
    decides: a typo never leaves a QueueConsumer without an operator)."""
    value = labels.get(api.SHARD_LABEL, "")
    return int(value) if value.isdigit() and int(value) < count else None


def hashed_shard(uid: str, count: int) -> int:
    # sha256, not hash(): the same in every process and every Python (hash() is salted per process).
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % count


def label_problem(labels: Mapping[str, str], count: int) -> str | None:
    """A message when the shard label is there but names no shard (the owner by hash says so once)."""
    value = labels.get(api.SHARD_LABEL)
    if value is None or pinned_shard(labels, count) is not None:
        return None
    return (
        f"label {api.SHARD_LABEL}={value!r} names no shard (0 to {count - 1}): placed by the hash of its uid"
    )
