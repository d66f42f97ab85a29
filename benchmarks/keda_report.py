"""What `make bench-keda` reports for each side, from plain data, and the simulator's prediction beside it.

Pure: the measured side comes from the messages themselves (each id carries its publish time; the ledger
the workers report to stamps each completion) and from the Deployments' replicas sampled once a second
(benchmarks/bench_keda.py does the I/O). The simulator runs the same per-second arrivals through the same
settings (operator/qc_operator/simulator), with the pod start-up time measured in the run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qc_operator.simulator.model import Run, Scenario, Series, simulate
from qc_operator.simulator.report import waits
from qc_operator.simulator.scalers import KedaHpaScaler, OurScaler, Scaler, our_default_policy


@dataclass(frozen=True)
class SideSettings:
    """One autoscaler of the comparison; `keda` None is ours (the QueueConsumer with the CRD's defaults)."""

    name: str
    keda: KedaSettings | None


@dataclass(frozen=True)
class KedaSettings:
    polling_interval_seconds: int = 30  # the ScaledObject's defaults, as documented
    cooldown_seconds: int = 300
    scale_down_window_seconds: int = 300  # the HPA's default behavior.scaleDown window


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the run's first publish
    replicas: int  # the Deployment's spec.replicas: pods that cost, starting ones included
    ready: int


@dataclass(frozen=True)
class Row:
    source: str  # "measured" | "simulated"
    side: str
    p50_wait_seconds: float
    p95_wait_seconds: float
    max_wait_seconds: float
    replica_seconds: float
    scale_events: int
    reversals: int
    first_scale_seconds: float | None  # first message -> the first replica asked for (0 -> 1)
    first_ready_seconds: float | None  # first message -> first ready replica
    drained_seconds: float | None  # first message -> last message done
    back_to_zero_seconds: float | None  # first message -> no replica left, after the drain
    # Messages/s per ready replica: measured while every slot had work (`throughput_per_replica`), or the
    # simulator's input.
    throughput_per_replica: float | None = None


def moves(replicas: Sequence[float] | Series) -> tuple[int, int]:
    """Scale events and reversals (a move against the previous move's direction)."""
    changes = np.diff(np.asarray(replicas, dtype=np.float64))
    signs = np.sign(changes[changes != 0])
    reversals = int(np.sum(signs[1:] != signs[:-1])) if len(signs) > 1 else 0
    return len(signs), reversals


def measured_row(
    side: str,
    wait_seconds: Sequence[float],
    done_seconds: float,
    samples: list[Sample],
    throughput: float | None = None,
) -> Row:
    """`wait_seconds`: publish -> start of processing per message; `done_seconds`: the last completion."""
    waits_ = np.asarray(wait_seconds, dtype=np.float64) if wait_seconds else np.zeros(1)
    replica_seconds = sum(a.replicas * (b.seconds - a.seconds) for a, b in itertools.pairwise(samples))
    events, reversals = moves([s.replicas for s in samples])
    first_scale = next((s.seconds for s in samples if s.replicas > 0), None)
    first_ready = next((s.seconds for s in samples if s.ready > 0), None)
    zero = next((s.seconds for s in samples if s.seconds >= done_seconds and s.replicas == 0), None)
    return Row(
        "measured",
        side,
        float(np.percentile(waits_, 50)),
        float(np.percentile(waits_, 95)),
        float(np.max(waits_)),
        replica_seconds,
        events,
        reversals,
        first_scale,
        first_ready,
        done_seconds,
        zero,
        throughput,
    )


def throughput_per_replica(
    published: Mapping[str, float],
    done: Mapping[str, float],
    samples: Sequence[Sample],
    window_per_replica: int,
) -> float | None:
    """Messages/s one ready replica completed while the fleet had work for every slot, from the messages.

    A sampling interval counts when, at both ends, more messages were published and not yet done (known
    exactly from the ids and the ledger) than the ready replicas (unchanged over it) hold in their windows
    (each worker's prefetch: its concurrency plus what it prefetches beyond): every worker then has its
    window full, so none waits for the broker. Its completions over its ready replica-seconds are the
    node's real capacity, which the nominal slots / work_seconds overstates on a loaded node (the broker
    round trip, the ledger's POST and the pods' CPU share all count). None: no such interval (the fleet
    never fell behind)."""
    if not published or not done:
        return None
    first = min(published.values())
    sent = np.sort(np.asarray(list(published.values()), dtype=np.float64) - first)
    finished = np.sort(np.asarray(list(done.values()), dtype=np.float64) - first)

    def outstanding(seconds: float) -> int:
        return int(np.searchsorted(sent, seconds, "right") - np.searchsorted(finished, seconds, "right"))

    completions, ready_seconds = 0, 0.0
    for a, b in itertools.pairwise(samples):
        held = a.ready * window_per_replica
        if a.ready == 0 or b.ready != a.ready or min(outstanding(a.seconds), outstanding(b.seconds)) <= held:
            continue
        completions += int(np.searchsorted(finished, b.seconds) - np.searchsorted(finished, a.seconds))
        ready_seconds += a.ready * (b.seconds - a.seconds)
    return completions / ready_seconds if ready_seconds else None


def measured_scenario(
    measured: Sequence[Row], nominal_throughput: float, metric_lag_seconds: int, max_replicas: int
) -> Scenario:
    """The simulator's Scenario from a run: the pod start-up (the median over the sides of first replica
    asked -> ready) and the per-replica throughput (the same pods on every side: the median of the sides';
    the nominal one if no side fell behind)."""
    startup = [
        r.first_ready_seconds - r.first_scale_seconds
        for r in measured
        if r.first_ready_seconds is not None and r.first_scale_seconds is not None
    ]
    throughputs = [r.throughput_per_replica for r in measured if r.throughput_per_replica is not None]
    return Scenario(
        throughput_per_replica=float(np.median(throughputs)) if throughputs else nominal_throughput,
        startup_seconds=float(np.median(startup)) if startup else 20.0,
        metric_lag_seconds=metric_lag_seconds,
        max_replicas=max_replicas,
    )


def scaler_for(side: SideSettings, max_replicas: int, messages_per_replica: float) -> Scaler:
    if side.keda is None:
        return OurScaler(our_default_policy(max_replicas))
    k = side.keda
    return KedaHpaScaler(
        messages_per_replica,
        max_replicas,
        polling_interval_seconds=k.polling_interval_seconds,
        cooldown_seconds=k.cooldown_seconds,
        scale_down_window_seconds=k.scale_down_window_seconds,
    )


def simulated_row(side: SideSettings, arrivals: Series, scenario: Scenario, value: float) -> Row:
    run = simulate(arrivals, scenario, scaler_for(side, scenario.max_replicas, value))
    return _row_of(side.name, run, scenario.throughput_per_replica)


def _row_of(side: str, run: Run, throughput: float) -> Row:
    wait = waits(run)
    events, reversals = moves(run.replicas)
    first = int(np.nonzero(run.arrivals)[0][0]) if np.any(run.arrivals) else 0  # times from the first message
    asked = np.nonzero(run.replicas > 0)[0]
    ready = np.nonzero(run.ready > 0)[0]
    done = np.nonzero(run.departures > 0)[0]
    drained = float(done[-1] + 1 - first) if len(done) else None
    start = first + int(drained or 0)
    after = np.nonzero(run.replicas[start:] == 0)[0]
    zero = float(start - first + after[0]) if len(after) else float(len(run.replicas) - first)
    return Row(
        "simulated",
        side,
        float(np.percentile(wait, 50)),
        float(np.percentile(wait, 95)),
        float(np.max(wait)),
        float(np.sum(run.replicas)),
        events,
        reversals,
        float(asked[0] - first) if len(asked) else None,
        float(ready[0] - first) if len(ready) else None,
        drained,
        zero,
        throughput,
    )


def table(rows: list[Row]) -> str:
    header = (
        "side",
        "source",
        "wait p50 s",
        "p95 s",
        "max s",
        "replica-s",
        "events",
        "reversals",
        "0->1 s",
        "1st ready s",
        "drained s",
        "zero s",
        "msg/s/replica",
    )

    def at(value: float | None) -> str:
        return "-" if value is None or math.isinf(value) else f"{value:.0f}"

    lines = [header] + [
        (
            r.side,
            r.source,
            f"{r.p50_wait_seconds:.1f}",
            f"{r.p95_wait_seconds:.1f}",
            f"{r.max_wait_seconds:.1f}",
            f"{r.replica_seconds:.0f}",
            str(r.scale_events),
            str(r.reversals),
            at(r.first_scale_seconds),
            at(r.first_ready_seconds),
            at(r.drained_seconds),
            at(r.back_to_zero_seconds),
            "-" if r.throughput_per_replica is None else f"{r.throughput_per_replica:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        " | ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )
