"""Desired replicas: the pure decision at the heart of the operator, and of the simulator that measures it.

No I/O and no clock: the caller passes the observation, the state the previous decision left, and `now`.
The operator keeps `ScalingState` between ticks (and in the resource's status when it scales); the
simulator keeps it in memory. The steps, in order, follow KEDA + the HPA where they agree with us:
  1. source failed            -> fallback replicas (never zero unless fallback is explicitly 0);
  2. the metric               -> replicas from backlog per replica (KEDA's AverageValue, computed as the
                                 HPA computes an External AverageValue: ceil(backlog / target)) and/or from
                                 the measured per-replica throughput and a drain-time target; each target
                                 holds the current count while its usage ratio is within the scale-up /
                                 scale-down tolerances, and the larger proposal wins (the HPA's metrics).
                                 The drain-time target drains the backlog as it is now: a reading minutes
                                 old, corrected when the workers found the queue empty (`present_backlog`);
  3. activation and cooldown  -> 0 -> 1 only above the activation backlog; -> 0 only after the cooldown
                                 without backlog or work in flight (KEDA);
  4. stabilization windows    -> HPA's: up takes the window's minimum, down its maximum, over the
                                 recommendations strictly younger than the window;
  5. rate limits              -> HPA's policies per period, select Max / Min / Disabled; a period starts
                                 from the count before every change within it, in both directions;
  6. bounds                   -> min and max replicas always hold (a count outside them goes straight to
                                 the bound, as the HPA does).
`hpa_compatible` builds the policy under which these steps give the HPA's numbers (tests/scaling/
test_hpa_conformance.py checks them against the HPA's own test tables); `overridden_state` is what to keep
when something else (a pause) decides the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from qc_operator import scaling_policy

# The policy's names, where callers have always found them (`scaling.ScalingPolicy`, ...).
DEFAULT_COOLDOWN_SECONDS = scaling_policy.DEFAULT_COOLDOWN_SECONDS
DEFAULT_POLLING_INTERVAL_SECONDS = scaling_policy.DEFAULT_POLLING_INTERVAL_SECONDS
DEFAULT_SCALE_DOWN = scaling_policy.DEFAULT_SCALE_DOWN
DEFAULT_SCALE_UP = scaling_policy.DEFAULT_SCALE_UP
DEFAULT_TARGET_DRAIN_SECONDS = scaling_policy.DEFAULT_TARGET_DRAIN_SECONDS
DEFAULT_TOLERANCE = scaling_policy.DEFAULT_TOLERANCE
HPA_SCALE_DOWN = scaling_policy.HPA_SCALE_DOWN
HPA_SCALE_UP = scaling_policy.HPA_SCALE_UP
HPA_TOLERANCE = scaling_policy.HPA_TOLERANCE
KEDA_COOLDOWN_SECONDS = scaling_policy.KEDA_COOLDOWN_SECONDS
RatePolicy = scaling_policy.RatePolicy
ScalingPolicy = scaling_policy.ScalingPolicy
ScalingRules = scaling_policy.ScalingRules
hpa_compatible = scaling_policy.hpa_compatible

# How old a backlog reading may be: Cloud Monitoring's Pub/Sub metrics lag 60-180 s, RabbitMQ's management
# API a few seconds. A reading taken this long after the workers found the queue empty is all new backlog.
MAX_METRIC_LAG_SECONDS = 180.0


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

    # (time, unstabilized recommendation); the newest is kept even when stale: empty means no history yet.
    recommendations: tuple[tuple[float, int], ...] = ()
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


def milli(value: float) -> int:
    """A metric as the HPA reads it: a milli-quantity (KEDA reports its metrics in milli-units)."""
    return round(value * 1000)


def average_value_replicas(policy: ScalingPolicy, backlog: float, current: int, target: float) -> int:
    """The HPA's GetExternalPerPodMetricReplicas (and GetObjectPerPodMetricReplicas): the usage ratio
    decides only whether to act; the count is ceil(total / target), never the ratio times the count."""
    usage, target_milli = milli(backlog), max(milli(target), 1)
    if current > 0 and policy.within_tolerance(usage / (target_milli * current)):
        return current
    return math.ceil(usage / target_milli)


def metric_replicas(
    policy: ScalingPolicy, observation: Observation, current: int, present: float | None = None
) -> tuple[int, str]:
    """Step 2: the replicas the backlog asks for, and which target asked (before activation and limits).

    `present` is the backlog now (`present_backlog`) for the drain-time target; None: the reading. The
    messages-per-replica target always uses the reading, as KEDA does. Each target is its own HPA metric:
    its own tolerance test, then the largest proposal wins.
    """
    backlog = observation.backlog_messages or 0.0
    present = backlog if present is None else present
    candidates: list[tuple[int, str]] = []
    if policy.messages_per_replica:
        target = policy.messages_per_replica
        replicas = average_value_replicas(policy, backlog, current, target)
        within = replicas == current and current > 0
        why = f"{target:g} messages per replica"
        candidates.append((replicas, f"within the tolerance of {why}" if within else why))
    throughput = observation.throughput_per_replica
    if policy.target_drain_seconds and throughput and throughput > 0:
        needed = present / (throughput * policy.target_drain_seconds) + (observation.busy_replicas or 0.0)
        why = f"draining in {policy.target_drain_seconds:g} s at {throughput:.3g} msg/s per replica"
        if present < backlog:
            why += f" (the workers found the queue empty: the backlog now is {present:.0f})"
        if current > 0 and policy.within_tolerance(needed / current):
            candidates.append((current, f"within the tolerance of {why}"))
        else:
            candidates.append((math.ceil(needed), why))
    if not candidates:
        return current, "no metric target can be computed yet"
    return max(candidates, key=lambda c: c[0])


def stabilize(
    desired: int, history: tuple[tuple[float, int], ...], current: int, policy: ScalingPolicy, now: float
) -> int:
    """Step 4, the HPA's stabilizeRecommendationWithBehaviors: `desired` with the earlier recommendations
    strictly younger than each window (one exactly a window old no longer counts); scale up to the up
    window's minimum, down to the down window's maximum."""
    up_window = policy.scale_up.stabilization_window_seconds
    down_window = policy.scale_down.stabilization_window_seconds
    up = min([desired] + [r for t, r in history if now - t < up_window])
    down = max([desired] + [r for t, r in history if now - t < down_window])
    return min(max(current, up), down)


def _changed_in_period(changes: tuple[tuple[float, int], ...], period: float, now: float) -> tuple[int, int]:
    """(added, removed) by the changes strictly younger than the period (getReplicasChangePerPeriod)."""
    recent = [d for t, d in changes if now - t < period]
    return sum(d for d in recent if d > 0), -sum(d for d in recent if d < 0)


def rate_limit(
    desired: int, current: int, changes: tuple[tuple[float, int], ...], policy: ScalingPolicy, now: float
) -> int:
    """Step 5, the HPA's calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors: each
    policy's period starts from `current - added + removed` within it; no limit reverses the direction."""
    up = desired > current
    if desired == current:
        return desired
    rules = policy.scale_up if up else policy.scale_down
    if rules.select_policy == "Disabled":
        return current
    start = 1 if current == 0 else current  # from zero, count as one (KEDA activates to 1)
    limits = []
    for rate in rules.policies:
        added, removed = _changed_in_period(changes, rate.period_seconds, now)
        period_start = start - added + removed
        if rate.kind == "Pods":
            limits.append(period_start + rate.value if up else period_start - rate.value)
        elif up:  # rounded up, or a small fleet could never grow
            limits.append(math.ceil(period_start * (1 + rate.value / 100)))
        else:
            limits.append(int(period_start * (1 - rate.value / 100)))
    if not limits:
        return desired
    widest = (rules.select_policy == "Max") == up
    limit = max(limits) if widest else min(limits)
    if up:
        return min(desired, max(limit, start))
    return max(desired, min(limit, current))


