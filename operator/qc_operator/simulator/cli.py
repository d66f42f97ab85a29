"""`qc-operator simulate`: replay a trace through our scaler and KEDA + HPA; print a table, draw a plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from qc_operator.simulator import traces
from qc_operator.simulator.model import Run, Scenario, Series, simulate
from qc_operator.simulator.plot import plot
from qc_operator.simulator.report import Summary, summarize, table
from qc_operator.simulator.scalers import (
    KedaHpaScaler,
    OurScaler,
    Scaler,
    default_protection,
    our_default_policy,
)

PROGRESS_MIN_SECONDS = 4 * 3600  # show a progress bar for traces longer than this


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qc-operator simulate", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--trace",
        type=Path,
        help="CSV: one column of timestamps, 'second,rate' rows, or 'second,rate,downstream' rows (the calls "
        "per second the downstream accepts from then on: 0 an outage, inf no limit)",
    )
    source.add_argument("--shape", choices=traces.SHAPES, help="a built-in trace")
    parser.add_argument("--duration-seconds", type=int, default=3600, help="length of a built-in trace")
    parser.add_argument("--peak-rate", type=float, default=200.0, help="peak arrivals/s of a built-in trace")
    parser.add_argument("--throughput-per-replica", type=float, default=10.0, help="messages/s per replica")
    parser.add_argument("--startup-seconds", type=float, default=20.0, help="pod start-up delay")
    parser.add_argument(
        "--metric-lag-seconds", type=int, default=0, help="backlog metric delay (Pub/Sub: 60-180)"
    )
    parser.add_argument("--max-replicas", type=int, default=50)
    keda_help = "KEDA's target value (the HPA's AverageValue); ours uses its drain-time target"
    parser.add_argument("--messages-per-replica", type=float, default=100.0, help=keda_help)
    parser.add_argument("--plot", type=Path, help="write a PNG of backlog, replicas and wait")
    parser.add_argument("--seed", type=int, default=1)
    return parser


def progress_bar(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        fraction = min(1.0, done / max(total, 1))
        filled = int(fraction * 30)
        sys.stderr.write(f"\r{label:<26} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}")
        sys.stderr.flush()

    return show


def run_both(
    arrivals: traces.Arrivals,
    scenario: Scenario,
    messages_per_replica: float,
    accepted_per_second: Series | None = None,
) -> list[Run]:
    """Our defaults (downstream protection included) and KEDA + HPA's over the same trace."""
    scalers: list[Scaler] = [
        OurScaler(our_default_policy(scenario.max_replicas), protection=default_protection()),
        KedaHpaScaler(messages_per_replica, scenario.max_replicas),
    ]
    runs = []
    for scaler in scalers:
        show = progress_bar(scaler.name) if len(arrivals) >= PROGRESS_MIN_SECONDS else None
        runs.append(simulate(arrivals, scenario, scaler, show, accepted_per_second))
        if show is not None:
            sys.stderr.write("\n")
    return runs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    accepted = None
    try:
        if args.trace is not None:
            arrivals = traces.from_csv(args.trace)
            accepted = traces.downstream_from_csv(args.trace)
        else:
            arrivals = traces.shape(args.shape, args.duration_seconds, args.peak_rate, args.seed)
    except (traces.TraceError, OSError) as error:
        print(f"qc-operator simulate: {error}", file=sys.stderr)
        return 2
    scenario = Scenario(
        args.throughput_per_replica, args.startup_seconds, args.metric_lag_seconds, args.max_replicas
    )
    runs = run_both(arrivals, scenario, args.messages_per_replica, accepted)
    summaries: list[Summary] = [summarize(run, downstream=accepted is not None) for run in runs]
    print(table(summaries))
    if args.plot is not None:
        name = args.trace.name if args.trace else args.shape
        print(f"plot: {plot(runs, args.plot, f'{name}: {scenario}')}")
    return 0
