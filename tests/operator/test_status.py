"""`qc_operator.status`: conditions keep their transition times, the status reads back what was written,
and the scaling memory survives a restart's new monotonic clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qc_operator import scaling
from qc_operator.spec import parse_policy
from qc_operator.status import (
    Condition,
    ConsumerStatus,
    decode_state,
    encode_state,
    merge_conditions,
    round_significant,
)


def test_a_condition_keeps_its_transition_time_until_its_status_flips() -> None:
    before = (Condition("Ready", True, "Reconciled", "ok", "2026-01-01T00:00:00Z"),)
    same = merge_conditions(before, [Condition("Ready", True, "Reconciled", "still ok")], "later")
    assert same[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert same[0].message == "still ok"
    flipped = merge_conditions(before, [Condition("Ready", False, "InvalidSpec", "bad")], "later")
    assert flipped[0].last_transition_time == "later"
    new = merge_conditions((), [Condition("Active", False, "Idle", "")], "now")
    assert new[0].last_transition_time == "now"


def test_the_status_round_trips_through_its_dict_form() -> None:
    status = ConsumerStatus(
        observed_generation=4,
        source="rabbitmq",
        backlog=12.0,
        oldest_message_age_seconds=3.5,
        throughput_per_replica=40.0,
        in_flight=2.0,
        replicas=3,
        desired_replicas=3,
        ready_replicas=2,
        conditions=(Condition("Ready", True, "Reconciled", "ok", "t"),),
        last_source_error=None,
        last_scale_time="t",
        last_scale_reason="scaled",
        scaling_state={"recommendations": [], "changes": [], "lastActive": None},
    )
    patch = status.to_patch()
    assert ConsumerStatus.from_dict(patch) == status
    assert not ConsumerStatus.from_dict(patch).differs_from(status)
    assert "scalingState" not in replace(status, scaling_state=None).to_patch()


def test_only_what_a_person_would_notice_differs() -> None:
    status = ConsumerStatus(replicas=2, backlog=10.0)
    assert not replace(status, last_scale_time="later", last_scale_reason="x").differs_from(status)
    assert replace(status, backlog=11.0).differs_from(status)


def test_a_status_edited_into_nonsense_reads_as_unset() -> None:
    odd = ConsumerStatus.from_dict(
        {"backlog": "many", "replicas": True, "conditions": "Ready", "scalingState": [1], "inFlight": None}
    )
    assert odd == ConsumerStatus()
    assert ConsumerStatus.from_dict(None) == ConsumerStatus()


def test_the_scaling_memory_survives_a_new_monotonic_clock() -> None:
    state = scaling.ScalingState(
        recommendations=((80.0, 4), (90.0, 4), (95.0, 3), (100.0, 3)),
        changes=((95.0, -1),),
        last_active_seconds=99.0,
        queue_empty_seconds=100.0,
        stale_backlog=12.0,
    )
    encoded = encode_state(state, now_monotonic=100.0, now_wall=10_000.0)
    assert encoded["recommendations"] == [[9_990.0, 4], [None, 3]], "runs, each with its last time"
    # The operator restarts 2 s later: its new monotonic clock reads 7, so monotonic 95 then is 0 now.
    restored = decode_state(encoded, now_monotonic=7.0, now_wall=10_002.0)
    assert restored.recommendations == ((-5.0, 4), (7.0, 3)), "still recommended at the last tick: now"
    assert restored.changes == ((0.0, -1),)
    assert restored.last_active_seconds == 4.0
    assert restored.queue_empty_seconds == 7.0
    assert restored.stale_backlog == 12.0
    for nonsense in (
        {"recommendations": [["x", 1]]},
        {"recommendations": {"a": 1}},
        {"changes": None},
        [1, 2],
        "state",
        {"lastActive": "yesterday"},
        None,
    ):
        assert decode_state(nonsense, 0, 0) == scaling.ScalingState(), nonsense  # type: ignore[arg-type]


def test_the_encoded_memory_does_not_change_while_nothing_does() -> None:
    """A steady fleet's ticks keep the status's scalingState byte for byte: no writes at steady state."""
    policy = parse_policy({"messagesPerReplica": 10, "maxReplicas": 20})
    state, encodings = scaling.ScalingState(), []
    for tick in range(200):  # 1000 s, every 5 s, a steady backlog of 50 and the fleet at 5 replicas
        now = 1_000.0 + 5 * tick
        state = scaling.decide(policy, scaling.Observation(50, in_flight_messages=5), 5, state, now).state
        encodings.append(encode_state(state, now, now + 5_000.0))
    assert all(e == encodings[-1] for e in encodings[-150:])


def restart_equivalence(restart_at_tick: int) -> tuple[list[int], list[int]]:
    """The replicas each tick decides, without a restart and with one (encode, new clock, decode)."""
    policy = parse_policy({"messagesPerReplica": 10, "maxReplicas": 40})
    backlogs = [300.0] * 20 + [100.0] * 60 + [0.0] * 80  # 5 s ticks: out to 30, down the 120 s window, cool

    def run(restart: bool) -> list[int]:
        state, replicas, clock, seen = scaling.ScalingState(), 0, 0.0, []
        for tick, backlog in enumerate(backlogs):
            now = clock + 5 * tick
            if restart and tick == restart_at_tick:
                encoded = encode_state(state, now - 5, 50_000.0 + now - 5)
                clock -= 7_000.0  # the new process's monotonic clock starts elsewhere
                now = clock + 5 * tick
                state = decode_state(encoded, now, 50_000.0 + 5 * tick + 1)
            decision = scaling.decide(policy, scaling.Observation(backlog), replicas, state, now)
            state, replicas = decision.state, decision.replicas
            seen.append(replicas)
        return seen

    return run(False), run(True)


@pytest.mark.parametrize(("restart_at_tick", "during"), [(30, "the scale-down window"), (86, "the cooldown")])
def test_a_restart_changes_no_decision(restart_at_tick: int, during: str) -> None:
    without, with_restart = restart_equivalence(restart_at_tick)
    assert max(without[20:45]) == 30, "the scenario holds 30 replicas through the window"
    assert with_restart == without, f"a restart inside {during} changed the decisions"


def test_round_significant() -> None:
    assert round_significant(123456.0) == 123000.0
    assert round_significant(0.012345, 2) == 0.012
    assert round_significant(None) is None
