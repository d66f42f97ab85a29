"""One scaling tick's plan, from what was observed: the target, the writes, the status and the Events.

Pure: `autoscaler` observes (all reads), calls `plan`, then applies it (all writes). Between ticks only the
`ScalingState` and the last status written are remembered; both go in and come out here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from qc_common import api
from qc_operator import budget, scaling
from qc_operator.sources.base import BacklogReading
from qc_operator.spec import QueueConsumerSpec
from qc_operator.status import (
    Condition,
    ConsumerStatus,
    encode_state,
    merge_conditions,
    round_significant,
)
from qc_operator.workers import WorkerStats

# RabbitMQ refreshes a queue's statistics every 5 s by default (collect_statistics_interval): a new queue
# still without counts after six refreshes is not new; its statistics are off (the management agent's
# metrics collector disabled) or the broker is struggling, which is a source failure, with the fallback.
COUNTS_PENDING_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything one tick read. `reading` is None exactly when `source_error` says why."""

    generation: int | None
    annotations: Mapping[str, str]
    replicas: int  # the Deployment's spec.replicas
    ready_replicas: int
    reading: BacklogReading | None
    source_error: str
    workers: WorkerStats
    known_deletion_costs: Mapping[str, int | None] = field(default_factory=dict)  # pod -> its annotation
    pods_present: int = 0  # the worker pods that exist, terminating ones included
    rate_share_text: str | None = None  # the share the rate-limit ConfigMap holds; None: no ConfigMap
    # How long the source has answered without counts for the queue (errors.CountsPending); None: not so.
    counts_pending_seconds: float | None = None


@dataclass(frozen=True)
class Plan:
    target: int
    current: int
    decision: scaling.Decision
    state: scaling.ScalingState  # what the next tick starts from
    paused: bool
    held_for_downstream: bool
    deletion_costs: Mapping[str, int]  # only the pods whose annotation must change, before a scale-down
    status: ConsumerStatus
    write_status: bool
    events: tuple[Event, ...]
    rate_share_text: str | None = None  # each pod's share of the rate limit; None: no rate limit
    write_rate_share: bool = False  # the ConfigMap holds another share: written before the scale

    @property
    def scales(self) -> bool:
        return self.target != self.current


def pause_override(annotations: Mapping[str, str], current: int, max_replicas: int) -> tuple[int | None, str]:
    """(replicas to hold, message) when paused by annotation; (None, "") otherwise. A count above
    maxReplicas holds maxReplicas: the spec's bound holds whatever an annotation says."""
    raw = annotations.get(api.PAUSED_REPLICAS_ANNOTATION)
    if raw is not None:
        digits = raw.strip()
        if not (digits.isascii() and digits.isdigit()):  # "²".isdigit() is true, int("²") fails
            shown = raw[:40]
            return (
                current,
                f"paused, but {api.PAUSED_REPLICAS_ANNOTATION}={shown!r} is not a number: holding {current}",
            )
        wanted = int(digits[:12])
        if wanted > max_replicas:
            return max_replicas, (
                f"paused by {api.PAUSED_REPLICAS_ANNOTATION} at {wanted} replicas, "
                f"held at maxReplicas ({max_replicas})"
            )
        return wanted, f"paused by {api.PAUSED_REPLICAS_ANNOTATION} at {wanted} replicas"
    if annotations.get(api.PAUSED_ANNOTATION, "").lower() == "true":
        return current, f"paused by {api.PAUSED_ANNOTATION}: holding {current} replicas"
    return None, ""


def counts_pending(observed: Observed) -> tuple[bool, str]:
    """(still within the grace, the source error to report) for a source that answers without counts."""
    pending = observed.counts_pending_seconds
    if pending is None:
        return False, observed.source_error
    if pending < COUNTS_PENDING_GRACE_SECONDS:
        return True, observed.source_error
    grace = COUNTS_PENDING_GRACE_SECONDS
    return False, f"{observed.source_error} after {grace:g} s (are the broker's statistics off?)"


