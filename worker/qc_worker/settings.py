"""Worker settings: one frozen dataclass, from `qc-worker` flags whose defaults come from QC_* variables.

The operator configures pods through the environment (names in qc_common.worker_env); people running
`qc-worker` by hand can use the flags. `qc-worker --help` lists every setting with its variable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import typing
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Literal

from qc_common import worker_env

SourceKind = Literal["pubsub", "rabbitmq"]
EVENT_LOOPS = ("uvloop", "asyncio")
T = typing.TypeVar("T")


def run_on_event_loop(event_loop: str, main: Coroutine[typing.Any, typing.Any, T]) -> T:
    """Run `main` to its end on the loop `WorkerSettings.event_loop` names (one of EVENT_LOOPS)."""
    if event_loop == "uvloop":
        import uvloop  # only when chosen: the asyncio choice keeps uvloop out of the process altogether

        return uvloop.run(main)
    return asyncio.run(main)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the flag and the variable."""


@dataclass(frozen=True)
class WorkerSettings:
    task: str
    source: SourceKind
    concurrency: int = 8  # tasks in flight in this pod (the window)
    task_time_limit_seconds: float = 300.0
    max_delivery_attempts: int = 5
    drain_grace_seconds: float = 30.0
    metrics_port: int = 9100
    log_level: str = "INFO"
    # uvloop: the loop's own scheduling in C, a third less CPU in the main process per message; "asyncio"
    # for a task library that needs the standard loop.
    event_loop: str = "uvloop"
    retry_backoff_min_seconds: float = 1.0
    retry_backoff_max_seconds: float = 60.0
    rate_limit_file: str = ""  # holds this pod's share of the fleet's messages/s; unset or missing: none
    max_tasks_per_child: int = 0  # a pool process is replaced after this many tasks (0: never)
    max_memory_per_child_mib: int = 0  # ... or after a task leaving it above this RSS (0: never)
    tracing: bool = False  # OpenTelemetry spans (qc_worker.tracing), configured by the OTEL_* variables
    # Pub/Sub
    pubsub_project: str = ""
    pubsub_subscription: str = ""
    pubsub_dead_letter_topic: str = ""
    lease_seconds: float = 30.0  # each extension pushes the ack deadline this far (10-600)
    max_lease_seconds: float = 3600.0  # a message is never held longer than this
    # RabbitMQ
    rabbitmq_url: str = ""
    rabbitmq_queue: str = ""
    rabbitmq_dead_letter_exchange: str = ""
    rabbitmq_declare_queue: bool = False  # False: the queue must exist, checked passively, used as it is
    rabbitmq_queue_arguments: str = ""  # JSON object: the queue's arguments (declared with them if declaring)
    rabbitmq_ca_file: str = ""  # amqps://: the CA that signs the broker ("": the system's)
    rabbitmq_client_cert_file: str = ""  # amqps://: a client certificate, for a broker that asks for one
    rabbitmq_client_key_file: str = ""
    rabbitmq_server_name: str = ""  # the name the broker's certificate carries ("": the URL's host)
    # Delivered beyond the window, so a freed slot starts at once instead of waiting out the ack's round
    # trip; never started before a slot is free, handed back uncounted on a drain. When a message kills
    # the worker, one waiting here is redelivered counted as a suspect, but suspects then run alone
    # (`sources.rabbitmq`), so a poison message never takes it to the dead letters.
    rabbitmq_prefetch_extra: int = 1

    @property
    def rabbitmq_prefetch(self) -> int:
        return self.concurrency + self.rabbitmq_prefetch_extra

    def queue_arguments(self) -> dict[str, object]:
        value = json.loads(self.rabbitmq_queue_arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value

    def validate(self) -> WorkerSettings:
        problems = []
        if self.concurrency < 1:
            problems.append("--concurrency must be at least 1")
        if self.task_time_limit_seconds <= 0:
            problems.append("--task-time-limit-seconds must be positive")
        if self.rabbitmq_prefetch_extra < 0:
            problems.append("--rabbitmq-prefetch-extra must be 0 (prefetch = the window) or more")
        if self.max_tasks_per_child < 0:
            problems.append("--max-tasks-per-child must be 0 (never) or more")
        if self.max_memory_per_child_mib < 0:
            problems.append("--max-memory-per-child-mib must be 0 (never) or more")
        if self.event_loop not in EVENT_LOOPS:
            problems.append(f"--event-loop must be {' or '.join(EVENT_LOOPS)}, not {self.event_loop!r}")
        if self.max_delivery_attempts < 1:
            problems.append("--max-delivery-attempts must be at least 1")
        if not 1 <= self.lease_seconds <= 600:
            problems.append("--lease-seconds must be within 1-600 (Pub/Sub's ack deadline range)")
        if self.source == "pubsub" and not (self.pubsub_project and self.pubsub_subscription):
            problems.append(
                f"--source pubsub needs {worker_env.PUBSUB_PROJECT} and {worker_env.PUBSUB_SUBSCRIPTION}"
            )
        if self.source == "rabbitmq" and not (self.rabbitmq_url and self.rabbitmq_queue):
            problems.append(
                f"--source rabbitmq needs {worker_env.RABBITMQ_URL} and {worker_env.RABBITMQ_QUEUE}"
            )
        tls_files = self.rabbitmq_ca_file or self.rabbitmq_client_cert_file or self.rabbitmq_server_name
        if self.source == "rabbitmq" and tls_files and not self.rabbitmq_url.startswith("amqps://"):
            problems.append(f"TLS settings are given but {worker_env.RABBITMQ_URL} is not an amqps:// URL")
        if bool(self.rabbitmq_client_cert_file) != bool(self.rabbitmq_client_key_file):
            problems.append("--rabbitmq-client-cert-file and --rabbitmq-client-key-file go together")
        try:
            self.queue_arguments()
        except ValueError as error:
            problems.append(f"--rabbitmq-queue-arguments must be a JSON object ({error})")
        if problems:
            raise SettingsError("; ".join(problems))
        return self


# (WorkerSettings field, environment variable, help). The flag is the field with dashes; its type and its
# default come from the dataclass, so `--help` never repeats a default as a literal.
_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("task", worker_env.TASK, "the task function, 'package.module:function'"),
    ("source", worker_env.SOURCE, "where messages come from: pubsub or rabbitmq"),
    ("concurrency", worker_env.CONCURRENCY, "tasks in flight at once"),
    (
        "task_time_limit_seconds",
        worker_env.TASK_TIME_LIMIT_SECONDS,
        "a task running longer is killed and its message retried",
    ),
    (
        "max_delivery_attempts",
        worker_env.MAX_DELIVERY_ATTEMPTS,
        "attempts before a failing message is dead-lettered",
    ),
    (
        "drain_grace_seconds",
        worker_env.DRAIN_GRACE_SECONDS,
        "on SIGTERM, how long in-flight tasks may finish",
    ),
    ("metrics_port", worker_env.METRICS_PORT, "port of /metrics, /healthz, /readyz"),
    ("log_level", worker_env.LOG_LEVEL, "DEBUG, INFO, WARNING or ERROR"),
    (
        "event_loop",
        worker_env.EVENT_LOOP,
        "uvloop, or asyncio for async tasks whose libraries need the standard event loop",
    ),
    ("retry_backoff_min_seconds", worker_env.RETRY_BACKOFF_MIN_SECONDS, "first retry delay"),
    ("retry_backoff_max_seconds", worker_env.RETRY_BACKOFF_MAX_SECONDS, "longest retry delay"),
    (
        "rate_limit_file",
        worker_env.RATE_LIMIT_FILE,
        "a file holding this worker's limit in messages/s, re-read when it changes (the operator mounts its "
        "share of spec.worker.maxMessagesPerSecond there); missing or empty: no limit",
    ),
    (
        "max_tasks_per_child",
        worker_env.MAX_TASKS_PER_CHILD,
        "a process task's pool process is replaced after this many tasks (0: never)",
    ),
    (
        "max_memory_per_child_mib",
        worker_env.MAX_MEMORY_PER_CHILD_MIB,
        "... or after a task that leaves it above this resident memory in MiB (0: never)",
    ),
    (
        "tracing",
        worker_env.TRACING,
        "OpenTelemetry spans per task attempt, in the publisher's trace (needs the 'tracing' extra; "
        "OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME... configure them)",
    ),
    ("pubsub_project", worker_env.PUBSUB_PROJECT, "Google Cloud project of the subscription"),
    ("pubsub_subscription", worker_env.PUBSUB_SUBSCRIPTION, "Pub/Sub subscription id"),
    (
        "pubsub_dead_letter_topic",
        worker_env.PUBSUB_DEAD_LETTER_TOPIC,
        "topic id for dead letters (unset: failing messages are retried forever, never dropped)",
    ),
    ("lease_seconds", worker_env.LEASE_SECONDS, "ack-deadline extension per renewal, 1-600"),
    ("max_lease_seconds", worker_env.MAX_LEASE_SECONDS, "longest a message is held"),
    ("rabbitmq_url", worker_env.RABBITMQ_URL, "amqp:// URL with credentials (use a Secret)"),
    ("rabbitmq_queue", worker_env.RABBITMQ_QUEUE, "durable queue to consume"),
    (
        "rabbitmq_dead_letter_exchange",
        worker_env.RABBITMQ_DEAD_LETTER_EXCHANGE,
        "exchange for dead letters (unset: the queue's x-dead-letter-exchange argument, else "
        "'<queue>.dead-letter', declared with a '<queue>.dead' queue if missing)",
    ),
    (
        "rabbitmq_declare_queue",
        worker_env.RABBITMQ_DECLARE_QUEUE,
        "true: declare the queue (durable) with --rabbitmq-queue-arguments; false: it must exist and is "
        "used as declared",
    ),
    (
        "rabbitmq_queue_arguments",
        worker_env.RABBITMQ_QUEUE_ARGUMENTS,
        'the queue\'s arguments as a JSON object, e.g. {"x-queue-type": "quorum", "x-delivery-limit": 5}; '
        "its x-dead-letter-exchange / -routing-key say where dead letters go",
    ),
    (
        "rabbitmq_prefetch_extra",
        worker_env.RABBITMQ_PREFETCH_EXTRA,
        "messages prefetched beyond the concurrency so a free slot starts at once (0: prefetch = the "
        "concurrency, each freed slot waits for its ack's and the next delivery's round trip)",
    ),
    ("rabbitmq_ca_file", worker_env.RABBITMQ_CA_FILE, "amqps://: CA certificate (PEM) of the broker"),
    ("rabbitmq_client_cert_file", worker_env.RABBITMQ_CLIENT_CERT_FILE, "amqps://: client certificate (PEM)"),
    ("rabbitmq_client_key_file", worker_env.RABBITMQ_CLIENT_KEY_FILE, "amqps://: client key (PEM)"),
    (
        "rabbitmq_server_name",
        worker_env.RABBITMQ_SERVER_NAME,
        "amqps://: the name the broker's certificate must carry (unset: the URL's host)",
    ),
)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def default_text(value: object) -> str:
    """A default as `--help` shows it: 300.0 as "300", 0.5 as "0.5"."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _typed(kind: object, text: str) -> object:
    """An environment default, parsed as its flag would be (argparse converts only string defaults)."""
    return parse_bool(text) if kind is bool else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qc-worker",
        description="Consume a queue with N tasks in flight: ack on success, retry and dead-letter failures, "
        "drain on SIGTERM, export Prometheus metrics. Every flag defaults to its environment variable.",
    )
    fields = {field.name: field for field in dataclasses.fields(WorkerSettings)}
    hints = typing.get_type_hints(WorkerSettings)
    for name, variable, text in _FLAGS:
        default = fields[name].default
        shown = (
            "" if default is dataclasses.MISSING or default == "" else f" (default {default_text(default)})"
        )
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=parse_bool if hints[name] is bool else hints[name] if hints[name] in (int, float) else str,
            default=None if os.environ.get(variable) is None else _typed(hints[name], os.environ[variable]),
            help=f"{text}{shown} [${variable}]",
        )
    return parser


def from_args(argv: list[str] | None = None) -> WorkerSettings:
    namespace = build_parser().parse_args(argv)
    values = {key: value for key, value in vars(namespace).items() if value is not None}
    for required in ("task", "source"):
        if not values.get(required):
            raise SettingsError(f"--{required} is required (or set its environment variable)")
    if values["source"] not in ("pubsub", "rabbitmq"):
        raise SettingsError(f"--source must be pubsub or rabbitmq, not {values['source']!r}")
    try:
        return WorkerSettings(**values).validate()
    except TypeError as error:
        raise SettingsError(str(error)) from error
