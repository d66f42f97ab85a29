"""The scaling decision: table-driven cases and properties (hypothesis), and where the HPA's arithmetic is
not the obvious one. The HPA's own test tables are in test_hpa_conformance.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qc_operator.scaling import (
    HPA_SCALE_UP,
    MAX_METRIC_LAG_SECONDS,
    Observation,
    RatePolicy,
    ScalingPolicy,
    ScalingRules,
    ScalingState,
    decide,
    hpa_compatible,
    metric_replicas,
    overridden_state,
    present_backlog,
    rate_limit,
    resumed_state,
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
    queue_found_empty=st.one_of(st.none(), st.booleans()),
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
    target=st.integers(1, 500),  # messagesPerReplica is an integer in the CRD
    ratio=st.floats(0.0, 0.99),
)
def test_no_change_inside_the_tolerance(current: int, target: int, ratio: float) -> None:
    policy = replace(POLICY, messages_per_replica=target, min_replicas=1, max_replicas=50, tolerance=0.1)
    # A usage ratio within +-9.9%: clear of the edge by more than the milli-unit rounding of the backlog.
    backlog = current * target * (1 + (ratio - 0.5) * 0.2 * 0.99)
    assert (
        decide(policy, Observation(backlog), current, ScalingState(last_active_seconds=0), 1.0).replicas
        == current
    )


# --- where the HPA's arithmetic is not the obvious one (its own tables: test_hpa_conformance.py) ---


@settings(max_examples=500, deadline=None)
@given(backlog=st.integers(0, 100_000), target=st.integers(1, 1_000), current=st.integers(1, 60))
def test_average_value_replicas_are_the_exact_ceiling_of_backlog_over_target(
    backlog: int, target: int, current: int
) -> None:
    """GetExternalPerPodMetricReplicas: ceil(total / target), in exact integer arithmetic here; the usage
    ratio only decides whether to act (never ratio x current, which float rounding pushes one too high)."""
    policy = hpa_compatible(0, 1_000, target)
    replicas, _ = metric_replicas(policy, Observation(backlog), current)
    within = 0.9 <= backlog / (target * current) <= 1.1
    assert replicas == (current if within else -(-backlog // target))


def test_two_hundred_messages_at_one_hundred_per_replica_ask_for_two() -> None:
    # ceil((200 / 7) / 100 * 7) is 3 in floats; the HPA asks for ceil(200 / 100) = 2.
    assert metric_replicas(hpa_compatible(0, 20, 100), Observation(200), 7)[0] == 2


def test_a_rate_limit_period_starts_before_changes_in_both_directions() -> None:
    policy = hpa_compatible(1, 100, 10)
    # 10 -> 6 five seconds ago: the period started at 10, so the 100% policy allows 20, not 12.
    assert rate_limit(100, 6, ((95.0, -4),), policy, 100.0) == 20
    # 10 -> 14 five seconds ago: a 50% down policy counts from 10 as well, so 5, not 7.
    halving = replace(policy, scale_down=ScalingRules(0, (RatePolicy("Percent", 50, 15),)))
    assert rate_limit(0, 14, ((95.0, 4),), halving, 100.0) == 5


def test_a_new_controller_counts_the_current_replicas_as_its_first_recommendation() -> None:
    policy = hpa_compatible(1, 20, 100)
    decision = decide(policy, Observation(100), 10, ScalingState(), 1_000.0)
    assert decision.replicas == 10, "a new controller scaled down within the window"
    decision = decide(policy, Observation(100), 10, decision.state, 1_299.0)
    assert decision.replicas == 10
    assert decide(policy, Observation(100), 10, decision.state, 1_300.0).replicas == 1
    # Our own defaults keep acting at once.
    assert (
        decide(
            replace(policy, initial_recommendation=False), Observation(100), 10, ScalingState(), 0
        ).replicas
        == 1
    )


def test_a_restarted_operator_waits_a_window_as_a_restarted_hpa_does() -> None:
    policy = hpa_compatible(1, 20, 100)
    recorded = ScalingState(recommendations=((0.0, 10),), changes=((0.0, 6),))  # the status, an hour ago
    assert decide(policy, Observation(100), 10, recorded, 3_600.0).replicas == 1, "no history in the window"
    resumed = resumed_state(recorded, policy, 10, 3_600.0)
    assert decide(policy, Observation(100), 10, resumed, 3_600.0).replicas == 10
    assert decide(policy, Observation(100), 10, resumed, 3_900.0).replicas == 1


def test_a_recommendation_exactly_one_window_old_no_longer_counts() -> None:
    policy = hpa_compatible(1, 20, 100)
    state = ScalingState(recommendations=((0.0, 10),))
    assert decide(policy, Observation(100), 10, state, 299.0).replicas == 10
    assert decide(policy, Observation(100), 10, state, 300.0).replicas == 1


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [(1_020, 11), (1_005, 10), (600, 10), (400, 4)],
    ids=["2% up, over 1%", "0.5% up, within 1%", "40% down, within 50%", "60% down, over 50%"],
)
def test_scale_up_and_scale_down_tolerances_are_separate(backlog: float, expected: int) -> None:
    policy = replace(hpa_compatible(1, 20, 100), scale_up_tolerance=0.01, scale_down_tolerance=0.5)
    assert metric_replicas(policy, Observation(backlog), 10)[0] == expected


def test_an_overridden_decision_keeps_the_applied_count_and_spends_no_budget() -> None:
    policy = hpa_compatible(1, 100, 10)
    decision = decide(policy, Observation(1_000), 10, ScalingState(recommendations=((0.0, 10),)), 100.0)
    assert decision.replicas == 20
    held = overridden_state(decision, current_replicas=10, applied_replicas=10, now=100.0)
    assert held.changes == ()
    assert held.recommendations[-1] == (100.0, 10)
    # Unpaused five seconds later: the whole 100% of the period is still there.
    assert decide(policy, Observation(1_000), 10, held, 105.0).replicas == 20
    # Paused at another count: that change is the one the rate limits see.
    moved = overridden_state(decision, current_replicas=10, applied_replicas=4, now=100.0)
    assert moved.changes == ((100.0, -6),)


# --- the backlog now: the workers' empty receives beside a reading that may be minutes old ---

DRAIN = replace(
    POLICY, messages_per_replica=None, target_drain_seconds=20, min_replicas=1, max_replicas=50, tolerance=0.2
)


def observed(backlog: float, busy: float, found_empty: bool | None, throughput: float = 10.0) -> Observation:
    """A reading, `busy` replicas' worth of work in flight, and whether a worker found the queue empty."""
    return Observation(
        backlog, throughput, in_flight_messages=busy, busy_replicas=busy, queue_found_empty=found_empty
    )


