"""The scaling decision: table-driven cases and properties (hypothesis), including HPA compatibility."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qc_operator.scaling import (
    HPA_SCALE_DOWN,
    HPA_SCALE_UP,
    HPA_TOLERANCE,
    Observation,
    RatePolicy,
    ScalingPolicy,
    ScalingRules,
    ScalingState,
    decide,
)

POLICY = ScalingPolicy(
    min_replicas=0,
    max_replicas=20,
    messages_per_replica=100,
    target_drain_seconds=None,
    activation_backlog=5,
    cooldown_seconds=60,
    tolerance=0.1,
    scale_up=HPA_SCALE_UP,
    scale_down=ScalingRules(30, (RatePolicy("Percent", 100, 15),)),
    fallback_replicas=None,
)


@pytest.mark.parametrize(
    ("name", "policy", "observation", "current", "expected"),
    [
        ("inactive below activation", POLICY, Observation(5), 0, 0),
        ("activates above activation", POLICY, Observation(6), 0, 1),
        ("from zero, rate limited to 1 + 4 pods", POLICY, Observation(10_000), 0, 5),
        ("scale out by backlog", POLICY, Observation(350), 2, 4),
        ("doubling allowed by 100% policy", POLICY, Observation(2_000), 6, 12),
        ("within tolerance holds", POLICY, Observation(305), 3, 3),
        ("max bound", POLICY, Observation(1e9), 20, 20),
        ("min bound", replace(POLICY, min_replicas=2), Observation(0), 2, 2),
        ("latency target wins", replace(POLICY, target_drain_seconds=10), Observation(1_000, 10), 2, 6),
        ("fallback replicas on source error", replace(POLICY, fallback_replicas=3), Observation(None), 7, 3),
        ("source error holds, never zero", POLICY, Observation(None), 0, 1),
    ],
)
def test_decide_table(
    name: str, policy: ScalingPolicy, observation: Observation, current: int, expected: int
) -> None:
    assert decide(policy, observation, current, ScalingState(), 1000.0).replicas == expected, name


def test_cooldown_to_zero_only_after_idle_period() -> None:
    state = ScalingState()
    decision = decide(POLICY, Observation(50), 1, state, 0.0)
    assert decision.replicas == 1
    for now in (10.0, 30.0, 59.0):
        decision = decide(POLICY, Observation(0), 1, decision.state, now)
        assert decision.replicas == 1, f"went to zero at {now} s, inside the 60 s cooldown"
    decision = decide(POLICY, Observation(0), 1, decision.state, 61.0)
    assert decision.replicas == 0
    assert "cooldown" in decision.reason


def test_in_flight_work_keeps_the_last_replica_alive() -> None:
    decision = decide(
        POLICY, Observation(0, in_flight_messages=3), 1, ScalingState(last_active_seconds=0), 500.0
    )
    assert decision.replicas == 1


def test_scale_down_waits_for_the_stabilization_window() -> None:
    decision = decide(POLICY, Observation(1_000), 10, ScalingState(), 0.0)
    assert decision.replicas == 10
    decision = decide(POLICY, Observation(100), 10, decision.state, 10.0)
    assert decision.replicas == 10, "scaled down inside the 30 s window"
    decision = decide(POLICY, Observation(100), 10, decision.state, 31.0)
    assert decision.replicas == 1


policies = st.builds(
    ScalingPolicy,
    min_replicas=st.integers(0, 5),
    max_replicas=st.integers(5, 50),
    messages_per_replica=st.one_of(st.none(), st.floats(1, 1000)),
    target_drain_seconds=st.one_of(st.none(), st.floats(1, 600)),
    activation_backlog=st.floats(0, 100),
    cooldown_seconds=st.floats(0, 600),
    tolerance=st.floats(0, 0.5),
    scale_up=st.just(HPA_SCALE_UP),
    scale_down=st.builds(
        ScalingRules,
        stabilization_window_seconds=st.floats(0, 300),
        policies=st.just((RatePolicy("Percent", 100, 15),)),
    ),
    fallback_replicas=st.one_of(st.none(), st.integers(0, 60)),
)
observations = st.builds(
    Observation,
    backlog_messages=st.one_of(st.none(), st.floats(0, 1e6)),
    throughput_per_replica=st.one_of(st.none(), st.floats(0.01, 1000)),
    in_flight_messages=st.floats(0, 100),
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, steps=st.lists(st.tuples(observations, st.floats(1, 60)), min_size=1, max_size=30))
def test_bounds_always_hold_and_fallback_is_never_zero_by_default(
    policy: ScalingPolicy, steps: list[tuple[Observation, float]]
) -> None:
    current, state, now = policy.min_replicas, ScalingState(), 0.0
    for observation, step in steps:
        now += step
        decision = decide(policy, observation, current, state, now)
        assert policy.min_replicas <= decision.replicas <= policy.max_replicas
        if observation.backlog_messages is None and policy.fallback_replicas is None:
            assert decision.replicas >= 1
        current, state = decision.replicas, decision.state


@settings(max_examples=300, deadline=None)
@given(
    current=st.integers(1, 40),
    target=st.floats(1, 500),
    ratio=st.floats(0.0, 0.99),
)
def test_no_change_inside_the_tolerance(current: int, target: float, ratio: float) -> None:
    policy = replace(POLICY, messages_per_replica=target, min_replicas=1, max_replicas=50, tolerance=0.1)
    backlog = current * target * (1 + (ratio - 0.5) * 0.2 * 0.999)  # usage ratio strictly within +-10%
    assert (
        decide(policy, Observation(backlog), current, ScalingState(last_active_seconds=0), 1.0).replicas
        == current
    )


def hpa_reference(
    backlogs: list[float], target: float, min_replicas: int, max_replicas: int, start: int, interval: float
) -> list[int]:
    """The HPA's algorithm written out independently (replica_calculator.go + horizontal.go behaviours)."""
    current, recommendations, events, out = start, [], [], []
    for step, backlog in enumerate(backlogs):
        now = step * interval
        usage_ratio = (backlog / current) / target
        raw = current if abs(usage_ratio - 1) <= HPA_TOLERANCE else math.ceil(usage_ratio * current)
        recommendations.append((now, raw))
        up = min(r for t, r in recommendations if now - t <= HPA_SCALE_UP.stabilization_window_seconds)
        down = max(r for t, r in recommendations if now - t <= HPA_SCALE_DOWN.stabilization_window_seconds)
        desired = min(max(current, up), down)
        if desired > current:
            added = sum(d for t, d in events if d > 0 and now - t < 15)
            limit = max(current - added + 4, math.ceil((current - added) * 2))
            desired = min(desired, limit, max_replicas)
        elif desired < current:
            removed = sum(-d for t, d in events if d < 0 and now - t < 15)
            limit = int((current + removed) * 0)
            desired = max(desired, limit, min_replicas)
        desired = max(min_replicas, min(max_replicas, desired))
        if desired != current:
            events.append((now, desired - current))
        current = desired
        out.append(current)
    return out


@settings(max_examples=200, deadline=None)
@given(
    backlogs=st.lists(st.floats(0, 5_000), min_size=1, max_size=60),
    target=st.floats(5, 200),
    min_replicas=st.integers(1, 3),
    start=st.integers(1, 10),
)
def test_hpa_compatible_settings_reproduce_the_hpa(
    backlogs: list[float], target: float, min_replicas: int, start: int
) -> None:
    policy = ScalingPolicy(
        min_replicas=min_replicas, max_replicas=40, messages_per_replica=target, target_drain_seconds=None,
        activation_backlog=0, cooldown_seconds=0, tolerance=HPA_TOLERANCE, scale_up=HPA_SCALE_UP,
        scale_down=HPA_SCALE_DOWN, fallback_replicas=None,
    )  # fmt: skip
    start = max(start, min_replicas)
    expected = hpa_reference(backlogs, target, min_replicas, 40, start, 15.0)
    current, state, got = start, ScalingState(), []
    for step, backlog in enumerate(backlogs):
        decision = decide(policy, Observation(backlog), current, state, step * 15.0)
        current, state = decision.replicas, decision.state
        got.append(current)
    assert got == expected
