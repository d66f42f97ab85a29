"""The simulator's downstream: traces with a `downstream` column, a queue whose refused calls back off
and are dead-lettered after their last attempt, and our scaler holding its count while the downstream
fails, where KEDA + HPA scale into it (the checked-in traces of `make bench-simulator`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qc_operator.simulator import cli, downstream, traces
from qc_operator.simulator.model import Scenario
from qc_operator.simulator.report import summarize
from qc_operator.simulator.scalers import OurScaler, Signals, default_protection, our_default_policy

TRACES = Path(__file__).resolve().parents[2] / "benchmarks" / "traces"
OUTAGE_START_SECONDS, OUTAGE_END_SECONDS = 1200, 2100  # downstream-outage-2h.csv


def test_a_downstream_column_gives_the_accepted_calls_per_second(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("second,rate,downstream\n0,10,inf\n3,10,0\n5,2,7.5\n6,0,inf\n")
    assert traces.from_csv(path).tolist() == [10, 10, 10, 10, 10, 2, 0]
    accepted = traces.downstream_from_csv(path)
    assert accepted is not None
    assert accepted.tolist() == [np.inf, np.inf, np.inf, 0, 0, 7.5, np.inf]
    path.write_text("0,10\n5,0\n")
    assert traces.downstream_from_csv(path) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [("0,1,-2\n", "line 1: negative rate -2.0"), ("0,1,abc\n", "line 1: could not convert")],
)
def test_a_bad_downstream_column_gets_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(content)
    with pytest.raises(traces.TraceError, match=message):
        traces.downstream_from_csv(path)


def test_refused_calls_back_off_then_go_to_the_dead_letters_and_nothing_is_lost() -> None:
    queue = downstream.RetryingQueue(max_attempts=3)
    acked = dead = 0.0
    seconds = 200
    for second in range(seconds):
        # 10 arrive in the first second; the downstream refuses everything for 100 s.
        step = queue.step(second, 10.0 if second == 0 else 0.0, slots=100.0, accepted_per_second=0.0)
        acked, dead = acked + step.acked, dead + step.dead_lettered
        assert step.failed == step.attempts
    assert acked == 0
    assert dead == pytest.approx(10)  # three attempts each: one at once, two after their backoffs
    assert queue.retries == pytest.approx(20)
    assert queue.messages == pytest.approx(0)
    # The backoffs are the worker's: 1 s after the first failure, 2 s after the second (3/4 on average).
    assert [downstream.retry_delay_seconds(n) for n in (1, 2, 3, 8)] == [1, 2, 3, 45]


def test_our_scaler_holds_its_count_while_the_tasks_fail_and_scales_up_once_they_succeed() -> None:
    scaler = OurScaler(our_default_policy(50), protection=default_protection())
    failing = Signals(5000.0, 20.0, 2.0, False, acked=0.0, failed=20.0)
    held = [scaler.step(float(t), failing, 2) for t in range(0, 120)]
    assert set(held) == {2}  # a growing backlog, all slots busy: only the failures keep it from scaling
    succeeding = Signals(5000.0, 20.0, 2.0, False, acked=20.0, failed=0.0)
    assert max(scaler.step(float(t), succeeding, 2) for t in range(120, 240)) > 2


def test_in_an_outage_we_hold_where_keda_scales_into_it_and_lose_fewer_messages() -> None:
    path = TRACES / "downstream-outage-2h.csv"
    accepted = traces.downstream_from_csv(path)
    ours, keda = cli.run_both(traces.from_csv(path), Scenario(metric_lag_seconds=5), 100, accepted)
    outage = slice(OUTAGE_START_SECONDS + 60, OUTAGE_END_SECONDS)  # after a polling interval
    held = ours.replicas[outage]
    assert held.max() == held.min() == ours.replicas[OUTAGE_START_SECONDS]
    assert keda.replicas[outage].max() == 50
    assert ours.retries < keda.retries / 2
    assert ours.dead_letters < keda.dead_letters / 5
    assert ours.replicas[OUTAGE_END_SECONDS + 60 :].max() > held.max()  # scale-up resumes on recovery
    ours_summary, keda_summary = summarize(ours, downstream=True), summarize(keda, downstream=True)
    assert ours_summary.max_replicas_while_failing < keda_summary.max_replicas_while_failing
    assert ours_summary.drain_after_recovery_seconds is not None
    assert keda_summary.drain_after_recovery_seconds is not None
    assert ours.recovered_at == OUTAGE_END_SECONDS


def test_cli_shows_the_downstream_columns_for_a_trace_with_a_downstream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--trace", str(TRACES / "rate-limited-downstream-2h.csv")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split("  ")[-1].strip() == "drain after recovery s"
    for column in ("max replicas failing", "retries", "dead letters"):
        assert column in header
