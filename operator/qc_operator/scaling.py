"""Desired replicas: the pure decision at the heart of the operator, and of the simulator that measures it.

No I/O and no clock: the caller passes the observation, the state the previous decision left, and `now`.
The operator keeps `ScalingState` between ticks (and in the resource's status when it scales); the
simulator keeps it in memory. The steps, in order, follow KEDA + the HPA where they agree with us:
  1. source failed            -> fallback replicas (never zero unless fallback is explicitly 0);
  2. the metric               -> replicas from backlog per replica (KEDA's AverageValue) and/or from the
                                 measured per-replica throughput and a drain-time target; the larger wins;
                                 no change while the usage ratio is within the tolerance (HPA). The
                                 drain-time target drains the backlog as it is now: a reading minutes old,
                                 corrected when the workers found the queue empty (`present_backlog`);
  3. activation and cooldown  -> 0 -> 1 only above the activation backlog; -> 0 only after the cooldown
                                 without backlog or work in flight (KEDA);
  4. stabilization windows    -> HPA's: up takes the window's minimum, down its maximum;
  5. rate limits              -> HPA's policies per period, select Max / Min / Disabled;
  6. bounds                   -> min and max replicas always hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True)
class RatePolicy:
    """At most `value` pods (or percent of the period's starting count) added/removed per period."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_seconds: float


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behaviour, as the HPA's `behavior.scaleUp` / `behavior.scaleDown`."""

    stabilization_window_seconds: float
    policies: tuple[RatePolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


# The HPA's documented defaults (autoscaling/v2).
HPA_SCALE_UP = ScalingRules(0, (RatePolicy("Pods", 4, 15), RatePolicy("Percent", 100, 15)))
HPA_SCALE_DOWN = ScalingRules(300, (RatePolicy("Percent", 100, 15),))
HPA_TOLERANCE = 0.1

# Our defaults (the CRD's), chosen with the simulator (`qc-operator simulate` and `make bench-simulator`,
# see the README's "Simulate before you deploy"): poll often, size the fleet for the work in progress plus
# draining the backlog within 20 s, scale up in big steps (the latency target is computed from measured
# throughput, so big steps do not overshoot), give capacity back two minutes after the last higher
# recommendation. The HPA waits five because its metric may be noisy and stale; our drain target drops as
# soon as the workers find the queue empty (`present_backlog`), so waiting longer holds idle pods.
DEFAULT_POLLING_INTERVAL_SECONDS = 5.0
DEFAULT_COOLDOWN_SECONDS = 60.0
DEFAULT_TARGET_DRAIN_SECONDS = 20.0
DEFAULT_TOLERANCE = 0.2
DEFAULT_SCALE_UP = ScalingRules(0, (RatePolicy("Pods", 10, 15), RatePolicy("Percent", 400, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(120, (RatePolicy("Percent", 50, 15),))

# How old a backlog reading may be: Cloud Monitoring's Pub/Sub metrics lag 60-180 s, RabbitMQ's management
# API a few seconds. A reading taken this long after the workers found the queue empty is all new backlog.
MAX_METRIC_LAG_SECONDS = 180.0


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
    tolerance: float  # no change while |usage ratio - 1| <= tolerance
    scale_up: ScalingRules
    scale_down: ScalingRules
    fallback_replicas: int | None  # replicas while the source fails; None holds the current count (>= 1)


@dataclass(frozen=True)
class Observation:
    backlog_messages: float | None  # None: the source failed (never read as zero)
    throughput_per_replica: float | None = None  # messages/s one busy replica completes; None until measured
    in_flight_messages: float = 0.0  # being processed right now (from worker metrics)
    oldest_message_age_seconds: float | None = None
    # Replicas' worth of work being done now: the sum of the workers' busy fractions. The latency target
    # adds the backlog's drain on top, so a fleet that keeps up with a steady stream is not scaled away.
    busy_replicas: float | None = None
    # Whether a worker, with slots free, asked for messages and got none since the previous observation (its
    # empty-receive counter rose): the queue had nothing to give then, however old the backlog reading is.
    # None: unknown (no worker metrics, or none to compare with yet).
    queue_found_empty: bool | None = None


@dataclass(frozen=True)
class ScalingState:
    """What one decision leaves for the next."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (time, unstabilized recommendation)
    changes: tuple[tuple[float, int], ...] = ()  # (time, replica delta applied) for rate-limit periods
    last_active_seconds: float | None = None  # last time there was backlog or work in flight
    queue_empty_seconds: float | None = None  # last time the workers found the queue empty
    stale_backlog: float = 0.0  # how much of the backlog reading replays what the workers had drained


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str  # one sentence for the status and the Kubernetes Event
    active: bool
    fallback: bool
    state: ScalingState = field(default_factory=ScalingState)


def _clamp(replicas: int, policy: ScalingPolicy) -> int:
    return max(policy.min_replicas, min(policy.max_replicas, replicas))


def present_backlog(observation: Observation, state: ScalingState, now: float) -> tuple[float, ScalingState]:
    """The backlog now, from a reading that may be minutes old and the workers' empty receives, which are not.

    When the workers found the queue empty, the reading, whatever it shows, is what they had already
    drained. That much stays discounted while the reading falls back (its delayed replay of the drain), for
    at most MAX_METRIC_LAG_SECONDS; a reading rising above it is new backlog. Not knowing (None): the
    reading as it is. The workers' load is no substitute: a worker on tasks much shorter than the broker's
    round trip holds few messages at full speed, so a fleet facing any backlog can look half idle.
    """
    backlog = observation.backlog_messages or 0.0
    if observation.queue_found_empty is None:
        return backlog, state
    if observation.queue_found_empty:
        return 0.0, replace(state, queue_empty_seconds=now, stale_backlog=backlog)
    if state.queue_empty_seconds is None or now - state.queue_empty_seconds > MAX_METRIC_LAG_SECONDS:
        return backlog, replace(state, stale_backlog=0.0)
    stale = min(state.stale_backlog, backlog)
    return backlog - stale, replace(state, stale_backlog=stale)


def metric_replicas(
    policy: ScalingPolicy, observation: Observation, current: int, present: float | None = None
) -> tuple[int, str]:
    """Step 2: the replicas the backlog asks for, and which target asked (before activation and limits).

    `present` is the backlog now (`present_backlog`) for the drain-time target; None: the reading. The
    messages-per-replica target always uses the reading, as KEDA does.
    """
    backlog = observation.backlog_messages or 0.0
    present = backlog if present is None else present
    candidates: list[tuple[float, str]] = []
    if policy.messages_per_replica:
        # As the HPA computes an AverageValue target (usage ratio times current), float rounding included.
        target = policy.messages_per_replica
        exact = (backlog / current) / target * current if current > 0 else backlog / target
        candidates.append((exact, f"{target:g} messages per replica"))
    throughput = observation.throughput_per_replica
    if policy.target_drain_seconds and throughput and throughput > 0:
        needed = present / (throughput * policy.target_drain_seconds) + (observation.busy_replicas or 0.0)
        why = f"draining in {policy.target_drain_seconds:g} s at {throughput:.3g} msg/s per replica"
        if present < backlog:
            why += f" (the workers found the queue empty: the backlog now is {present:.0f})"
        candidates.append((needed, why))
    if not candidates:
        return current, "no metric target can be computed yet"
    exact, why = max(candidates)
    if current > 0 and abs(exact / current - 1) <= policy.tolerance:
        return current, f"within the {policy.tolerance:g} tolerance of {why}"
    return math.ceil(exact), why


def stabilize(
    recommendations: tuple[tuple[float, int], ...], current: int, policy: ScalingPolicy, now: float
) -> int:
    """Step 4, the HPA's: scale up to the window's minimum, down to the window's maximum."""
    up_window, down_window = (
        policy.scale_up.stabilization_window_seconds,
        policy.scale_down.stabilization_window_seconds,
    )
    up_candidates = [r for t, r in recommendations if now - t <= up_window]
    down_candidates = [r for t, r in recommendations if now - t <= down_window]
    stabilized = current
    if up_candidates and stabilized < min(up_candidates):
        stabilized = min(up_candidates)
    if down_candidates and stabilized > max(down_candidates):
        stabilized = max(down_candidates)
    return stabilized


def _changed_in_period(changes: tuple[tuple[float, int], ...], period: float, now: float, up: bool) -> int:
    return sum(abs(d) for t, d in changes if now - t < period and (d > 0) == up)


def rate_limit(
    desired: int, current: int, changes: tuple[tuple[float, int], ...], policy: ScalingPolicy, now: float
) -> int:
    """Step 5, the HPA's: how far one step may go given what changed within each policy's period."""
    if desired > current:
        rules = policy.scale_up
        if rules.select_policy == "Disabled":
            return current
        start = max(current, 1) if current == 0 else current  # from zero, count as one (KEDA activates to 1)
        limits = []
        for rate in rules.policies:
            period_start = start - _changed_in_period(changes, rate.period_seconds, now, up=True)
            if rate.kind == "Pods":
                limits.append(period_start + rate.value)
            else:
                limits.append(math.ceil(period_start * (1 + rate.value / 100)))
        if not limits:
            return desired
        limit = max(limits) if rules.select_policy == "Max" else min(limits)
        return max(min(desired, limit), 1 if current == 0 else current)
    if desired < current:
        rules = policy.scale_down
        if rules.select_policy == "Disabled":
            return current
        limits = []
        for rate in rules.policies:
            period_start = current + _changed_in_period(changes, rate.period_seconds, now, up=False)
            if rate.kind == "Pods":
                limits.append(period_start - rate.value)
            else:
                limits.append(int(period_start * (1 - rate.value / 100)))
        if not limits:
            return desired
        limit = min(limits) if rules.select_policy == "Max" else max(limits)
        return min(max(desired, limit), current)
    return desired


def _prune(state: ScalingState, policy: ScalingPolicy, now: float) -> ScalingState:
    keep_recommendations = max(
        policy.scale_up.stabilization_window_seconds, policy.scale_down.stabilization_window_seconds
    )
    periods = [r.period_seconds for r in policy.scale_up.policies + policy.scale_down.policies]
    keep_changes = max(periods, default=0.0)
    return replace(
        state,
        recommendations=tuple((t, r) for t, r in state.recommendations if now - t <= keep_recommendations),
        changes=tuple((t, d) for t, d in state.changes if now - t < keep_changes),
    )


def decide(
    policy: ScalingPolicy,
    observation: Observation,
    current_replicas: int,
    state: ScalingState,
    now_seconds: float,
) -> Decision:
    now = now_seconds
    state = _prune(state, policy, now)
    backlog = observation.backlog_messages

    if backlog is None:  # step 1
        if policy.fallback_replicas is not None:
            target = _clamp(policy.fallback_replicas, policy)
            reason = f"the backlog source failed: using the {target} fallback replicas"
        else:
            target = _clamp(max(current_replicas, 1), policy)
            reason = f"the backlog source failed: holding {target} replicas"
        return Decision(target, reason, active=current_replicas > 0, fallback=True, state=state)

    busy = backlog > 0 or observation.in_flight_messages > 0
    if busy:
        state = replace(state, last_active_seconds=now)
    present, state = present_backlog(observation, state, now)
    recommendation, why = metric_replicas(policy, observation, current_replicas, present)  # step 2

    # Step 3: activation from zero, cooldown to zero.
    if current_replicas == 0:
        active = backlog > policy.activation_backlog
        if not active:
            recommendation, why = 0, f"inactive: backlog {backlog:g} is not above the activation threshold"
        else:
            recommendation = max(recommendation, 1)
    else:
        idle_for = now - state.last_active_seconds if state.last_active_seconds is not None else math.inf
        active = busy or idle_for < policy.cooldown_seconds
        if active:
            recommendation = max(recommendation, 1)
        else:
            recommendation, why = 0, f"idle for {policy.cooldown_seconds:g} s (the cooldown)"

    recommendation = _clamp(recommendation, policy)
    state = replace(state, recommendations=(*state.recommendations, (now, recommendation)))
    if not active and recommendation == 0:
        # The cooldown is this step's stabilization: going to zero skips the window and rate limits (as KEDA).
        target = recommendation
    else:
        stabilized = stabilize(state.recommendations, current_replicas, policy, now)  # step 4
        limited = rate_limit(stabilized, current_replicas, state.changes, policy, now)  # step 5
        target = _clamp(limited, policy)  # step 6

    if target != current_replicas:
        state = replace(state, changes=(*state.changes, (now, target - current_replicas)))
        direction = "up" if target > current_replicas else "down"
        reason = f"scaled {direction} from {current_replicas} to {target}: backlog {backlog:g}, {why}"
        if target != recommendation:
            reason += f" (recommended {recommendation}, held by stabilization or rate limits)"
    else:
        reason = f"holding {target}: backlog {backlog:g}, {why}"
    return Decision(target, reason, active=active, fallback=False, state=state)
