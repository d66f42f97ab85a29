"""Optional OpenTelemetry traces: a span per task attempt, in the publisher's trace, and one per settlement.

Invoked from `qc_worker.runtime` (hooks around a task and its settlement), `qc_worker.__main__` (which
builds it from `--tracing` / QC_TRACING) and the sources (what a republished copy carries). Off by
default; the opentelemetry packages are imported only when it is on, so the worker runs without them.

Where a trace comes from: the message's W3C `traceparent` / `tracestate` (RabbitMQ headers, Pub/Sub
attributes), else `googclient_traceparent` / `googclient_tracestate`, the attributes Google's Pub/Sub
clients write when their publisher has OpenTelemetry on. The propagator is the global one
(OTEL_PROPAGATORS; W3C trace context and baggage by default). A context that cannot be read (garbage,
longer than a context can be, not text: a broker's header may be bytes, a number or a list) is no
context: the message is processed as usual in a fresh trace, which its republished copies carry.

The spans: `process <task>` (kind CONSUMER) per attempt, a child of the publisher's span, with
`qc.delivery_attempt`, `qc.outcome` (ack, retry, dead_letter, release) and on failure `qc.failure_reason`
and an ERROR status; under it one span for its settlement (`ack`, `retry`, `dead_letter`, `release`),
so the ack's own round trip shows. An attempt span ends when its message is settled.

How a trace goes on: a retry or a dead letter keeps the message's own context (the sources keep headers
and attributes whole), so every attempt of a message sits in its publisher's trace. A message that came
without one gets its first attempt's context in the copies we republish (`carried`: RabbitMQ retries, dead
letters on both sources), so its later attempts join that trace. A Pub/Sub retry is the same message
handed back (its deadline is the delay) and cannot change: there such a message starts a trace per attempt.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qc_worker.messages import Delivery, Message

if TYPE_CHECKING:  # only for the type checker: at run time opentelemetry is imported when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
GOOGLE_PREFIX = "googclient_"  # google-cloud-pubsub's prefix for the context attributes it writes
INSTRUMENTATION_NAME = "qc_worker"
# W3C's limit for tracestate (a traceparent is 55): a longer value is not read as a context at all.
MAX_CONTEXT_VALUE_CHARS = 512
# The headers / attributes to add to the copy being republished in the current settlement (see carried()).
_CARRIED: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "qc_worker_carried", default=MappingProxyType({})
)


_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable: no allocation per message


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but cannot run; the message says what to install or set."""


def carried() -> dict[str, str]:
    """Trace context headers a source adds to the copy it republishes now (a retry, a dead letter): empty
    unless tracing is on and the message came without a context of its own."""
    return dict(_CARRIED.get())


class Tracing:
    """Tracing off: every hook does nothing (and nothing of OpenTelemetry is imported)."""

    def begin(self, deliveries: list[Delivery], task_name: str, source_name: str) -> None:
        """An attempt of each of `deliveries` starts now."""

    def running(self, deliveries: list[Delivery]) -> contextlib.AbstractContextManager[None]:
        """Around the task: an `async def` task for one message runs with its attempt span current."""
        return _NOTHING

    def failed(self, deliveries: list[Delivery], reason: str, detail: str) -> None:
        """The attempt ended in a failure (`runtime.failure`'s reason and detail)."""

    def settling(self, delivery: Delivery, outcome: str) -> contextlib.AbstractContextManager[None]:
        """Around the settlement that ends the attempt: ack, retry, dead_letter or release."""
        return _NOTHING


def _context_getter() -> Any:
    """A propagator getter reading a context key from a message's attributes, or Google's prefixed copy."""
    from opentelemetry.propagators import textmap

    class Getter(textmap.Getter[Mapping[str, str]]):
        def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
            for name in (key, GOOGLE_PREFIX + key):
                value = carrier.get(name)
                # Only text of a context's size: the propagators assume a str and would raise on the rest.
                if isinstance(value, str) and len(value) <= MAX_CONTEXT_VALUE_CHARS:
                    return [value]
            return None

        def keys(self, carrier: Mapping[str, Any]) -> list[str]:
            return [str(key).removeprefix(GOOGLE_PREFIX) for key in carrier]

    return Getter()


