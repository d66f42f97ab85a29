"""`make bench-simulator`: every checked-in trace through our default scaler and KEDA + HPA defaults.

Prints, per trace and scenario, both rows side by side and the verdict against the target (at least 30%
lower p95 wait at no more replica-seconds, or at least 20% fewer replica-seconds at no worse p95; no more
reversals), then the time a 24-hour trace at 1 s resolution takes. Plots go to out/simulator/. Traces with
a `downstream` column (an outage, a rate-limited API) add what the downstream got: the retries sent to it,
the messages dead-lettered, the replicas, and the time to drain after it recovered.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qc_operator.simulator import traces
from qc_operator.simulator.cli import run_both
from qc_operator.simulator.model import Scenario
from qc_operator.simulator.plot import plot
from qc_operator.simulator.report import Summary, summarize, table

TRACES = Path(__file__).resolve().parent / "traces"
OUT = Path(__file__).resolve().parents[1] / "out" / "simulator"
SCENARIOS = {
    "RabbitMQ (metric lag 5 s)": Scenario(metric_lag_seconds=5),
    "Pub/Sub (metric lag 90 s)": Scenario(metric_lag_seconds=90),
}


def verdict(ours: Summary, keda: Summary) -> str:
    faster = (
        ours.p95_wait_seconds <= 0.7 * keda.p95_wait_seconds and ours.replica_seconds <= keda.replica_seconds
    )
    cheaper = (
        ours.replica_seconds <= 0.8 * keda.replica_seconds and ours.p95_wait_seconds <= keda.p95_wait_seconds
    )
    calm = ours.reversals <= keda.reversals
    p95 = ours.p95_wait_seconds / max(keda.p95_wait_seconds, 1e-9)
    cost = ours.replica_seconds / max(keda.replica_seconds, 1e-9)
    status = "MET" if (faster or cheaper) and calm else "NOT MET"
    reversals = f"reversals {ours.reversals} vs {keda.reversals}"
    return f"p95 wait x{p95:.2f}, replica-seconds x{cost:.2f}, {reversals}: {status}"


def downstream_line(ours: Summary, keda: Summary) -> str:
    retries = ours.retries / max(keda.retries, 1e-9)
    dead = ours.dead_letters / max(keda.dead_letters, 1e-9)

    def drain(summary: Summary) -> str:
        seconds = summary.drain_after_recovery_seconds
        return "-" if seconds is None else f"{seconds:.0f} s"

    return (
        f"downstream: retries sent x{retries:.2f}, dead letters x{dead:.2f}, most replicas while it failed "
        f"{ours.max_replicas_while_failing:.0f} vs {keda.max_replicas_while_failing:.0f}, drain after "
        f"recovery {drain(ours)} vs {drain(keda)}"
    )


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    met = total = 0
    for path in sorted(TRACES.glob("*.csv")):
        arrivals = traces.from_csv(path)
        accepted = traces.downstream_from_csv(path)
        for name, scenario in SCENARIOS.items():
            runs = run_both(arrivals, scenario, messages_per_replica=100, accepted_per_second=accepted)
            ours, keda = (summarize(run, downstream=accepted is not None) for run in runs)
            if accepted is None:
                line = verdict(ours, keda)
                met += line.endswith(": MET")
                total += 1
            else:  # the wait target does not apply: a message dead-lettered early leaves the queue early
                line = downstream_line(ours, keda)
            print(f"\n## {path.stem} — {name}\n{table([ours, keda])}\n{line}")
            plot(runs, OUT / f"{path.stem}-lag{scenario.metric_lag_seconds}.png", f"{path.stem}, {name}")
    print(f"\ntarget met on {met} of {total} trace/scenario pairs (those without a downstream)")

    day = traces.from_csv(TRACES / "diurnal-24h.csv")
    started = time.perf_counter()
    run_both(day, Scenario(), messages_per_replica=100)
    seconds = time.perf_counter() - started
    print(f"24-hour trace at 1 s resolution ({len(day)} s), both scalers: {seconds:.1f} s (target < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