EMPTIED = ScalingState(queue_empty_seconds=950, stale_backlog=500)  # found empty 50 s ago, reading 500


@pytest.mark.parametrize(
    ("name", "observation", "state", "expected"),
    [
        ("unknown: the reading", observed(500, 1.0, None), ScalingState(), 500),
        ("unknown after finding it empty: still the reading", observed(300, 1.0, None), EMPTIED, 300),
        ("not found empty: the reading", observed(500, 10.0, False), ScalingState(), 500),
        ("not found empty, however idle the fleet looks", observed(500, 0.5, False), ScalingState(), 500),
        ("found empty: nothing waits now", observed(500, 10.0, True), ScalingState(), 0),
        ("found empty before: a falling reading replays the drain", observed(300, 10, False), EMPTIED, 0),
        ("found empty before: a reading above the replay is new", observed(800, 10, False), EMPTIED, 300),
        (
            "a reading taken longer than any metric lag after finding it empty is all new",
            observed(800, 10.0, False),
            replace(EMPTIED, queue_empty_seconds=1000 - MAX_METRIC_LAG_SECONDS - 1),
            800,
        ),
    ],
)
def test_present_backlog_table(
    name: str, observation: Observation, state: ScalingState, expected: float
) -> None:
    assert present_backlog(observation, state, 1000.0)[0] == expected, name


