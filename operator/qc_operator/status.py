"""Pure functions shaping the QueueConsumer's status: conditions with messages, and the scaling state.

A condition's lastTransitionTime changes only when its status flips, and values are rounded, so writing
the status again is a no-op unless something a person would notice changed (steady state: no writes).
"""

from __future__ import annotations

import datetime
from typing import Any

from qc_operator import scaling

CONDITION_TYPES = ("Ready", "Active", "Fallback", "Paused", "SourceError")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(kind: str, active: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if active else "False", "reason": reason, "message": message}


def merge_conditions(
    previous: list[dict[str, Any]], wanted: list[dict[str, str]], now: str
) -> list[dict[str, Any]]:
    """Keep each condition's lastTransitionTime unless its status changed."""
    before = {c.get("type"): c for c in previous or []}
    merged = []
    for item in wanted:
        old = before.get(item["type"])
        same = old is not None and old.get("status") == item["status"]
        transition = old.get("lastTransitionTime", now) if same and old else now
        merged.append({**item, "lastTransitionTime": transition})
    return merged


def round_significant(value: float | None, digits: int = 3) -> float | None:
    if value is None:
        return None
    return float(f"{value:.{digits}g}")


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


def decode_state(raw: dict[str, Any] | None, now_monotonic: float, now_wall: float) -> scaling.ScalingState:
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