class OpenTelemetryTracing(Tracing):
    """Spans through an SDK `TracerProvider` (the process's, or a test's with an in-memory exporter)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace

        self._context = context
        self._trace = trace
        self._propagate = propagate
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self._getter = _context_getter()

    def begin(self, deliveries: list[Delivery], task_name: str, source_name: str) -> None:
        for delivery in deliveries:
            message = delivery.message
            parent = self._parent(message)
            delivery.span = self._tracer.start_span(
                f"process {task_name}",
                context=parent,
                kind=self._trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": source_name,
                    "messaging.operation.type": "process",
                    "messaging.message.id": message.message_id,
                    "qc.task": task_name,
                    "qc.delivery_attempt": message.delivery_attempt,
                },
            )

    def _parent(self, message: Message) -> Any:
        """The context `message` carries; an empty one (a fresh trace) if it has none or an unreadable one."""
        fresh = self._context.Context()  # not the current one: a message's trace is its own
        try:
            return self._propagate.extract(message.attributes, context=fresh, getter=self._getter)
        except Exception as error:  # a propagator OTEL_PROPAGATORS names may still choke on a value
            log.debug("the message's trace context cannot be read, starting a fresh trace: %s", error)
            return fresh

    def has_context(self, message: Message) -> bool:
        """Whether `message` carries a context its attempts can join (a malformed one is none)."""
        parent = self._trace.get_current_span(self._parent(message)).get_span_context()
        return bool(parent.is_valid)

    def running(self, deliveries: list[Delivery]) -> contextlib.AbstractContextManager[None]:
        if len(deliveries) != 1 or deliveries[0].span is None:  # a batch has no one parent
            return _NOTHING
        return self._trace.use_span(deliveries[0].span, end_on_exit=False)  # type: ignore[return-value]

    def failed(self, deliveries: list[Delivery], reason: str, detail: str) -> None:
        for delivery in deliveries:
            if delivery.span is not None:
                delivery.span.set_attribute("qc.failure_reason", reason)
                delivery.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, detail))

    @contextlib.contextmanager
    def settling(self, delivery: Delivery, outcome: str) -> Iterator[None]:
        span = delivery.span
        if span is None:  # a message released before its task started: no attempt to end
            yield
            return
        context = self._trace.set_span_in_context(span)
        token = _CARRIED.set(self._context_to_carry(delivery.message, context))
        try:
            with self._tracer.start_as_current_span(outcome, context=context):
                yield
        except BaseException as error:
            # A dead letter that failed is followed by a retry of the same attempt: its span goes on.
            if outcome != "dead_letter" or not isinstance(error, Exception):
                span.set_attribute("qc.outcome", outcome)
                span.set_status(
                    self._trace.Status(self._trace.StatusCode.ERROR, f"{outcome} failed: {error}")
                )
                self._end(delivery)
            raise
        else:
            span.set_attribute("qc.outcome", outcome)
            self._end(delivery)
        finally:
            _CARRIED.reset(token)

    def _context_to_carry(self, message: Message, context: Any) -> dict[str, str]:
        if self.has_context(message):
            return {}  # kept as it came: later attempts stay children of the publisher's span
        headers: dict[str, str] = {}
        self._propagate.inject(headers, context=context)
        return headers

    @staticmethod
    def _end(delivery: Delivery) -> None:
        span, delivery.span = delivery.span, None
        span.end()


def exporters_from_environment(environment: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (as the SDK's auto-configuration reads it; default otlp).
    OTLP needs its own package; without it spans are dropped, with a warning that says what to install."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    exporters: list[SpanExporter] = []
    for name in filter(None, (n.strip() for n in environment.get("OTEL_TRACES_EXPORTER", "otlp").split(","))):
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporter = _otlp_exporter(environment)
            if exporter is not None:
                exporters.append(exporter)
        else:
            raise TracingUnavailable(
                f"OTEL_TRACES_EXPORTER={name!r}: the worker knows otlp, console and none"
            )
    return exporters


def _otlp_exporter(environment: Mapping[str, str]) -> SpanExporter | None:
    protocol = environment.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environment.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    package = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{package}.trace_exporter")
    except ImportError:
        log.warning(
            "tracing is on but spans are not exported: install opentelemetry-exporter-otlp-proto-%s "
            "(or set OTEL_TRACES_EXPORTER=console, or run under opentelemetry-instrument)",
            package,
        )
        return None
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def configure(enabled: bool, environment: Mapping[str, str] | None = None) -> Tracing:
    """The worker's tracing: off, or spans through the process's tracer provider. One configured already
    (`opentelemetry-instrument qc-worker`) is used as it is; otherwise an SDK provider is made, reading the
    OTEL_* variables (service name, resource, sampler) and exporting as OTEL_TRACES_EXPORTER says."""
    if not enabled:
        return Tracing()
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise TracingUnavailable(
            "tracing needs opentelemetry-api and opentelemetry-sdk: "
            "pip install 'queue-consumer-operator[tracing]'"
        ) from error
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()  # flushed at exit: the SDK registers its own shutdown
        for exporter in exporters_from_environment(os.environ if environment is None else environment):
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    return OpenTelemetryTracing(provider)
