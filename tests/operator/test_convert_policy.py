"""`convert.policy`: a ScaledObject's scaling settings -> spec.scaling, checked through `spec.parse_policy`
(what the operator will actually do), in both mappings: ours, and KEDA + the HPA's (`preset: hpa`)."""

from __future__ import annotations

from typing import Any

import pytest

from qc_common import api
from qc_operator import scaling, spec
from qc_operator.convert import policy
from qc_operator.convert.model import ConversionError, TriggerPlan

PLAN = TriggerPlan("rabbitmq", {"rabbitmq": {}}, None, messages_per_replica=20.0, activation_backlog=0.0)


def section(raw: dict[str, Any], keep: bool = False, annotations: dict[str, str] | None = None) -> Any:
    return policy.scaling_section(raw, annotations or {}, PLAN, keep)


def test_kedas_defaults_are_written_out_where_ours_differ() -> None:
    scaling_raw, notes = section({})
    assert scaling_raw == {
        "minReplicas": 0,
        "maxReplicas": 100,
        "messagesPerReplica": 20,
        "activationBacklog": 0,
    }
    text = "\n".join(notes)
    assert "pollingInterval unset (KEDA's 30 s)" in text
    assert "cooldownPeriod unset (KEDA's 300 s)" in text


def test_keep_keda_behaviour_is_exactly_the_hpa_compatible_policy() -> None:
    raw = {"minReplicaCount": 1, "maxReplicaCount": 12, "fallback": {"failureThreshold": 3, "replicas": 6}}
    scaling_raw, notes = section(raw, keep=True)
    assert scaling_raw["preset"] == "hpa"
    # KEDA polls every 30 s to wake from zero; the HPA reads the metric every 15 s.
    assert scaling_raw["pollingIntervalSeconds"] == 15
    expected = scaling.hpa_compatible(1, 12, 20.0, activation_backlog=0.0, fallback_replicas=6)
    assert spec.parse_policy(scaling_raw) == expected
    assert any("the operator falls back at the first failed read" in note for note in notes)


def test_keep_keda_behaviour_carries_a_custom_cooldown_and_behavior_in_scaling_hpa() -> None:
    raw = {
        "cooldownPeriod": 60,
        "pollingInterval": 5,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 15}}}
        },
    }
    scaling_raw, _ = section(raw, keep=True)
    assert scaling_raw["pollingIntervalSeconds"] == 5
    assert scaling_raw["hpa"]["cooldownSeconds"] == 60
    assert scaling_raw["hpa"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 15
    parsed = spec.parse_policy(scaling_raw)
    expected_down = scaling.ScalingRules(15, scaling.HPA_SCALE_DOWN.policies)
    assert parsed == scaling.hpa_compatible(
        0, 100, 20.0, cooldown_seconds=60.0, scale_down=expected_down, fallback_replicas=None
    )
    # What equals KEDA's and the HPA's defaults is left to the preset: no scaling.hpa at all.
    same = {
        "cooldownPeriod": 300,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}
        },
    }
    assert "hpa" not in section(same, keep=True)[0]


def test_a_behavior_direction_is_filled_with_the_hpas_defaults_not_ours() -> None:
    raw = {
        "pollingInterval": 10,
        "cooldownPeriod": 120,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 15},
                    "scaleUp": {
                        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
                        "tolerance": "0.05",
                    },
                }
            }
        },
    }
    scaling_raw, _ = section(raw)
    parsed = spec.parse_policy(scaling_raw)
    # scaleDown: the window given, the HPA's 100 % per 15 s (our CRD's default would be 50 %).
    assert parsed.scale_down == scaling.ScalingRules(15, scaling.HPA_SCALE_DOWN.policies)
    assert parsed.scale_up == scaling.ScalingRules(0, (scaling.RatePolicy("Pods", 2, 30),))
    assert parsed.scale_up_tolerance == 0.05
    assert (parsed.cooldown_seconds, scaling_raw["pollingIntervalSeconds"]) == (120, 10)


