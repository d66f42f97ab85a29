"""HPA conformance: `scaling` against the HPA's own test tables, ported in tests/scaling/hpa_cases.py.

Each row runs the step of `scaling` that does what the Go function under test does: the replica count of a
per-pod (AverageValue) target, stabilization, rate limits with min/max, and a whole decision under
`scaling.hpa_compatible` for the controller-level tests.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from qc_operator import scaling
from tests.scaling import hpa_cases as cases

NOW_SECONDS = 100_000.0


@pytest.mark.parametrize("case", cases.METRIC_CASES, ids=lambda c: c.go_test)
def test_per_pod_target_replicas_match_the_replica_calculator(case: cases.MetricCase) -> None:
    policy = replace(
        scaling.hpa_compatible(0, 1_000, case.target_milli / 1000),
        scale_up_tolerance=case.scale_up_tolerance,
        scale_down_tolerance=case.scale_down_tolerance,
    )
    observation = scaling.Observation(case.level_milli / 1000)
    assert scaling.metric_replicas(policy, observation, case.current)[0] == case.expected


@pytest.mark.parametrize("case", cases.CONTROLLER_CASES, ids=lambda c: c.go_test)
def test_a_whole_decision_matches_the_controller(case: cases.ControllerCase) -> None:
    policy = scaling.hpa_compatible(
        case.min_replicas, case.max_replicas, case.target_milli / 1000, scale_up=case.scale_up
    )
    if case.history is None:
        state = scaling.ScalingState()  # a new controller: nothing recorded yet
    else:
        past = case.history or ((cases.FAR_PAST_SECONDS, case.current),)  # running, nothing recent
        state = scaling.ScalingState(recommendations=tuple((NOW_SECONDS - age, r) for age, r in past))
    observation = scaling.Observation(case.level_milli / 1000)
    decision = scaling.decide(policy, observation, case.current, state, NOW_SECONDS)
    assert decision.replicas == case.expected, decision.reason


@pytest.mark.parametrize("case", cases.STABILIZATION_CASES, ids=lambda c: c.name)
def test_stabilization_matches_the_controller(case: cases.StabilizationCase) -> None:
    policy = scaling.hpa_compatible(
        0,
        1_000,
        1,
        scale_up=scaling.ScalingRules(case.up_window_seconds, scaling.HPA_SCALE_UP.policies),
        scale_down=scaling.ScalingRules(case.down_window_seconds, scaling.HPA_SCALE_DOWN.policies),
    )
    history = tuple((NOW_SECONDS - age, r) for age, r in case.history)
    assert scaling.stabilize(case.desired, history, case.current, policy, NOW_SECONDS) == case.expected


@pytest.mark.parametrize("case", cases.RATE_CASES, ids=lambda c: f"{c.go_test}: {c.name}")
def test_rate_limits_and_bounds_match_the_controller(case: cases.RateCase) -> None:
    policy = scaling.ScalingPolicy(
        min_replicas=case.min_replicas,
        max_replicas=case.max_replicas,
        messages_per_replica=1,
        target_drain_seconds=None,
        activation_backlog=0,
        cooldown_seconds=math.inf,
        tolerance=cases.TOLERANCE,
        scale_up=case.scale_up,
        scale_down=case.scale_down,
        fallback_replicas=None,
    )
    changes = tuple((NOW_SECONDS - age, change) for age, change in case.events)
    limited = scaling.rate_limit(case.desired, case.current, changes, policy, NOW_SECONDS)
    assert max(case.min_replicas, min(case.max_replicas, limited)) == case.expected


def test_every_go_test_is_ported_or_listed_with_a_reason() -> None:
    ported = {c.go_test for c in (*cases.METRIC_CASES, *cases.CONTROLLER_CASES, *cases.RATE_CASES)}
    ported.add("TestNormalizeDesiredReplicasWithBehavior")
    go_tests = [name for names in cases.GO_TESTS.values() for name in names.split()]
    assert len(go_tests) == len(set(go_tests)) == 160
    assert not ported & set(cases.NOT_APPLICABLE), "a test both ported and listed as not applicable"
    assert set(go_tests) == ported | set(cases.NOT_APPLICABLE)
