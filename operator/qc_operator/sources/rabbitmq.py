"""RabbitMQ: the settings of `spec.source.rabbitmq`, the workers' environment, and the backlog from the
management API: messages_ready + messages_unacknowledged (never ready alone).

Ready-only would read zero while every message sits unacked in a busy worker, and scale the fleet away
under its own work.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qc_common import worker_env
from qc_operator.errors import SpecError
from qc_operator.sources.base import BacklogReading, FetchJson, GoogleTokenSource, SecretKeyRef, SourceError

KIND = "rabbitmq"
MANAGEMENT_PORT = 15672  # the management plugin's default, when the URL names none


@dataclass(frozen=True)
class RabbitMQBacklog:
    management_url: str  # http://user:password@host:15672, from a Secret
    queue: str
    vhost: str

    async def read(self, fetch: FetchJson) -> BacklogReading:
        what = f"RabbitMQ queue {self.queue!r} in vhost {self.vhost!r}"
        parts = urllib.parse.urlsplit(self.management_url)
        try:
            port = parts.port or MANAGEMENT_PORT
        except ValueError as error:  # a port that is not a number: the Secret's value is wrong
            raise SourceError(f"{what}: the management URL's port is not a number") from error
        auth = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        base = f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"
        vhost, queue = urllib.parse.quote(self.vhost, safe=""), urllib.parse.quote(self.queue, safe="")
        body = await fetch(f"{base}/api/queues/{vhost}/{queue}", what=what, basic_auth=auth)
        if not isinstance(body, dict):
            raise SourceError(f"{what}: unexpected answer from the management API")
        if "messages_ready" not in body or "messages_unacknowledged" not in body:
            raise SourceError(f"{what}: the management API has no message counts yet")
        try:
            return BacklogReading(float(body["messages_ready"]) + float(body["messages_unacknowledged"]))
        except (TypeError, ValueError) as error:
            raise SourceError(f"{what}: the message counts are not numbers") from error


@dataclass(frozen=True)
class RabbitMQSettings:
    queue: str
    vhost: str
    connection: SecretKeyRef  # the workers' amqp:// URL
    management: SecretKeyRef | None  # the operator's management API URL; None with a PromQL backlog
    dead_letter_exchange: str = ""  # "": the worker's default, <queue>.dead-letter
    declare_queue: bool = False  # False: the queue must exist (the workers check it passively)
    queue_arguments: Mapping[str, Any] | None = None  # as declared: DLX, delivery limit, queue type

    kind = KIND
    backlog_kind = KIND

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.management,) if self.management else ()

    def reader(
        self, secrets: Mapping[SecretKeyRef, str], google_tokens: GoogleTokenSource
    ) -> RabbitMQBacklog:
        if self.management is None:
            raise SpecError("a RabbitMQ source needs managementSecretRef (or spec.backlog.prometheus)")
        return RabbitMQBacklog(secrets[self.management], self.queue, self.vhost)

    def worker_secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.connection,)

    def worker_files(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return []

    def worker_environment(self) -> list[dict[str, Any]]:
        connection = {"secretKeyRef": {"name": self.connection.name, "key": self.connection.key}}
        return [
            {"name": worker_env.RABBITMQ_URL, "valueFrom": connection},  # never copied out of the Secret
            {"name": worker_env.RABBITMQ_QUEUE, "value": self.queue},
            {"name": worker_env.RABBITMQ_DEAD_LETTER_EXCHANGE, "value": self.dead_letter_exchange},
            *self._declare_environment(),
        ]

    def _declare_environment(self) -> list[dict[str, Any]]:
        env = [{"name": worker_env.RABBITMQ_DECLARE_QUEUE, "value": "true"}] if self.declare_queue else []
        if self.queue_arguments is not None:
            arguments = json.dumps(dict(self.queue_arguments), sort_keys=True)
            env.append({"name": worker_env.RABBITMQ_QUEUE_ARGUMENTS, "value": arguments})
        return env


def parse(raw: Mapping[str, Any], has_backlog_override: bool) -> RabbitMQSettings:
    """`spec.source.rabbitmq`, schema defaults already applied."""
    connection = SecretKeyRef.parse(raw.get("connectionSecretRef"))
    if connection is None:
        raise SpecError("spec.source.rabbitmq.connectionSecretRef is required")
    management = SecretKeyRef.parse(raw.get("managementSecretRef"))
    if management is None and not has_backlog_override:
        raise SpecError(
            "a RabbitMQ source needs managementSecretRef (or spec.backlog.prometheus) to read the backlog"
        )
    return RabbitMQSettings(
        queue=str(raw["queue"]),
        vhost=str(raw["vhost"]),
        connection=connection,
        management=management,
        dead_letter_exchange=str(raw.get("deadLetterExchange", "")),
        declare_queue=bool(raw["declareQueue"]),
        queue_arguments=dict(raw["queueArguments"]) if raw.get("queueArguments") is not None else None,
    )