def downstream_failing(spec: QueueConsumerSpec, workers: WorkerStats) -> str:
    """Why the downstream looks to be failing (the workers' failed attempts since the last scrape), or ""."""
    protection = spec.downstream
    ratio = workers.failure_ratio
    failed = sum(workers.failed_by_reason.values())
    attempts = failed + workers.acked
    if not protection.enabled or ratio is None or attempts < protection.minimum_attempts:
        return ""
    if ratio < protection.failure_ratio:
        return ""
    reasons = sorted(workers.failed_by_reason.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{reason} {count / failed:.0%}" for reason, count in reasons[:3])
    return f"the workers failed {ratio:.0%} of {attempts:.0f} task attempts since the last scrape ({shown})"


def deletion_costs(in_flight_by_pod: Mapping[str, float], known: Mapping[str, int | None]) -> dict[str, int]:
    """Busier pods cost more to delete, so the ReplicaSet removes idle ones first; only the changes."""
    wanted = {pod: round(in_flight) for pod, in_flight in in_flight_by_pod.items()}
    return {pod: cost for pod, cost in wanted.items() if known.get(pod) != cost}


def _conditions(decision: scaling.Decision, paused_message: str, source_error: str) -> list[Condition]:
    return [
        Condition("Ready", True, "Reconciled", "the worker Deployment exists and the spec is valid"),
        Condition("Active", decision.active, "Backlog" if decision.active else "Idle", decision.reason),
        Condition(
            "Fallback",
            decision.fallback,
            "SourceFailed" if decision.fallback else "SourceHealthy",
            decision.reason if decision.fallback else "the backlog source answers",
        ),
        Condition(
            "Paused",
            bool(paused_message),
            "Annotation" if paused_message else "NotPaused",
            paused_message or "scaling decisions are applied",
        ),
        Condition(
            "SourceError",
            bool(source_error),
            "ReadFailed" if source_error else "ReadOK",
            source_error or "the last backlog read succeeded",
        ),
    ]


def plan(
    spec: QueueConsumerSpec,
    observed: Observed,
    state: scaling.ScalingState,
    last_status: ConsumerStatus,
    now_monotonic: float,
    now_wall: float,
    now_rfc3339: str,
) -> Plan:
    """Decide, apply the pause, and shape the status and Events; `state` is what the last tick left."""
    current = observed.replicas
    reading, stats = observed.reading, observed.workers
    pending, source_error = counts_pending(observed)
    # A fleet at zero whose new queue has no counts yet is not woken: the fallback's "at least one replica"
    # is for a source that fails, and a queue not counted yet has told nothing (KEDA reads it as empty).
    waiting = pending and current == 0
    decision = scaling.decide(
        spec.policy,
        scaling.Observation(
            backlog_messages=reading.messages if reading else None,
            throughput_per_replica=stats.throughput_per_replica,
            in_flight_messages=stats.total_in_flight,
            oldest_message_age_seconds=reading.oldest_message_age_seconds if reading else None,
            busy_replicas=stats.busy_replicas,
            # Fresh, where the backlog reading may be minutes old.
            queue_found_empty=stats.queue_found_empty,
        ),
        current,
        state,
        now_monotonic,
    )
    if waiting:
        decision = scaling.Decision(
            0, "inactive: waiting for the new queue's first message counts", False, False, state
        )
    paused_replicas, paused_message = pause_override(observed.annotations, current, spec.policy.max_replicas)
    target = paused_replicas if paused_replicas is not None else decision.replicas
    failing = downstream_failing(spec, observed.workers)
    held = bool(failing) and paused_replicas is None and target > current
    if held:  # more workers would only add load to what is failing
        target = current
        failing = f"holding {current} replicas instead of {decision.replicas}: {failing}"
    limited = budget.plan_budget(
        spec.worker.max_messages_per_second,
        current,
        target,
        observed.pods_present,
        stats.rate_shares_by_pod,
        None
        if paused_replicas is not None
        else stats.throughput_per_replica,  # a pause's count is the user's
    )
    target = limited.replicas
    share_text = budget.share_text(limited.share_per_second) if limited.share_per_second else None
    # A pause or a hold applies another count than decided: remember that one (no rate-limit budget spent).
    kept = (
        decision.state
        if target == decision.replicas
        else scaling.overridden_state(decision, current, target, now_monotonic)
    )
    scales = target != current
    reason = paused_message or decision.reason
    if limited.reason and scales and target != decision.replicas:
        reason = limited.reason

    events: list[Event] = []
    if scales:
        events.append(Event("Normal", "Scaled", reason))
    was_failing = any(c.type == "DownstreamFailing" and c.status for c in last_status.conditions)
    if failing and not was_failing:
        events.append(Event("Warning", "DownstreamFailing", failing))
    was_limited = any(c.type == "RateLimited" and c.status for c in last_status.conditions)
    if limited.reason and not was_limited:
        events.append(Event("Normal", "RateLimited", limited.reason))
    if source_error and not pending and last_status.last_source_error != source_error:
        events.append(Event("Warning", "SourceError", source_error))

    status = ConsumerStatus(
        observed_generation=observed.generation,
        source=spec.backlog_description,
        backlog=reading.messages if reading else last_status.backlog,
        oldest_message_age_seconds=round_significant(reading.oldest_message_age_seconds) if reading else None,
        throughput_per_replica=round_significant(stats.throughput_per_replica, 2),
        in_flight=stats.total_in_flight,
        replicas=target,
        desired_replicas=decision.replicas,
        ready_replicas=observed.ready_replicas,
        conditions=merge_conditions(
            last_status.conditions,
            [
                *_conditions(decision, paused_message, source_error),
                Condition(
                    "DownstreamFailing",
                    bool(failing),
                    "TasksFailing" if failing else "TasksSucceeding",
                    failing or "the workers' tasks succeed: scale-up is not held back",
                ),
                _rate_condition(spec, limited),
            ],
            now_rfc3339,
        ),
        last_source_error=None if pending else source_error or None,
        last_scale_time=now_rfc3339 if scales else last_status.last_scale_time,
        last_scale_reason=reason if scales else last_status.last_scale_reason,
        # The scaling memory, so a restarted operator continues from it: stable while nothing changes.
        scaling_state=encode_state(kept, now_monotonic, now_wall),
    )
    return Plan(
        target=target,
        current=current,
        decision=decision,
        state=kept,
        paused=paused_replicas is not None,
        held_for_downstream=held,
        deletion_costs=deletion_costs(stats.in_flight_by_pod, observed.known_deletion_costs)
        if target < current
        else {},
        status=status,
        write_status=scales or status.differs_from(last_status),
        events=tuple(events),
        rate_share_text=share_text,
        write_rate_share=share_text is not None and share_text != observed.rate_share_text,
    )


def _rate_condition(spec: QueueConsumerSpec, limited: budget.BudgetPlan) -> Condition:
    """RateLimited: True while the fleet's rate budget holds the replicas below what the backlog wants."""
    if limited.share_per_second is None:
        return Condition("RateLimited", False, "NoLimit", "spec.worker.maxMessagesPerSecond is not set")
    if limited.reason:
        kind = "ApplyingShare" if limited.waiting_for_pods else "BudgetBound"
        return Condition("RateLimited", True, kind, limited.reason)
    share = budget.share_text(limited.share_per_second)
    return Condition(
        "RateLimited",
        False,
        "WithinBudget",
        f"{spec.worker.max_messages_per_second:g} msg/s for the fleet, {share} msg/s per pod",
    )
