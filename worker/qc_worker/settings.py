"""Worker settings: one frozen dataclass, from `qc-worker` flags whose defaults come from QC_* variables.

The operator configures pods through the environment (names in qc_common.worker_env); people running
`qc-worker` by hand can use the flags. `qc-worker --help` lists every setting with its variable.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Literal

from qc_common import worker_env

SourceKind = Literal["pubsub", "rabbitmq"]


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
    retry_backoff_min_seconds: float = 1.0
    retry_backoff_max_seconds: float = 60.0
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

    def validate(self) -> WorkerSettings:
        problems = []
        if self.concurrency < 1:
            problems.append("--concurrency must be at least 1")
        if self.task_time_limit_seconds <= 0:
            problems.append("--task-time-limit-seconds must be positive")
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
        if problems:
            raise SettingsError("; ".join(problems))
        return self


# (flag, environment variable, type, help); the dataclass field is the flag without dashes.
_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--task", worker_env.TASK, str, "the task function, 'package.module:function'"),
    ("--source", worker_env.SOURCE, str, "where messages come from: pubsub or rabbitmq"),
    ("--concurrency", worker_env.CONCURRENCY, int, "tasks in flight at once (default 8)"),
    ("--task-time-limit-seconds", worker_env.TASK_TIME_LIMIT_SECONDS, float,
     "a task running longer is killed and its message retried (default 300)"),
    ("--max-delivery-attempts", worker_env.MAX_DELIVERY_ATTEMPTS, int,
     "attempts before a failing message is dead-lettered (default 5)"),
    ("--drain-grace-seconds", worker_env.DRAIN_GRACE_SECONDS, float,
     "on SIGTERM, how long in-flight tasks may finish (default 30)"),
    ("--metrics-port", worker_env.METRICS_PORT, int, "port of /metrics, /healthz, /readyz (default 9100)"),
    ("--log-level", worker_env.LOG_LEVEL, str, "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    ("--retry-backoff-min-seconds", "QC_RETRY_BACKOFF_MIN_SECONDS", float, "first retry delay (default 1)"),
    ("--retry-backoff-max-seconds", "QC_RETRY_BACKOFF_MAX_SECONDS", float, "longest retry delay (def. 60)"),
    ("--pubsub-project", worker_env.PUBSUB_PROJECT, str, "Google Cloud project of the subscription"),
    ("--pubsub-subscription", worker_env.PUBSUB_SUBSCRIPTION, str, "Pub/Sub subscription id"),
    ("--pubsub-dead-letter-topic", worker_env.PUBSUB_DEAD_LETTER_TOPIC, str,
     "topic id for dead letters (unset: failing messages are retried forever, never dropped)"),
    ("--lease-seconds", "QC_LEASE_SECONDS", float, "ack-deadline extension per renewal, 1-600 (default 30)"),
    ("--max-lease-seconds", "QC_MAX_LEASE_SECONDS", float, "longest a message is held (default 3600)"),
    ("--rabbitmq-url", worker_env.RABBITMQ_URL, str, "amqp:// URL with credentials (use a Secret)"),
    ("--rabbitmq-queue", worker_env.RABBITMQ_QUEUE, str, "durable queue to consume"),
    ("--rabbitmq-dead-letter-exchange", worker_env.RABBITMQ_DEAD_LETTER_EXCHANGE, str,
     "exchange for dead letters (default '<queue>.dead-letter', declared with a '<queue>.dead' queue)"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qc-worker",
        description="Consume a queue with N tasks in flight: ack on success, retry and dead-letter failures, "
        "drain on SIGTERM, export Prometheus metrics. Every flag defaults to its environment variable.",
    )
    for flag, variable, kind, text in _FLAGS:
        parser.add_argument(flag, type=kind, default=os.environ.get(variable), help=f"{text} [${variable}]")
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
