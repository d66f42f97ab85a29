"""The QueueConsumer's status as a typed value, its conditions, and the scaling memory it carries.

Pure: `plan` builds a `ConsumerStatus`, `autoscaler` writes `to_patch()` of it. A condition's
lastTransitionTime changes only when its status flips, and values are rounded, so writing the status
again is a no-op unless something a person would notice changed (steady state: no writes).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qc_operator import scaling


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str
    last_transition_time: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Condition:
        return Condition(
            type=str(raw.get("type", "")),
            status=raw.get("status") == "True",
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            last_transition_time=str(raw.get("lastTransitionTime", "")),
        )


def merge_conditions(
    previous: Sequence[Condition], wanted: Sequence[Condition], now: str
) -> tuple[Condition, ...]:
    """The wanted conditions, each keeping its previous lastTransitionTime unless its status changed."""
    before = {c.type: c for c in previous}
    merged = []
    for item in wanted:
        old = before.get(item.type)
        same = old is not None and old.status == item.status and old.last_transition_time
        merged.append(replace(item, last_transition_time=old.last_transition_time if same and old else now))
    return tuple(merged)


def round_significant(value: float | None, digits: int = 3) -> float | None:
    if value is None:
        return None
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class ConsumerStatus:
    """`.status` of a QueueConsumer. `scaling_state` is written only with a scale (see `to_patch`)."""

    observed_generation: int | None = None
    source: str = ""
    backlog: float | None = None
    oldest_message_age_seconds: float | None = None
    throughput_per_replica: float | None = None
    in_flight: float = 0.0
    replicas: int = 0
    desired_replicas: int = 0
    ready_replicas: int = 0
    conditions: tuple[Condition, ...] = ()
    last_source_error: str | None = None
    last_scale_time: str | None = None
    last_scale_reason: str | None = None
    scaling_state: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_patch(self, with_scaling_state: bool) -> dict[str, Any]:
        patch: dict[str, Any] = {
            "observedGeneration": self.observed_generation,
            "source": self.source,
            "backlog": self.backlog,
            "oldestMessageAgeSeconds": self.oldest_message_age_seconds,
            "throughputPerReplica": self.throughput_per_replica,
            "inFlight": self.in_flight,
            "replicas": self.replicas,
            "desiredReplicas": self.desired_replicas,
            "readyReplicas": self.ready_replicas,
            "conditions": [c.to_dict() for c in self.conditions],
            "lastSourceError": self.last_source_error,
        }
        if self.last_scale_time is not None:
            patch["lastScaleTime"] = self.last_scale_time
            patch["lastScaleReason"] = self.last_scale_reason
        if with_scaling_state and self.scaling_state is not None:
            patch["scalingState"] = dict(self.scaling_state)
        return patch

    def differs_from(self, other: ConsumerStatus) -> bool:
        """Whether writing this over `other` would change what a person sees (scale time aside)."""
        ignore = {"last_scale_time": None, "last_scale_reason": None}
        return replace(self, **ignore) != replace(other, **ignore)  # type: ignore[arg-type]

    @staticmethod
    def from_dict(raw: Mapping[str, Any] | None) -> ConsumerStatus:
        """Read back what we wrote; a field edited by hand into nonsense reads as unset."""
        raw = raw or {}

        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        def integer(key: str) -> int:
            value = raw.get(key)
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0

        generation = raw.get("observedGeneration")
        conditions = raw.get("conditions")
        state = raw.get("scalingState")
        return ConsumerStatus(
            observed_generation=generation if isinstance(generation, int) else None,
            source=str(raw.get("source") or ""),
            backlog=number("backlog"),
            oldest_message_age_seconds=number("oldestMessageAgeSeconds"),
            throughput_per_replica=number("throughputPerReplica"),
            in_flight=number("inFlight") or 0.0,
            replicas=integer("replicas"),
            desired_replicas=integer("desiredReplicas"),
            ready_replicas=integer("readyReplicas"),
            conditions=tuple(Condition.from_dict(c) for c in conditions if isinstance(c, Mapping))
            if isinstance(conditions, list)
            else (),
            last_source_error=str(raw["lastSourceError"]) if raw.get("lastSourceError") else None,
            last_scale_time=str(raw["lastScaleTime"]) if raw.get("lastScaleTime") else None,
            last_scale_reason=str(raw["lastScaleReason"]) if raw.get("lastScaleReason") else None,
            scaling_state=state if isinstance(state, Mapping) else None,
        )


def encode_state(state: scaling.ScalingState, now_monotonic: float, now_wall: float) -> dict[str, Any]:
    """Status times are wall-clock seconds: a restarted operator (with a new monotonic clock) reads them."""
    offset = now_wall - now_monotonic
    return {
        "recommendations": [[round(t + offset, 1), r] for t, r in state.recommendations],
        "changes": [[round(t + offset, 1), d] for t, d in state.changes],
        "lastActive": round(state.last_active_seconds + offset, 1)
        if state.last_active_seconds is not None
        else None,
    }


def decode_state(
    raw: Mapping[str, Any] | None, now_monotonic: float, now_wall: float
) -> scaling.ScalingState:
    if not raw:
        return scaling.ScalingState()
    offset = now_monotonic - now_wall
    try:
        return scaling.ScalingState(
            recommendations=tuple((float(t) + offset, int(r)) for t, r in raw.get("recommendations", [])),
            changes=tuple((float(t) + offset, int(d)) for t, d in raw.get("changes", [])),
            last_active_seconds=float(raw["lastActive"]) + offset
            if raw.get("lastActive") is not None
            else None,
        )
    except (TypeError, ValueError):
        return scaling.ScalingState()  # a hand-edited status must not stop scaling
