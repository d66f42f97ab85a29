"""The downstream a fleet writes to, in the simulator: calls beyond what it accepts fail and come back.

Used by `simulator.model` when a trace has a `downstream` column (calls per second it accepts; 0 is an
outage, inf no limit). Every attempt is a call to the downstream and takes a worker's slot whether it
succeeds or not. A failed attempt is retried after the worker's backoff (its defaults: 1 s doubling to
60 s, jittered in the upper half, so 3/4 of the ceiling on average) and dead-lettered after the CRD's
`maxDeliveryAttempts`. Messages are tracked as a fluid by the attempts they have had, and each second's
attempts are taken from every group in proportion to its size (a FIFO queue mixes them the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qc_operator import schema

# The worker's retry backoff defaults (qc_worker.settings; the operator cannot import the worker).
RETRY_BACKOFF_MIN_SECONDS = 1.0
RETRY_BACKOFF_MAX_SECONDS = 60.0
MEAN_JITTER = 0.75  # full jitter in the upper half of the ceiling: 3/4 of it on average


def default_max_attempts() -> int:
    return int(schema.default_at("worker", "maxDeliveryAttempts"))


def retry_delay_seconds(attempts_made: int) -> int:
    """The mean backoff after the `attempts_made`-th failed attempt, in whole model seconds (at least 1)."""
    ceiling = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_MIN_SECONDS * 2.0 ** max(0, attempts_made - 1))
    return max(1, math.ceil(ceiling * MEAN_JITTER))


@dataclass(frozen=True)
class Step:
    attempts: float  # calls made to the downstream this second
    acked: float
    failed: float
    dead_lettered: float = 0.0  # failed on their last attempt: out of the queue, not acked


@dataclass
class RetryingQueue:
    max_attempts: int
    # Messages ready for an attempt, by the attempts they have had (index 0: never tried).
    waiting: list[float] = field(default_factory=list)
    # Messages waiting out a backoff: the second they return → messages by attempts had.
    backing_off: dict[int, list[float]] = field(default_factory=dict)
    retries: float = 0.0  # attempts of messages that had failed before: the calls the downstream got again
    failed: float = 0.0
    dead_letters: float = 0.0

    def __post_init__(self) -> None:
        self.waiting = [0.0] * self.max_attempts

    @property
    def messages(self) -> float:
        """Every message not yet acked or dead-lettered: a backlog metric counts those in backoff too (held
        unacked on RabbitMQ, undelivered on Pub/Sub)."""
        held = sum(sum(group) for group in self.backing_off.values())
        return sum(self.waiting) + held

    def step(self, second: int, arrived: float, slots: float, accepted_per_second: float) -> Step:
        """One second: arrivals and due retries join, up to `slots` attempts are made, the downstream
        accepts at most `accepted_per_second` of them, the rest back off or go to the dead letters."""
        self.waiting[0] += arrived
        for attempts_had, count in enumerate(self.backing_off.pop(second, [])):
            self.waiting[attempts_had] += count
        ready = sum(self.waiting)
        attempts = min(ready, slots)
        if attempts <= 0:
            return Step(0.0, 0.0, 0.0)
        acked = min(attempts, accepted_per_second)
        failing = 1.0 - acked / attempts
        share = attempts / ready
        dead_before = self.dead_letters
        for attempts_had in range(self.max_attempts):
            tried = self.waiting[attempts_had] * share
            self.waiting[attempts_had] -= tried
            if attempts_had > 0:
                self.retries += tried
            failed = tried * failing
            if failed <= 0:
                continue
            if attempts_had + 1 >= self.max_attempts:
                self.dead_letters += failed
                continue
            returns = self.backing_off.setdefault(
                second + retry_delay_seconds(attempts_had + 1), [0.0] * self.max_attempts
            )
            returns[attempts_had + 1] += failed
        self.failed += attempts - acked
        return Step(attempts, acked, attempts - acked, self.dead_letters - dead_before)