def test_an_empty_queue_beside_a_stale_backlog_does_not_scale_up() -> None:
    # 1 replica's worth of work on 3 pods, a worker found the queue empty, and a minutes-old reading still
    # shows 5,000 messages: sized for the work in progress (the stabilization window is empty).
    decision = decide(DRAIN, observed(5_000, 1.0, True), 3, ScalingState(), 0.0)
    assert decision.replicas == 1
    assert "the backlog now is 0" in decision.reason
    assert decide(DRAIN, observed(5_000, 1.0, None), 3, ScalingState(), 0.0).replicas == 7, "the reading"


@pytest.mark.parametrize("found_empty", [False, None])
@pytest.mark.parametrize(
    "state",
    [ScalingState(), ScalingState(queue_empty_seconds=-MAX_METRIC_LAG_SECONDS - 1, stale_backlog=5_000)],
    ids=["no memory", "found empty long ago"],
)
def test_fast_tasks_at_low_busy_fraction_still_scale_out_for_a_backlog(
    found_empty: bool | None, state: ScalingState
) -> None:
    """The hazard a busy-fraction inference has: tasks far shorter than the broker round trip keep few
    messages in flight at full speed, so 20 pods working flat out read 10% busy. Only an empty receive may
    discount the backlog; without one, a million messages scale the fleet out."""
    policy = replace(DRAIN, max_replicas=200)
    fleet = observed(1_000_000, 20 * 0.1, found_empty, throughput=500.0)  # 500 msg/s per replica
    decision = decide(policy, fleet, 20, state, 0.0)
    # 1e6 / (500 x 20 s) + 2 busy = 102 recommended; the HPA's rate limit allows +100% per 15 s.
    assert decision.replicas == 40
    assert "recommended 102" in decision.reason


def test_the_delayed_replay_of_a_drain_does_not_scale_the_fleet_back_up() -> None:
    """Drained, scaled in to a fleet the steady stream keeps busy, while the lagged reading still falls."""
    decision = decide(DRAIN, observed(40_000, 20.0, True), 50, ScalingState(), 0.0)
    assert "backlog now is 0" in decision.reason
    state = decision.state
    for now, reading in ((60.0, 30_000), (120.0, 20_000), (170.0, 9_000)):
        decision = decide(DRAIN, observed(reading, 25.0, False), 25, state, now)  # no empty receive since
        assert decision.replicas == 25, f"scaled on the replay of a drained backlog at {now} s"
        state = decision.state
    # Once the reading has fallen to nothing, backlog it shows is new.
    decision = decide(DRAIN, observed(0, 25.0, False), 25, state, 175.0)
    decision = decide(DRAIN, observed(2_000, 25.0, False), 25, decision.state, 180.0)
    assert decision.replicas > 25


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    backlog=st.floats(0, 1e6),
    throughput=st.floats(0.01, 1000),
    busy=st.floats(0, 50),
    found_empty=st.one_of(st.none(), st.booleans()),
    current=st.integers(0, 50),
)
def test_only_an_empty_receive_lowers_the_decision(
    policy: ScalingPolicy,
    backlog: float,
    throughput: float,
    busy: float,
    found_empty: bool | None,
    current: int,
) -> None:
    current = max(policy.min_replicas, min(policy.max_replicas, current))
    signalled = observed(backlog, busy, found_empty, throughput)
    reading_only = replace(signalled, queue_found_empty=None)
    present, _ = present_backlog(signalled, ScalingState(), 0.0)
    assert present == (0 if found_empty else backlog), "the busy fraction moved the backlog"
    lowered = decide(policy, signalled, current, ScalingState(), 100.0).replicas
    assert lowered <= decide(policy, reading_only, current, ScalingState(), 100.0).replicas
