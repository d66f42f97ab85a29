"""The simulator: clear errors for bad traces, a queue model that loses nothing, KEDA + HPA defaults honoured,
and a CLI that prints the table and draws the plot. It drives the operator's real scaling code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from qc_operator import scaling
from qc_operator.simulator import cli, traces
from qc_operator.simulator.model import Scenario, simulate
from qc_operator.simulator.report import summarize
from qc_operator.simulator.scalers import (
    KEDA_COOLDOWN_SECONDS,
    KedaHpaScaler,
    OurScaler,
    Signals,
    our_default_policy,
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the trace is empty"),
        ("# only a comment\n", "the trace is empty"),
        ("1.0\n3.0\n2.0\n", "line 3: timestamps are not sorted"),
        ("second,rate\n0,5\n10,-1\n", "line 2: negative rate -1.0"),
        ("0,5\n0,6\n", "line 2: seconds are not increasing"),
        ("0,5\n10,abc\n", "line 2: could not convert"),
        ("1,2,3,4\n", "expected 1 column"),
        ("0,nan\n", "not a finite number"),
    ],
)
def test_bad_traces_get_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(content)
    with pytest.raises(traces.TraceError, match=message):
        traces.from_csv(path)


def test_timestamp_and_rate_traces(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps.csv"
    stamps.write_text("10.2\n10.9\n12.5\n")
    assert list(traces.from_csv(stamps)) == [2.0, 0.0, 1.0]
    rates = tmp_path / "rates.csv"
    rates.write_text("second,rate\n0,5\n3,0\n5,2\n")
    assert list(traces.from_csv(rates)) == [5, 5, 5, 0, 0, 2]


@pytest.mark.parametrize("shape", traces.SHAPES)
def test_the_model_conserves_messages_and_drains(shape: str) -> None:
    arrivals = traces.shape(shape, 3600, 100)
    for scaler in (OurScaler(our_default_policy(30)), KedaHpaScaler(100, 30)):
        run = simulate(arrivals, Scenario(max_replicas=30), scaler)
        assert np.sum(run.arrivals) == pytest.approx(np.sum(arrivals))
        assert np.sum(run.departures) == pytest.approx(np.sum(arrivals)), "messages were lost or invented"
        assert run.backlog[-1] == pytest.approx(0, abs=1e-6)
        assert run.replicas.max() <= 30
        assert summarize(run).undelivered == pytest.approx(0, abs=1e-6)


def test_keda_hpa_model_honours_its_documented_defaults() -> None:
    arrivals = np.zeros(1200)
    arrivals[100:110] = 50.0  # 500 messages in a short burst at t=100
    run = simulate(arrivals, Scenario(startup_seconds=0, throughput_per_replica=50), KedaHpaScaler(100, 20))
    first = int(np.argmax(run.replicas > 0))
    assert first == 120, "KEDA activates on its 30 s polling boundary"
    zero_again = int(np.nonzero(run.replicas)[0][-1]) + 1
    # Back to zero only cooldownPeriod (300 s) after the last poll that saw a backlog (t=120).
    assert zero_again - 120 == KEDA_COOLDOWN_SECONDS


def test_keda_hpa_model_scales_down_one_window_after_the_last_higher_recommendation() -> None:
    scaler = KedaHpaScaler(messages_per_replica=100, max_replicas=20)
    current, replicas = 0, []
    for t in range(600):
        backlog = 1_000.0 if t < 60 else 100.0  # 10 replicas' worth, then 1 (never idle: KEDA stays out)
        current = scaler.step(float(t), Signals(backlog, 0.0, 0.0, None), current)
        replicas.append(current)
    assert max(replicas) == 10
    first_down = next(t for t in range(60, 600) if replicas[t] < 10)
    # The last HPA sync that saw 1,000 messages was at 45 s; its recommendation leaves the 300 s window at
    # 345 s (the HPA keeps only recommendations strictly younger than the window).
    assert first_down == 45 + 300


def test_our_scaler_is_the_operators_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[scaling.Observation] = []
    real = scaling.decide

    def spy(*args: object, **kwargs: object) -> scaling.Decision:
        calls.append(args[1])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scaling, "decide", spy)
    simulate(traces.shape("step", 600, 50), Scenario(), OurScaler(our_default_policy(10)))
    assert len(calls) == pytest.approx(600 / scaling.DEFAULT_POLLING_INTERVAL_SECONDS, abs=2)
    # It sees what the operator scrapes from the workers, as the operator's tick passes it.
    assert any(c.busy_replicas for c in calls), "the workers' load never reached the scaler"
    assert {c.queue_found_empty for c in calls} == {None, False, True}


@dataclass
class Fixed:
    """Holds `replicas` from the start and records what the model shows a scaler each second."""

    replicas: int
    name: str = "fixed"
    seen: list[Signals] = field(default_factory=list)

    def step(self, now: float, signals: Signals, current: int) -> int:
        self.seen.append(signals)
        return self.replicas


def test_the_queue_runs_dry_when_ready_pods_have_spare_capacity() -> None:
    arrivals = np.zeros(120)
    arrivals[:60] = 5.0  # half of one replica's 10 msg/s, queued for 20 s while the pod starts
    scaler = Fixed(1)
    simulate(arrivals, Scenario(startup_seconds=20), scaler)
    dry = [s.queue_found_empty for s in scaler.seen]
    assert dry[:20] == [None] * 20, "no pod was ready to receive"
    assert dry[20:30] == [False] * 10, "a ready pod working through the backlog found messages"
    assert dry[40:] == [True] * len(dry[40:]), "a pod with spare capacity received nothing"
    assert all(s.backlog == 0 for s in scaler.seen[40:])


def observations(monkeypatch: pytest.MonkeyPatch) -> list[scaling.Observation]:
    """What our scaler hands `scaling.decide` at each of its decisions, from now on."""
    seen: list[scaling.Observation] = []
    real = scaling.decide

    def spy(*args: object, **kwargs: object) -> scaling.Decision:
        seen.append(args[1])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scaling, "decide", spy)
    return seen


def test_our_scaler_sees_the_queue_found_empty_at_any_second_since_its_last_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the operator reads a counter's delta between two scrapes: one dry second shows at the next tick."""
    seen = observations(monkeypatch)
    scaler = OurScaler(our_default_policy(10))  # decides at 0, 5, 10, 15, 20 s
    for t in range(21):
        ran_dry = None if t < 3 else t == 7  # no pod ready until 3 s; the queue ran dry at 7 s only
        scaler.step(float(t), Signals(0.0, 1.0, 1.0, ran_dry), 1)
    assert [o.queue_found_empty for o in seen] == [None, False, True, False, False]


