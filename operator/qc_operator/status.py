"""The QueueConsumer's status as a typed value, its conditions, and the scaling memory it carries.

Pure: `plan` builds a `ConsumerStatus`, `autoscaler` writes `to_patch()` of it. A condition's
lastTransitionTime changes only when its status flips, and values are rounded, so writing the status
again is a no-op unless something a person would notice changed (steady state: no writes).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    """`.status` of a QueueConsumer, with the scaling memory a restarted operator continues from."""

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
    scaling_state: Mapping[str, Any] | None = None

    def to_patch(self) -> dict[str, Any]:
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
        if self.scaling_state is not None:
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
    """The scaling memory as the status keeps it, in wall-clock seconds (a restarted operator has a new
    monotonic clock). Shaped to stay the same from tick to tick while nothing changes, so that keeping it
    current costs no writes at steady state:
      - recommendations are runs of one value, each with the last time it was recommended (null: it still
        was at the last tick); a window's minimum or maximum needs no more than that;
      - the last active time and the last time the queue was found empty are null-with-a-flag while they
        are "now" (true at every busy, or every empty, tick).
    `now_wall - now_monotonic` must be the same offset on every call (see reconcile.Autoscaler)."""
    offset = now_wall - now_monotonic

    def wall(moment: float) -> float:
        return round(moment + offset, 1)

    runs: list[list[float | int | None]] = []
    recommendations = state.recommendations
    for index, (moment, replicas) in enumerate(recommendations):
        following = recommendations[index + 1] if index + 1 < len(recommendations) else None
        if following is None:
            runs.append([None if moment >= now_monotonic else wall(moment), replicas])
        elif following[1] != replicas:
            runs.append([wall(moment), replicas])
    active, empty = state.last_active_seconds, state.queue_empty_seconds
    return {
        "recommendations": runs,
        "changes": [[wall(t), d] for t, d in state.changes],
        "lastActive": None if active is None or active >= now_monotonic else wall(active),
        "activeAtLastTick": active is not None and active >= now_monotonic,
        "queueEmpty": None if empty is None or empty >= now_monotonic else wall(empty),
        "emptyAtLastTick": empty is not None and empty >= now_monotonic,
        "staleBacklog": round(state.stale_backlog, 1),
    }


def decode_state(
    raw: Mapping[str, Any] | None, now_monotonic: float, now_wall: float
) -> scaling.ScalingState:
    """The memory `encode_state` wrote, on this process's monotonic clock; what was "now" at the last
    tick before a restart is taken as now (it may have held until the restart)."""
    if not isinstance(raw, Mapping) or not raw:
        return scaling.ScalingState()
    offset = now_monotonic - now_wall

    def moment(value: Any, at_last_tick: Any) -> float | None:
        if at_last_tick is True:
            return now_monotonic
        return float(value) + offset if value is not None else None

    try:
        return scaling.ScalingState(
            recommendations=tuple(
                (now_monotonic if end is None else float(end) + offset, int(replicas))
                for end, replicas in raw.get("recommendations", [])
            ),
            changes=tuple((float(t) + offset, int(d)) for t, d in raw.get("changes", [])),
            last_active_seconds=moment(raw.get("lastActive"), raw.get("activeAtLastTick")),
            queue_empty_seconds=moment(raw.get("queueEmpty"), raw.get("emptyAtLastTick")),
            stale_backlog=float(raw.get("staleBacklog") or 0.0),
        )
    except (TypeError, ValueError, AttributeError):
        return scaling.ScalingState()  # a hand-edited status must not stop scaling