def test_idle_replica_count_zero_is_the_floor_and_targets_are_whole_numbers() -> None:
    plan = TriggerPlan("prometheus", None, {}, messages_per_replica=100.5, activation_backlog=10.5)
    scaling_raw, notes = policy.scaling_section(
        {"minReplicaCount": 3, "idleReplicaCount": 0, "maxReplicaCount": 9}, {}, plan, False
    )
    assert (scaling_raw["minReplicas"], scaling_raw["maxReplicas"]) == (0, 9)
    assert (scaling_raw["messagesPerReplica"], scaling_raw["activationBacklog"]) == (100, 10)
    text = "\n".join(notes)
    assert "idleReplicaCount 0 with minReplicaCount 3" in text
    assert "target 100.5 became 100" in text


@pytest.mark.parametrize(
    ("fallback", "replicas", "note"),
    [
        ({"failureThreshold": 3, "replicas": 6}, 6, "falls back at the first failed read"),
        ({"failureThreshold": 3, "replicas": 6, "behavior": "currentReplicas"}, None, "the count is held"),
        ({"failureThreshold": 3, "replicas": 4, "behavior": "currentReplicasIfHigher"}, 4, "approximated"),
        (None, None, "no fallback"),
    ],
)
def test_fallback(fallback: dict[str, Any] | None, replicas: int | None, note: str) -> None:
    scaling_raw, notes = section({"fallback": fallback} if fallback else {})
    assert scaling_raw.get("fallbackReplicas") == replicas
    assert spec.parse_policy(scaling_raw).fallback_replicas == replicas
    assert any(note in n for n in notes)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"minReplicaCount": 5, "maxReplicaCount": 2}, "minReplicaCount 5 exceeds maxReplicaCount 2"),
        (
            {"maxReplicaCount": 3, "fallback": {"replicas": 6}},
            "fallback.replicas 6 exceeds maxReplicaCount 3",
        ),
        ({"maxReplicaCount": "many"}, "maxReplicaCount is 'many', not a number"),
        ({"fallback": {"replicas": 1, "behavior": "scalingModifiers"}}, "fallback.behavior scalingModifiers"),
        (
            {
                "advanced": {
                    "horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {"selectPolicy": "Most"}}}
                }
            },
            "selectPolicy is 'Most'",
        ),
    ],
)
def test_bad_settings_are_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        section(raw)


def test_pause_annotations_become_ours_and_scale_in_pause_disables_scale_down() -> None:
    notes: list[str] = []
    annotations = {
        policy.KEDA_PAUSED: "true",
        policy.KEDA_PAUSED_REPLICAS: "0",
        "autoscaling.keda.sh/force-activation": "true",
    }
    assert policy.pause_annotations(annotations, notes) == {
        api.PAUSED_ANNOTATION: "true",
        api.PAUSED_REPLICAS_ANNOTATION: "0",
    }
    assert notes == ["annotation autoscaling.keda.sh/force-activation: no equivalent"]
    scaling_raw, _ = section({}, annotations={policy.KEDA_PAUSED_SCALE_IN: "true"})
    parsed = spec.parse_policy(scaling_raw)
    assert parsed.scale_down.select_policy == "Disabled"
    assert parsed.scale_up.select_policy == "Max"


def test_keep_keda_behaviour_pauses_one_direction_as_kedas_hpa_would() -> None:
    scaling_raw, _ = section({}, keep=True, annotations={policy.KEDA_PAUSED_SCALE_OUT: "true"})
    assert "behavior" not in scaling_raw
    parsed = spec.parse_policy(scaling_raw)
    assert parsed.scale_up.select_policy == "Disabled"
    assert parsed.scale_up.policies == scaling.HPA_SCALE_UP.policies
    assert parsed.scale_down == scaling.HPA_SCALE_DOWN
