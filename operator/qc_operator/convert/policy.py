"""A ScaledObject's scaling settings -> `spec.scaling`, and its pause annotations -> ours.

Two mappings. By default the QueueConsumer keeps what the user wrote (replica bounds, the trigger's target
and activation, pollingInterval, cooldownPeriod, the HPA behavior, fallback) and takes our defaults for the
rest, which adds the drain-time target. With `keep_keda_behaviour` it is `scaling.preset: hpa`: KEDA + the
HPA (AverageValue target, tolerance 0.1), with the ScaledObject's cooldownPeriod and behavior in
`scaling.hpa` where they differ from KEDA's and the HPA's defaults, polled as often as the HPA syncs.
KEDA's defaults are the ones KEDA documents (reference/scaledobject-spec.md); the HPA's come from
`qc_operator.scaling`. Called by `convert.consumer`; pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qc_common import api
from qc_operator import scaling, schema
from qc_operator.convert.model import ConversionError, TriggerPlan, number
from qc_operator.simulator import scalers

KEDA_MIN_REPLICAS = 0
KEDA_MAX_REPLICAS = 100
KEDA_PAUSED = "autoscaling.keda.sh/paused"
KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
KEDA_PAUSED_SCALE_IN = "autoscaling.keda.sh/paused-scale-in"
KEDA_PAUSED_SCALE_OUT = "autoscaling.keda.sh/paused-scale-out"
_DIRECTIONS = {"scaleUp": scaling.HPA_SCALE_UP, "scaleDown": scaling.HPA_SCALE_DOWN}


def _whole(value: Any, where: str, minimum: int) -> int:
    parsed = number(value, where)
    if parsed != int(parsed) or parsed < minimum:
        raise ConversionError(f"{where} is {value!r}, not a whole number of at least {minimum}")
    return int(parsed)


def _rules(rules: scaling.ScalingRules) -> dict[str, Any]:
    policies = [
        {"type": p.kind, "value": p.value, "periodSeconds": int(p.period_seconds)} for p in rules.policies
    ]
    return {
        "stabilizationWindowSeconds": int(rules.stabilization_window_seconds),
        "selectPolicy": rules.select_policy,
        "policies": policies,
    }


def hpa_behavior(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`advanced.horizontalPodAutoscalerConfig.behavior` with the HPA's defaults filled in for each field
    of a direction it sets (the HPA's, not our CRD's: the HPA would have used them)."""
    behavior: dict[str, Any] = {}
    for direction, default in _DIRECTIONS.items():
        given = raw.get(direction)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ConversionError(f"behavior.{direction} is not a mapping")
        rules = _rules(default)
        where = f"behavior.{direction}"
        if given.get("stabilizationWindowSeconds") is not None:
            rules["stabilizationWindowSeconds"] = _whole(
                given["stabilizationWindowSeconds"], f"{where}.stabilizationWindowSeconds", 0
            )
        if given.get("selectPolicy") is not None:
            if given["selectPolicy"] not in ("Max", "Min", "Disabled"):
                raise ConversionError(
                    f"{where}.selectPolicy is {given['selectPolicy']!r}, not Max, Min or Disabled"
                )
            rules["selectPolicy"] = given["selectPolicy"]
        if given.get("policies"):
            rules["policies"] = [_policy(p, f"{where}.policies") for p in given["policies"]]
        if given.get("tolerance") is not None:
            rules["tolerance"] = number(given["tolerance"], f"{where}.tolerance")
        behavior[direction] = rules
    return behavior