@pytest.mark.parametrize("lag", [5, 90])
def test_a_fleet_that_keeps_up_with_a_steady_stream_stays_put(lag: int) -> None:
    arrivals = np.full(3600, 95.0)  # 9.5 replicas' worth at 10 msg/s each
    run = simulate(arrivals, Scenario(metric_lag_seconds=lag), OurScaler(our_default_policy(50)))
    settled = run.replicas[600:3600]
    assert settled.min() == settled.max() == 10, "scaled away from a fleet that keeps up, or flapped"
    assert run.backlog[600:3600].max() == 0, "messages waited once the fleet had settled"


def test_cli_prints_the_table_and_draws_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "plot.png"
    assert cli.main(["--shape", "spikes", "--duration-seconds", "1800", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "queue-consumer-operator" in out
    assert "KEDA + HPA" in out
    assert "p95 wait s" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["--trace", str(tmp_path / "missing.csv")]) == 2


def test_our_scaler_learns_the_throughput_as_the_operator_does_from_two_scrapes_of_busy_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's own estimator over its ticks' scrapes: unknown until the second tick that finds a
    ready pod (the first has nothing to compare with), then completions over the busy time. Revealing
    it at the first busy second, as the model did, scaled the spikes replay to two replicas where the real
    operator kept one (README, `make bench-keda`)."""
    seen = observations(monkeypatch)
    scaler = OurScaler(our_default_policy(10))  # decides at 0, 5, 10, 15, 20 s
    for t in range(21):
        ready = t >= 3  # no pod ready until 3 s; then one, busy half the time, completing 4 messages/s
        signals = Signals(100.0, 2.0, 0.5, False if ready else None, acked=4.0 if ready else 0.0)
        scaler.step(float(t), signals, 1)
    throughputs = [o.throughput_per_replica for o in seen]
    assert throughputs[:2] == [None, None]  # nothing ready at 0 s; the first scrape at 5 s has nothing before
    # 4 completions a second from a pod busy half the time: 8 a second per fully busy replica.
    assert throughputs[2:] == [pytest.approx(8.0)] * 3
