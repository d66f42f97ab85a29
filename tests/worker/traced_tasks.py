"""Task functions for the tracing tests (named "traced_tasks:<function>", found as worker_tasks is)."""

from __future__ import annotations

from opentelemetry import trace

import qc_worker


async def fails_first_attempt(message: qc_worker.Message) -> None:
    """A downstream that refuses once: the first attempt fails, the retry succeeds. It opens a span of its
    own, which must land under the attempt's span (an `async def` task runs with it current)."""
    with trace.get_tracer("traced_tasks").start_as_current_span("write to the downstream"):
        if message.delivery_attempt == 1:
            raise RuntimeError("the downstream refused the write")


async def always_fails(message: qc_worker.Message) -> None:
    raise RuntimeError("the downstream is down")