def _prune(state: ScalingState, policy: ScalingPolicy, now: float) -> ScalingState:
    keep_recommendations = max(
        policy.scale_up.stabilization_window_seconds, policy.scale_down.stabilization_window_seconds
    )
    periods = [r.period_seconds for r in policy.scale_up.policies + policy.scale_down.policies]
    keep_changes = max(periods, default=0.0)
    kept = tuple((t, r) for t, r in state.recommendations if now - t < keep_recommendations)
    return replace(
        state,
        recommendations=kept or state.recommendations[-1:],  # never empty once there is history
        changes=tuple((t, d) for t, d in state.changes if now - t < keep_changes),
    )


def resumed_state(
    state: ScalingState, policy: ScalingPolicy, current_replicas: int, now: float
) -> ScalingState:
    """The state to start from after a restart, from what the status recorded: a restarted HPA counts the
    current replicas as a recommendation (recordInitialRecommendation), so it waits a window to scale down."""
    if not policy.initial_recommendation:
        return state
    return replace(state, recommendations=(*state.recommendations, (now, current_replicas)))


def overridden_state(
    decision: Decision, current_replicas: int, applied_replicas: int, now: float
) -> ScalingState:
    """The state to keep when `applied_replicas`, not `decision.replicas`, was applied (a pause): this
    step's recommendation and change become the applied count, so a pause spends no rate-limit budget and
    the windows remember what ran. Call it with the `now` given to `decide`, on every overridden tick."""
    state = decision.state
    recommendations = tuple((t, r) for t, r in state.recommendations if t != now)
    changes = tuple((t, d) for t, d in state.changes if t != now)
    if applied_replicas != current_replicas:
        changes = (*changes, (now, applied_replicas - current_replicas))
    return replace(state, recommendations=(*recommendations, (now, applied_replicas)), changes=changes)


def decide(
    policy: ScalingPolicy,
    observation: Observation,
    current_replicas: int,
    state: ScalingState,
    now_seconds: float,
) -> Decision:
    now = now_seconds
    state = _prune(state, policy, now)
    if policy.initial_recommendation and not state.recommendations:
        state = replace(state, recommendations=((now, current_replicas),))
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
    if not active and recommendation == 0:
        # The cooldown is this step's stabilization: going to zero skips the window and rate limits (as KEDA).
        target = recommendation
        state = replace(state, recommendations=(*state.recommendations, (now, recommendation)))
    elif current_replicas > policy.max_replicas or 0 < current_replicas < policy.min_replicas:
        # Outside the bounds the HPA goes straight to the bound, recording no recommendation.
        target = recommendation = _clamp(current_replicas, policy)
        why = "outside the replica bounds"
    else:
        history = state.recommendations
        state = replace(state, recommendations=(*history, (now, recommendation)))
        stabilized = stabilize(recommendation, history, current_replicas, policy, now)  # step 4
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