def _policy(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or raw.get("type") not in ("Pods", "Percent"):
        raise ConversionError(f"{where}: each policy needs type Pods or Percent, value and periodSeconds")
    return {
        "type": raw["type"],
        "value": _whole(raw.get("value"), f"{where}.value", 1),
        "periodSeconds": _whole(raw.get("periodSeconds"), f"{where}.periodSeconds", 1),
    }


def _targets(plan: TriggerPlan, notes: list[str]) -> dict[str, int]:
    per_replica = max(1, round(plan.messages_per_replica))
    if per_replica != plan.messages_per_replica:
        notes.append(
            f"messagesPerReplica is a whole number: the trigger's target "
            f"{plan.messages_per_replica:g} became {per_replica}"
        )
    activation = max(0, math.floor(plan.activation_backlog))
    if activation != plan.activation_backlog:
        notes.append(
            f"activationBacklog is a whole number: above {plan.activation_backlog:g} is above {activation} "
            "for a message count"
        )
    return {"messagesPerReplica": per_replica, "activationBacklog": activation}


def _bounds(spec: Mapping[str, Any], notes: list[str]) -> dict[str, int]:
    minimum = _whole(spec.get("minReplicaCount", KEDA_MIN_REPLICAS), "minReplicaCount", 0)
    maximum = _whole(spec.get("maxReplicaCount", KEDA_MAX_REPLICAS), "maxReplicaCount", 1)
    idle = spec.get("idleReplicaCount")
    if idle is not None and _whole(idle, "idleReplicaCount", 0) == 0 and minimum > 0:
        notes.append(
            f"idleReplicaCount 0 with minReplicaCount {minimum}: minReplicas is 0, the idle count; KEDA "
            f"jumped to {minimum} on activation and the QueueConsumer grows from 1 as the backlog asks"
        )
        minimum = 0
    elif idle is not None:
        notes.append(f"idleReplicaCount {idle}: KEDA supports only 0 below minReplicaCount; not carried over")
    if minimum > maximum:
        raise ConversionError(f"minReplicaCount {minimum} exceeds maxReplicaCount {maximum}")
    return {"minReplicas": minimum, "maxReplicas": maximum}


def _fallback(spec: Mapping[str, Any], maximum: int, notes: list[str]) -> dict[str, int]:
    fallback = spec.get("fallback")
    if not fallback:
        notes.append(
            "no fallback: while the backlog cannot be read KEDA's HPA held the count; so does the "
            "QueueConsumer (at least 1 replica)"
        )
        return {}
    replicas = _whole(fallback.get("replicas"), "fallback.replicas", 0)
    behaviour = str(fallback.get("behavior") or "static")
    threshold = fallback.get("failureThreshold")
    notes.append(
        f"fallback.failureThreshold {threshold}: the operator falls back at the first failed read, not after "
        f"{threshold} in a row"
    )
    if behaviour == "currentReplicas":
        notes.append("fallback.behavior currentReplicas: no fallbackReplicas, the count is held (at least 1)")
        return {}
    if behaviour in ("currentReplicasIfHigher", "currentReplicasIfLower"):
        notes.append(f"fallback.behavior {behaviour}: approximated by the static fallbackReplicas {replicas}")
    elif behaviour != "static":
        raise ConversionError(f"fallback.behavior {behaviour} has no equivalent")
    if replicas > maximum:
        raise ConversionError(f"fallback.replicas {replicas} exceeds maxReplicaCount {maximum}")
    return {"fallbackReplicas": replicas}


def scaling_section(
    spec: Mapping[str, Any], annotations: Mapping[str, str], plan: TriggerPlan, keep_keda_behaviour: bool
) -> tuple[dict[str, Any], list[str]]:
    """`spec.scaling` for the ScaledObject's `spec` and the converted trigger, and the notes."""
    notes: list[str] = []
    section: dict[str, Any] = {**_bounds(spec, notes), **_targets(plan, notes)}
    section.update(_fallback(spec, section["maxReplicas"], notes))
    advanced = spec.get("advanced") or {}
    hpa_config = advanced.get("horizontalPodAutoscalerConfig") or {}
    behavior = hpa_behavior(hpa_config.get("behavior") or {})
    paused_in = str(annotations.get(KEDA_PAUSED_SCALE_IN, "")).lower() == "true"
    paused_out = str(annotations.get(KEDA_PAUSED_SCALE_OUT, "")).lower() == "true"
    if paused_in or paused_out:
        _pause_directions(behavior, paused_in, paused_out, notes)
    polling = spec.get("pollingInterval")
    cooldown = spec.get("cooldownPeriod")
    if keep_keda_behaviour:
        _keep(section, polling, cooldown, behavior, notes)
    else:
        _ours(section, polling, cooldown, behavior, notes)
    if spec.get("initialCooldownPeriod"):
        notes.append(f"initialCooldownPeriod {spec['initialCooldownPeriod']}: no equivalent")
    if advanced.get("restoreToOriginalReplicaCount"):
        notes.append(
            "advanced.restoreToOriginalReplicaCount: no equivalent (the QueueConsumer owns its workers)"
        )
    if hpa_config.get("name"):
        notes.append(f"horizontalPodAutoscalerConfig.name {hpa_config['name']!r}: no HPA is made")
    return section, notes


def _pause_directions(behavior: dict[str, Any], paused_in: bool, paused_out: bool, notes: list[str]) -> None:
    """KEDA's paused-scale-in / paused-scale-out, done as KEDA does: the HPA's selectPolicy Disabled."""
    for direction, paused in (("scaleDown", paused_in), ("scaleUp", paused_out)):
        if paused:
            rules = behavior.get(direction, _rules(_DIRECTIONS[direction]))
            behavior[direction] = {**rules, "selectPolicy": "Disabled"}
    if paused_in:
        notes.append(
            f"{KEDA_PAUSED_SCALE_IN}: behavior.scaleDown.selectPolicy Disabled, as KEDA sets the HPA's; KEDA "
            "also blocked the scale to zero, which the cooldown still makes here: remove the selectPolicy "
            "when you remove the annotation"
        )
    if paused_out:
        notes.append(
            f"{KEDA_PAUSED_SCALE_OUT}: behavior.scaleUp.selectPolicy Disabled, as KEDA sets the HPA's (it "
            "also holds the count at zero); remove it when you remove the annotation"
        )


def _keep(
    section: dict[str, Any], polling: Any, cooldown: Any, behavior: dict[str, Any], notes: list[str]
) -> None:
    keda_polling = (
        _whole(polling, "pollingInterval", 1)
        if polling is not None
        else scalers.KEDA_POLLING_INTERVAL_SECONDS
    )
    section["preset"] = "hpa"
    # KEDA polls at pollingInterval only to wake from zero; from one replica up the HPA reads the metric on
    # every sync. One interval serves both here: the more frequent, as the HPA's numbers need.
    section["pollingIntervalSeconds"] = int(min(keda_polling, scalers.HPA_SYNC_SECONDS))
    notes.append(
        f"scaling.preset hpa: KEDA + the HPA (tolerance {scaling.HPA_TOLERANCE}; cooldown "
        f"{scaling.KEDA_COOLDOWN_SECONDS:g} s and the HPA's default behavior except where scaling.hpa says)"
    )
    if keda_polling > scalers.HPA_SYNC_SECONDS:
        notes.append(
            f"pollingIntervalSeconds {section['pollingIntervalSeconds']}, the HPA's sync period: KEDA polled "
            f"every {keda_polling:g} s only to wake from zero, the HPA read the metric every "
            f"{scalers.HPA_SYNC_SECONDS:g} s"
        )
    # scaling.hpa holds only what differs from KEDA's and the HPA's defaults, which the preset fills in.
    hpa: dict[str, Any] = {}
    if cooldown is not None and _whole(cooldown, "cooldownPeriod", 0) != scaling.KEDA_COOLDOWN_SECONDS:
        hpa["cooldownSeconds"] = _whole(cooldown, "cooldownPeriod", 0)
    defaults = {direction: _rules(rules) for direction, rules in _DIRECTIONS.items()}
    changed = {d: rules for d, rules in behavior.items() if rules != defaults[d]}
    if changed:
        hpa["behavior"] = changed
    if hpa:
        section["hpa"] = hpa


def _ours(
    section: dict[str, Any], polling: Any, cooldown: Any, behavior: dict[str, Any], notes: list[str]
) -> None:
    if polling is not None:
        section["pollingIntervalSeconds"] = _whole(polling, "pollingInterval", 1)
    else:
        notes.append(
            f"pollingInterval unset (KEDA's {scalers.KEDA_POLLING_INTERVAL_SECONDS:g} s): the "
            f"QueueConsumer's default, {schema.default_at('scaling', 'pollingIntervalSeconds')} s"
        )
    if cooldown is not None:
        section["cooldownSeconds"] = _whole(cooldown, "cooldownPeriod", 0)
    else:
        notes.append(
            f"cooldownPeriod unset (KEDA's {scaling.KEDA_COOLDOWN_SECONDS:g} s): the QueueConsumer's "
            f"default, {schema.default_at('scaling', 'cooldownSeconds')} s"
        )
    if behavior:
        section["behavior"] = behavior
    notes.append(
        "scaling: the default preset: messagesPerReplica and a drain-time target (targetDrainSeconds "
        f"{schema.default_at('scaling', 'targetDrainSeconds')}) from the workers' measured throughput, the "
        f"larger wins; tolerance {schema.default_at('scaling', 'tolerance')} (the HPA's "
        f"{scaling.HPA_TOLERANCE}); behavior the CRD's where unset; --keep-keda-behaviour for KEDA + "
        "the HPA's"
    )


def pause_annotations(annotations: Mapping[str, str], notes: list[str]) -> dict[str, str]:
    """KEDA's pause annotations as ours (the same meaning: hold the count, or hold it at N)."""
    ours: dict[str, str] = {}
    if str(annotations.get(KEDA_PAUSED, "")).lower() == "true":
        ours[api.PAUSED_ANNOTATION] = "true"
    if annotations.get(KEDA_PAUSED_REPLICAS) not in (None, ""):
        ours[api.PAUSED_REPLICAS_ANNOTATION] = str(
            _whole(annotations[KEDA_PAUSED_REPLICAS], KEDA_PAUSED_REPLICAS, 0)
        )
    for name in sorted(annotations):
        if name.startswith("autoscaling.keda.sh/") and name not in (
            KEDA_PAUSED,
            KEDA_PAUSED_REPLICAS,
            KEDA_PAUSED_SCALE_IN,
            KEDA_PAUSED_SCALE_OUT,
        ):
            notes.append(f"annotation {name}: no equivalent")
        elif name.startswith(("scaledobject.keda.sh/", "validations.keda.sh/")):
            notes.append(f"annotation {name}: no HPA is made; not carried over")
    return ours
