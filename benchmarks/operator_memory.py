"""`python -m benchmarks.operator_memory`: what holds the operator's memory per QueueConsumer.

The same stack and QueueConsumers as `make bench-operator` (benchmarks/bench_operator.py), but the
operator runs in this process under tracemalloc, so that once every QueueConsumer has ticked twice it can
report: the allocation sites holding the most memory (tracemalloc, grouped by traceback), live objects by
type (gc), asyncio tasks by coroutine, threads, and the RSS. Each figure is also divided by the number of
QueueConsumers: what grows with them shows as a per-QueueConsumer cost. tracemalloc slows the operator
down several times: this measures memory, never CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks import bench_operator
from devstack.kube import KubeControlPlane
from devstack.process import free_port
from devstack.services import RabbitMQ
from qc_common import metrics as names

TRACEBACK_FRAMES = 10
TOP_SITES = 30
TOP_TYPES = 30
SETTLE_TIMEOUT_SECONDS = 1800.0


def rss_mib() -> float:
    return bench_operator.memory_mib(os.getpid(), "VmRSS")


def ticked_twice(memo: Any, count: int) -> bool:
    """Every QueueConsumer ticked at least twice (the first tick writes the status; the second is steady)."""
    state = getattr(memo, "state", None)
    if state is None:
        return False
    metrics = state.metrics
    per_consumer: collections.Counter[str] = collections.Counter()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == names.OPERATOR_RECONCILES:
                per_consumer[sample.labels["consumer"]] += int(sample.value)
    return len(per_consumer) >= count and min(per_consumer.values()) >= 2


def report(count: int, started_mib: float) -> None:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
        ]
    )
    total = sum(stat.size for stat in snapshot.statistics("filename"))
    rss = rss_mib()
    print(f"## Operator in-process with {count} QueueConsumers")
    print(f"RSS {rss:.1f} MiB (before the operator: {started_mib:.1f}); traced {total / 2**20:.1f} MiB")
    per_rss, per_traced = (rss - started_mib) * 1024 / count, total / 1024 / count
    print(f"per QueueConsumer: RSS {per_rss:.1f} KiB, traced {per_traced:.1f} KiB")
    print(f"threads {threading.active_count()}")
    tasks = asyncio.all_tasks()
    names = collections.Counter(getattr(t.get_coro(), "__qualname__", "?") for t in tasks)
    print(f"asyncio tasks {len(tasks)}: " + ", ".join(f"{n} x{c}" for n, c in names.most_common(8)))
    print("\n### Allocation sites by size (tracemalloc, by traceback; most recent frame last)")
    for stat in snapshot.statistics("traceback")[:TOP_SITES]:
        print(
            f"\n{stat.size / 2**20:8.2f} MiB  {stat.size / 1024 / count:7.2f} KiB/QC  {stat.count:8d} blocks"
        )
        for frame in stat.traceback.format(limit=TRACEBACK_FRAMES)[-2 * TRACEBACK_FRAMES :]:
            if frame.startswith("  File"):
                print("   " + frame.strip().replace(str(Path(sys.prefix)), "<venv>"))
    print("\n### By file")
    for stat in snapshot.statistics("filename")[:TOP_SITES]:
        name = str(stat.traceback[0].filename).replace(str(Path(sys.prefix)), "<venv>")
        print(f"{stat.size / 2**20:8.2f} MiB  {stat.size / 1024 / count:7.2f} KiB/QC  {name}")
    print("\n### Live gc-tracked objects by type")
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    for name, number in types.most_common(TOP_TYPES):
        print(f"{number:9d}  {number / count:7.1f}/QC  {name}")


async def run_operator(count: int, started_mib: float) -> None:
    import kopf

    from qc_operator import handlers

    memo = kopf.Memo()
    stop = asyncio.Event()

    async def watch() -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while not ticked_twice(memo, count):
            if time.monotonic() > deadline:
                print("not every QueueConsumer ticked twice in time; reporting anyway", file=sys.stderr)
                break
            await asyncio.sleep(5)
        report(count, started_mib)
        stop.set()

    watcher = asyncio.create_task(watch())
    await kopf.operator(
        clusterwide=True,
        standalone=True,
        memo=memo,
        stop_flag=stop,
        registry=kopf.get_default_registry(),
        liveness_endpoint=f"http://127.0.0.1:{free_port()}/healthz",
    )
    watcher.cancel()  # stopped early (a signal): no report
    del handlers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator_memory", description=__doc__)
    parser.add_argument("--consumers", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        kube, broker = KubeControlPlane(Path(directory) / "kube"), RabbitMQ(Path(directory) / "rabbitmq")
        try:
            api_client = bench_operator.prepare(kube, broker)
            bench_operator.create_consumers(api_client, bench_operator.consumer_names(args.consumers))
            os.environ["KUBECONFIG"] = str(kube.admin_kubeconfig)  # the operator's own client reads it
            os.environ["QC_METRICS_PORT"] = str(free_port())
            gc.collect()
            started_mib = rss_mib()
            tracemalloc.start(TRACEBACK_FRAMES)
            asyncio.run(run_operator(args.consumers, started_mib))
        finally:
            broker.stop()
            kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
