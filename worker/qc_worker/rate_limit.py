"""Pure: the worker's rate limit — a token bucket gating the start of tasks, and the window it needs.

Used by `qc_worker.throttle` (the asyncio side: waiting for a token, the share file). A worker's limit is
the smaller of two: its share of the fleet's `spec.worker.maxMessagesPerSecond` (the operator writes it
into a ConfigMap the pod mounts) and the task's own `@qc_worker.task(max_messages_per_second=...)`.

The bucket is kept small (`BURST_SECONDS` of the rate, at least one token): a fleet of n pods can then go
above its budget by at most n tokens plus a tenth of a second of budget, over any window.

A throttled worker needs few messages: to start `rate` tasks a second that each run `task_seconds`, about
`rate * task_seconds` run at once (Little's law), plus those received a moment ahead of their token.
`window` gives that number, so the rest stay in the broker for the other pods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BURST_SECONDS = 0.1  # the bucket holds this much of the rate (at least one token)
LEAD_SECONDS = 1.0  # messages received this far ahead of their token: the pull's round trip, with margin
DURATION_WEIGHT = 0.2  # weight of the newest task duration in the moving average
TOKEN_EPSILON = 1e-9  # a token short by float rounding is a whole token (a wait that short never ends)


def combined_rate(*limits: float | None) -> float | None:
    """The tightest of the limits set (messages/s); None when none is set."""
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


def parse_share(text: str) -> float | None:
    """A share file's content: a positive number of messages/s; "" (or only space) means no limit.
    Raises ValueError for anything else, so a bad file is logged and the previous share kept."""
    stripped = text.strip()
    if not stripped:
        return None
    value = float(stripped)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a share must be a positive number of messages per second, not {stripped!r}")
    return value


@dataclass
class TokenBucket:
    """Tokens accrue at `rate_per_second` up to the burst; a task starts when it can take one per message.
    `rate_per_second` None: no limit, every take succeeds."""

    rate_per_second: float | None
    tokens: float = 0.0
    updated_seconds: float = 0.0  # monotonic time of the last refill

    @property
    def burst(self) -> float:
        if self.rate_per_second is None:
            return math.inf
        return max(1.0, self.rate_per_second * BURST_SECONDS)

    def _refill(self, now_seconds: float) -> None:
        if self.rate_per_second is not None:
            elapsed = max(0.0, now_seconds - self.updated_seconds)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_second)
        self.updated_seconds = now_seconds

    def set_rate(self, rate_per_second: float | None, now_seconds: float) -> None:
        """A new rate from now on; what accrued so far at the old one is kept, cut to the new burst."""
        self._refill(now_seconds)
        self.rate_per_second = rate_per_second
        self.tokens = min(self.tokens, self.burst)

    def take(self, count: int, now_seconds: float) -> float:
        """Take `count` tokens and return 0.0, or take nothing and return the seconds until they can be.
        A batch larger than the burst waits for a full bucket and leaves the rest as debt, so its average
        rate holds too."""
        self._refill(now_seconds)
        rate = self.rate_per_second
        if rate is None:
            return 0.0
        needed = min(float(count), self.burst)
        if self.tokens >= needed - TOKEN_EPSILON:
            self.tokens -= count
            return 0.0
        return (needed - self.tokens) / rate


def window(capacity: int, rate_per_second: float | None, task_seconds: float | None) -> int:
    """How many messages a worker holds: its capacity without a limit; with one, what `rate` tasks a
    second of `task_seconds` each keep running plus `LEAD_SECONDS` of arrivals, within 1..capacity."""
    if rate_per_second is None:
        return capacity
    needed = rate_per_second * ((task_seconds or 0.0) + LEAD_SECONDS)
    return max(1, min(capacity, math.ceil(needed)))


def moving_average(previous: float | None, sample: float) -> float:
    """The task duration's moving average (`window` uses it)."""
    return sample if previous is None else previous + DURATION_WEIGHT * (sample - previous)


def prefetch_to_set(current: int, window: int) -> int | None:
    """The prefetch to give a pushing broker for this window, or None to keep `current`: raised at once
    when the window outgrows it, lowered only when it is more than twice the window (changing it costs
    RabbitMQ a new consumer, so a window moving by one message does not)."""
    if window > current or current > 2 * window:
        return window
    return None
