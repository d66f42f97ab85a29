"""The simulator's KEDA + HPA with a tuned ScaledObject (pollingInterval, cooldownPeriod, the HPA's scale-down
window), and the pure reporting of `make bench-keda` (benchmarks/keda_report.py, keda_traffic.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import keda_report, keda_traffic
from benchmarks.keda_report import KedaSettings, Sample, SideSettings
from qc_operator.simulator.model import Scenario, simulate
from qc_operator.simulator.scalers import KedaHpaScaler

BURST = np.zeros(30)
BURST[3] = 500.0


def first_second(series: np.ndarray, predicate: object) -> int:
    return int(np.nonzero(predicate(series))[0][0])  # type: ignore[operator]


def test_a_shorter_polling_interval_activates_sooner_and_a_shorter_cooldown_returns_to_zero_sooner() -> None:
    scenario = Scenario(throughput_per_replica=8, startup_seconds=5, metric_lag_seconds=5, max_replicas=5)
    default = simulate(BURST, scenario, KedaHpaScaler(100, 5))
    tuned = simulate(
        BURST,
        scenario,
        KedaHpaScaler(100, 5, polling_interval_seconds=5, cooldown_seconds=30, scale_down_window_seconds=30),
    )
    # The burst is seen at second 8 (5 s of lag): the default polls again at 30, the tuned one at 10.
    assert first_second(default.replicas, lambda r: r > 0) == 30
    assert first_second(tuned.replicas, lambda r: r > 0) == 10
    assert len(tuned.replicas) < len(default.replicas) - 200  # about 270 s less of cooldown and window


def test_the_default_settings_are_keda_and_the_hpa_documented_defaults() -> None:
    scaler = KedaHpaScaler(100, 5)
    assert (scaler.polling_interval_seconds, scaler.cooldown_seconds) == (30, 300)
    assert scaler.hpa_policy.scale_down.stabilization_window_seconds == 300
    tuned = KedaHpaScaler(100, 5, scale_down_window_seconds=30)
    assert tuned.hpa_policy.scale_down.stabilization_window_seconds == 30


def test_moves_count_scale_events_and_reversals() -> None:
    assert keda_report.moves([0, 0, 1, 3, 3, 2, 0, 1]) == (5, 2)
    assert keda_report.moves([0, 0]) == (0, 0)


def test_measured_row_integrates_replicas_and_finds_first_ready_and_zero() -> None:
    samples = [Sample(0, 0, 0), Sample(10, 2, 0), Sample(20, 2, 1), Sample(30, 0, 0), Sample(40, 0, 0)]
    row = keda_report.measured_row("keda-default", [1.0, 2.0, 30.0], 25.0, samples)
    assert row.replica_seconds == 40.0  # 2 replicas from 10 s to 30 s
    assert (row.first_scale_seconds, row.first_ready_seconds, row.back_to_zero_seconds) == (10, 20, 30)
    assert (row.scale_events, row.reversals, row.max_wait_seconds) == (2, 1, 30.0)


def test_simulated_row_uses_the_side_settings() -> None:
    scenario = Scenario(throughput_per_replica=8, startup_seconds=5, metric_lag_seconds=5, max_replicas=5)
    ours = keda_report.simulated_row(SideSettings("ours", None), BURST, scenario, 100)
    keda = keda_report.simulated_row(SideSettings("keda", KedaSettings()), BURST, scenario, 100)
    assert ours.first_ready_seconds is not None
    assert keda.first_ready_seconds is not None
    assert ours.first_ready_seconds < keda.first_ready_seconds
    assert keda.back_to_zero_seconds is not None
    assert keda.back_to_zero_seconds >= 300


def test_compressed_trace_keeps_the_shape_and_scales_the_peak(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("second,rate\n0,0\n100,50\n200,0\n1000,0\n")
    arrivals = keda_traffic.compressed_trace(path, speedup=10, peak_rate=20)
    assert arrivals.max() == 20
    busy = np.nonzero(arrivals)[0]
    assert (busy[0], len(busy)) == (10, 10)  # 10 quiet seconds kept before, 100 s of trace in 10
    assert len(arrivals) == 20  # the quiet tail is cut


def test_throughput_per_replica_counts_only_the_intervals_every_slot_had_work() -> None:
    # 10 messages at once, done one a second at 0.5, 1.5, ... 9.5 s after publish.
    published = {f"m{i}": 100.0 for i in range(10)}
    done = {f"m{i}": 100.5 + i for i in range(10)}
    one = [Sample(float(t), 1, 1) for t in range(11)]
    # One ready replica, window 2: outstanding (10 - t at whole seconds) is above 2 at both ends of the
    # intervals starting at 0..6 s, which hold 7 completions in 7 replica-seconds.
    assert keda_report.throughput_per_replica(published, done, one, window_per_replica=2) == 1.0
    # Two ready replicas: above 4 at both ends for the intervals at 0..4 s: 5 completions in 10.
    two = [Sample(float(t), 2, 2) for t in range(11)]
    assert keda_report.throughput_per_replica(published, done, two, window_per_replica=2) == 0.5
    # A replica becoming ready within an interval, or none ready: not counted.
    waking = [Sample(0.0, 1, 0), Sample(1.0, 1, 1), Sample(2.0, 1, 1)]
    assert keda_report.throughput_per_replica(published, done, waking, window_per_replica=2) == 1.0
    never_behind = keda_report.throughput_per_replica({"a": 100.0}, {"a": 100.5}, one, window_per_replica=2)
    assert never_behind is None


def test_the_simulator_gets_the_start_up_and_the_throughput_the_run_measured() -> None:
    def row(side: str, asked: float | None, ready: float | None, throughput: float | None) -> keda_report.Row:
        return keda_report.Row("measured", side, 1, 2, 3, 4, 1, 0, asked, ready, 5, 6, throughput)

    rows = [row("ours", 4, 16, 7.3), row("keda-default", 32, 38, 5.9), row("keda-tuned", 6, 15, 7.8)]
    scenario = keda_report.measured_scenario(rows, 8.0, metric_lag_seconds=5, max_replicas=5)
    assert (scenario.startup_seconds, scenario.throughput_per_replica) == (9.0, 7.3)  # medians of 12, 6, 9
    assert (scenario.metric_lag_seconds, scenario.max_replicas) == (5, 5)
    never_behind = keda_report.measured_scenario([row("ours", None, None, None)], 8.0, 5, 5)
    assert (never_behind.startup_seconds, never_behind.throughput_per_replica) == (20.0, 8.0)
