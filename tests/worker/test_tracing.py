"""Traces on the real RabbitMQ and the Pub/Sub emulator: a publisher's context → the task's attempt span (its
child) → a retry → the second attempt in the same trace → the ack; what dead letters carry on; a context
that cannot be read (garbage, too long, bytes, a number, a list) is none: a fresh trace, nothing failed.

The runtime runs in this process (real sources, the async executor) so the SDK's InMemorySpanExporter sees
every span; the process's tracer provider is set once, as `opentelemetry-instrument` would, and
`tracing.configure` picks it up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from google.cloud import pubsub_v1
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from devstack.services import PubSubEmulator, RabbitMQ
from qc_worker import tracing
from qc_worker.executors import AsyncExecutor
from qc_worker.messages import Delivery, Message
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime
from qc_worker.settings import WorkerSettings
from qc_worker.sources.base import Source
from qc_worker.sources.pubsub import PubSubSource
from qc_worker.sources.rabbitmq import RabbitMQSource
from qc_worker.tasks import load_task
from tests.worker.rabbitmq_helpers import declare, publish_messages, take_all

EXPORTER = InMemorySpanExporter()
ATTACHED: list[TracerProvider] = []  # providers EXPORTER is attached to (a process has one at most)
PUBLISHER = "publisher"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test here: set the process's provider once
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if provider not in ATTACHED:
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        ATTACHED.append(provider)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def publisher_context() -> tuple[dict[str, str], trace.SpanContext]:
    """What a traced publisher puts on a message: the W3C context of its `publish` span."""
    headers: dict[str, str] = {}
    with trace.get_tracer(PUBLISHER).start_as_current_span("publish") as span:
        inject(headers)
    return headers, span.get_span_context()


async def run_until(runtime: Runtime, condition: Any, timeout_seconds: float = 60) -> None:
    running = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        assert not running.done(), running.exception()
        await asyncio.sleep(0.05)
    runtime.request_stop()
    await asyncio.wait_for(running, 60)


def make_runtime(source: Source, task_ref: str, **overrides: Any) -> Runtime:
    settings = WorkerSettings(
        task=task_ref,
        source="rabbitmq",
        retry_backoff_min_seconds=0.2,
        retry_backoff_max_seconds=0.2,
        drain_grace_seconds=5,
        tracing=True,
        **overrides,
    )
    metrics = WorkerMetrics(source.name, task_ref, settings.concurrency)
    traces = tracing.configure(settings.tracing)
    assert isinstance(traces, tracing.OpenTelemetryTracing)
    return Runtime(settings, load_task(task_ref), source, AsyncExecutor(), metrics, traces)


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans.get_finished_spans() if s.name == name),
        key=lambda s: int(str((s.attributes or {}).get("qc.delivery_attempt", 0))),
    )


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def assert_retried_then_acked(spans: InMemorySpanExporter, publisher: trace.SpanContext) -> None:
    first, second = named(spans, "process traced_tasks:fails_first_attempt")
    [retry], [ack] = named(spans, "retry"), named(spans, "ack")
    writes = named(spans, "write to the downstream")
    for span in (first, second, retry, ack, *writes):
        assert span.context.trace_id == publisher.trace_id, f"{span.name} is not in the publisher's trace"
    # Each attempt is a child of the publisher's span, numbered, with its outcome.
    assert parent_id(first) == parent_id(second) == publisher.span_id
    assert first.kind == second.kind == trace.SpanKind.CONSUMER
    assert first.attributes
    assert second.attributes
    assert (first.attributes["qc.delivery_attempt"], first.attributes["qc.outcome"]) == (1, "retry")
    assert first.attributes["qc.failure_reason"] == "exception"
    assert first.status.status_code == StatusCode.ERROR
    assert "the downstream refused the write" in (first.status.description or "")
    assert (second.attributes["qc.delivery_attempt"], second.attributes["qc.outcome"]) == (2, "ack")
    assert second.status.status_code != StatusCode.ERROR
    # The settlements sit under their attempts; the task's own spans under the attempt that ran them.
    assert parent_id(retry) == first.context.span_id
    assert parent_id(ack) == second.context.span_id
    assert sorted(parent_id(w) or 0 for w in writes) == sorted(
        [first.context.span_id, second.context.span_id]
    )
    # The retried copy exists from the moment its publish is confirmed, inside the retry's settlement
    # (which then acks the original): its attempt may start, and even be acked, before that span ends.
    assert retry.start_time
    assert second.start_time
    assert retry.start_time <= second.start_time


async def test_rabbitmq_a_publishers_trace_goes_through_a_retry_to_the_ack(
    rabbitmq: RabbitMQ, spans: InMemorySpanExporter
) -> None:
    queue = f"traced-{uuid.uuid4().hex[:8]}"
    await declare(rabbitmq.amqp_url, queue)
    headers, publisher = publisher_context()
    await publish_messages(rabbitmq.amqp_url, queue, [aio_pika.Message(b"{}", headers=dict(headers))])
    source = RabbitMQSource(rabbitmq.amqp_url, queue, "", prefetch=4)
    runtime = make_runtime(source, "traced_tasks:fails_first_attempt")
    await run_until(runtime, lambda: len(named(spans, "ack")) == 1)
    assert_retried_then_acked(spans, publisher)
    assert rabbitmq.queue_counts(queue)["messages"] == 0


async def test_rabbitmq_a_message_without_a_context_keeps_one_trace_across_attempts_into_its_dead_letter(
    rabbitmq: RabbitMQ, spans: InMemorySpanExporter
) -> None:
    queue = f"untraced-{uuid.uuid4().hex[:8]}"
    await declare(rabbitmq.amqp_url, queue)
    await publish_messages(rabbitmq.amqp_url, queue, [aio_pika.Message(b"{}", headers={"keep": "me"})])
    source = RabbitMQSource(rabbitmq.amqp_url, queue, "", prefetch=4)
    runtime = make_runtime(source, "traced_tasks:always_fails", max_delivery_attempts=2)
    await run_until(runtime, lambda: len(named(spans, "dead_letter")) == 1)
    first, second = named(spans, "process traced_tasks:always_fails")
    [retry], [dead] = named(spans, "retry"), named(spans, "dead_letter")
    # The first attempt started the trace; the retried copy carried it, so the second attempt joined it.
    assert first.parent is None
    assert second.context.trace_id == first.context.trace_id
    assert parent_id(second) == first.context.span_id
    assert second.attributes
    assert second.attributes["qc.outcome"] == "dead_letter"
    assert parent_id(retry) == first.context.span_id
    assert parent_id(dead) == second.context.span_id
    [dead_letter] = await take_all(rabbitmq.amqp_url, f"{queue}.dead")
    carried = dead_letter.headers or {}
    assert carried["keep"] == "me"
    # The dead letter goes on in the same trace (its context is the one the message got at first).
    assert str(carried["traceparent"]).split("-")[1] == f"{first.context.trace_id:032x}"


async def test_pubsub_googles_context_attribute_goes_through_a_retry_to_the_ack_and_into_a_dead_letter(
    pubsub_env: PubSubEmulator, spans: InMemorySpanExporter
) -> None:
    suffix = uuid.uuid4().hex[:8]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    project = pubsub_env.project
    topic, dead_topic = (publisher.topic_path(project, f"{n}-{suffix}") for n in ("traced", "dead"))
    subscription = subscriber.subscription_path(project, f"traced-{suffix}")
    dead_subscription = subscriber.subscription_path(project, f"dead-{suffix}")
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
    subscriber.create_subscription(name=dead_subscription, topic=dead_topic)
    try:
        headers, traced = publisher_context()
        # As google-cloud-pubsub's publisher writes it with OpenTelemetry on: the W3C keys, prefixed.
        google_style = {f"{tracing.GOOGLE_PREFIX}{key}": value for key, value in headers.items()}
        publisher.publish(topic, b"{}", **google_style).result(timeout=30)
        source = PubSubSource(project, subscription.rsplit("/", 1)[1], dead_topic.rsplit("/", 1)[1])
        runtime = make_runtime(source, "traced_tasks:fails_first_attempt")
        await run_until(runtime, lambda: len(named(spans, "ack")) == 1)
        assert_retried_then_acked(spans, traced)

        # A message that came without a context: its dead letter carries its attempt's.
        EXPORTER.clear()
        publisher.publish(topic, b"{}", keep="me").result(timeout=30)
        source = PubSubSource(project, subscription.rsplit("/", 1)[1], dead_topic.rsplit("/", 1)[1])
        runtime = make_runtime(source, "traced_tasks:always_fails", max_delivery_attempts=1)
        await run_until(runtime, lambda: len(named(spans, "dead_letter")) == 1)
        [attempt] = named(spans, "process traced_tasks:always_fails")
        response = subscriber.pull(subscription=dead_subscription, max_messages=10, timeout=30)
        [dead] = response.received_messages
        assert dead.message.attributes["keep"] == "me"
        traceparent = dead.message.attributes["traceparent"]
        assert traceparent.split("-")[1:3] == [
            f"{attempt.context.trace_id:032x}",
            f"{attempt.context.span_id:016x}",
        ]
    finally:
        subscriber.delete_subscription(subscription=subscription)
        subscriber.delete_subscription(subscription=dead_subscription)
        subscriber.close()


VALID_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MALFORMED_CONTEXTS: dict[str, Any] = {
    "garbage": "not a trace context",
    "too long": f"01-{'1' * 32}-{'2' * 16}-01-" + "x" * 2000,  # a future version may add fields, not 2 KB
    "bytes": b"\xff\xfe\x00 not text",
    "int": 12345,
    "list": [VALID_TRACEPARENT],
}


@pytest.mark.parametrize("case", list(MALFORMED_CONTEXTS))
def test_a_malformed_context_in_a_message_is_none_its_attempt_starts_a_fresh_trace_and_carries_it(
    case: str,
) -> None:
    # The hooks on their own, with the values as a source might hand them over (not only as text).
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces = tracing.OpenTelemetryTracing(provider)
    value = MALFORMED_CONTEXTS[case]
    message = Message(
        b"{}", "m", {"traceparent": value, "tracestate": value, "googclient_traceparent": value}
    )
    delivery = Delivery(message, handle=None)
    traces.begin([delivery], "task", "memory")
    with traces.settling(delivery, "retry"):
        carried = tracing.carried()
    [attempt] = [s for s in exporter.get_finished_spans() if s.name == "process task"]
    assert attempt.parent is None  # a fresh trace
    assert attempt.context.trace_id != int(VALID_TRACEPARENT.split("-")[1], 16)
    # The retried copy carries the fresh trace in place of what the message had.
    assert carried["traceparent"].split("-")[1] == f"{attempt.context.trace_id:032x}"


async def test_rabbitmq_messages_with_malformed_contexts_are_processed_each_in_one_fresh_trace(
    rabbitmq: RabbitMQ, spans: InMemorySpanExporter
) -> None:
    queue = f"malformed-{uuid.uuid4().hex[:8]}"
    await declare(rabbitmq.amqp_url, queue)
    messages = []
    for case, value in MALFORMED_CONTEXTS.items():
        header = bytearray(value) if isinstance(value, bytes) else value  # AMQP's bytes are a byte array
        headers = {"traceparent": header, "tracestate": header}
        messages.append(aio_pika.Message(b"{}", message_id=case, headers=headers))
    await publish_messages(rabbitmq.amqp_url, queue, messages)
    source = RabbitMQSource(rabbitmq.amqp_url, queue, "", prefetch=8)
    runtime = make_runtime(source, "traced_tasks:fails_first_attempt")
    await run_until(runtime, lambda: len(named(spans, "ack")) == len(MALFORMED_CONTEXTS))
    attempts: dict[str, list[ReadableSpan]] = {}
    for span in named(spans, "process traced_tasks:fails_first_attempt"):
        attempts.setdefault(str((span.attributes or {})["messaging.message.id"]), []).append(span)
    assert sorted(attempts) == sorted(MALFORMED_CONTEXTS)
    for case, (first, second) in attempts.items():
        # Each message: its first attempt starts a trace, its retried copy carries it, the second joins it.
        assert first.parent is None, case
        assert second.context.trace_id == first.context.trace_id, case
        assert parent_id(second) == first.context.span_id, case
        assert (second.attributes or {})["qc.outcome"] == "ack", case
    assert len({first.context.trace_id for first, _ in attempts.values()}) == len(MALFORMED_CONTEXTS)
    assert not named(spans, "dead_letter")
    assert rabbitmq.queue_counts(queue)["messages"] == 0
