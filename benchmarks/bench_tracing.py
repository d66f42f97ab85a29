"""`python -m benchmarks.bench_tracing`: what tracing costs the runtime per message, off vs on, as a ratio.

No-op `async def` tasks on the in-memory source (the runtime's own cost, as in bench_worker's in-memory
row), each message carrying a publisher's `traceparent`; on: an SDK tracer provider exporting through a
BatchSpanProcessor to an exporter that drops the spans (the export is another thread's cost). Alternating
rounds, since the shared machine's load moves; read the ratio, not the microseconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from devstack.polling import wait_until_async
from qc_worker import tracing
from qc_worker.executors import AsyncExecutor
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime
from qc_worker.settings import WorkerSettings
from qc_worker.sources.memory import MemorySource
from qc_worker.tasks import load_task

MESSAGES = 20_000
ROUNDS = 3
TIMEOUT_SECONDS = 600
CONCURRENCY = 64
TASK = "benchmarks.bench_tasks:noop_task"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def microseconds_per_message(traces: tracing.Tracing) -> float:
    source = MemorySource(receive_wait_seconds=0.001)
    settings = WorkerSettings(task=TASK, source="rabbitmq", concurrency=CONCURRENCY)
    metrics = WorkerMetrics("memory", TASK, CONCURRENCY)
    runtime = Runtime(settings, load_task(TASK), source, AsyncExecutor(), metrics, traces)
    for _ in range(MESSAGES):
        source.put(b"{}", traceparent=TRACEPARENT)
    running = asyncio.create_task(runtime.run())
    started = time.perf_counter()

    async def all_acked() -> bool:  # polling the source's record: no hook in the hot path
        if running.done():
            running.result()  # raises whatever stopped the runtime early
        return len(source.acked) >= MESSAGES

    await wait_until_async(all_acked, TIMEOUT_SECONDS, "every message acked", interval_seconds=0.005)
    seconds = time.perf_counter() - started
    runtime.request_stop()
    await running
    return seconds / MESSAGES * 1e6


def main() -> int:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter(), max_queue_size=MESSAGES * 2))
    for round_number in range(1, ROUNDS + 1):
        off = asyncio.run(microseconds_per_message(tracing.Tracing()))
        on = asyncio.run(microseconds_per_message(tracing.OpenTelemetryTracing(provider)))
        print(f"round {round_number}: off {off:.1f} us/message, on {on:.1f} us/message: x{on / off:.1f}")
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
