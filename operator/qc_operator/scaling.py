"""Desired replicas: the pure decision at the heart of the operator, and of the simulator that measures it.

No I/O and no clock: the caller passes the observation, the state the previous decision left, and `now`.
The operator keeps `ScalingState` in the resource's status between timer ticks; the simulator keeps it in
memory. INTERFACE FIXED (shared by the operator and the simulator); the body is being written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class RatePolicy:
    """At most `value` pods (or percent of current) added/removed per `period_seconds` (HPA semantics)."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_seconds: float


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behaviour, as the HPA's `behavior.scaleUp` / `behavior.scaleDown`."""

    stabilization_window_seconds: float
    policies: tuple[RatePolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int
    max_replicas: int
    # KEDA-style AverageValue target: replicas = ceil(backlog / messages_per_replica).
    messages_per_replica: float | None
    # Latency target: enough replicas to drain the backlog within this, from measured per-replica throughput.
    target_drain_seconds: float | None
    activation_backlog: float  # wake 0 -> 1 only when the backlog exceeds this
    cooldown_seconds: float  # idle this long (no backlog, nothing in flight) before going to min_replicas
    tolerance: float  # no change while |desired/current - 1| <= tolerance
    scale_up: ScalingRules
    scale_down: ScalingRules
    fallback_replicas: int | None  # replicas while the source fails; None holds the current count


@dataclass(frozen=True)
class Observation:
    backlog_messages: float | None  # None: the source failed (never read as zero)
    throughput_per_replica: float | None = None  # messages/s one busy replica completes; None until measured
    in_flight_messages: float = 0.0  # being processed right now (from worker metrics)
    oldest_message_age_seconds: float | None = None


@dataclass(frozen=True)
class ScalingState:
    """What one decision leaves for the next."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (time, unstabilized recommendation)
    changes: tuple[tuple[float, int], ...] = ()  # (time, replica delta applied) for rate-limit periods
    last_active_seconds: float | None = None  # last time there was backlog or work in flight


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str  # one sentence for the status and the Kubernetes Event
    active: bool
    fallback: bool
    state: ScalingState = field(default_factory=ScalingState)


def decide(
    policy: ScalingPolicy,
    observation: Observation,
    current_replicas: int,
    state: ScalingState,
    now_seconds: float,
) -> Decision:
    raise NotImplementedError
