"""RabbitMQ: the settings of `spec.source.rabbitmq`, the workers' environment, and the backlog from the
management API: messages_ready + messages_unacknowledged (never ready alone).

Ready-only would read zero while every message sits unacked in a busy worker, and scale the fleet away
under its own work.

At scale the backlog comes from one listing of the vhost's queues per broker, shared by every
QueueConsumer on it (`QueueListings`, one per operator process): 5,000 QueueConsumers on one broker then
cost a few paged listings per polling interval instead of 5,000 requests.
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
from qc_operator.sources.shared import SharedReads

KIND = "rabbitmq"
MANAGEMENT_PORT = 15672  # the management plugin's default, when the URL names none
COUNTS = ("messages_ready", "messages_unacknowledged")
PAGE_SIZE = 500  # the management API's largest page
MAX_PAGES = 200  # 100,000 queues in one vhost; past that a listing is refused with a message
# A listing is shared for at most this long, and a quarter of the reader's polling interval: the counts
# it gives are then that much older than a reading of their own, well inside the reaction target
# (polling interval + 2 s). The management API refreshes its counts every 5 s by default anyway.
MAX_LISTING_AGE_SECONDS = 1.0
LISTING_SHARE_OF_INTERVAL = 0.25

Counts = Mapping[str, Any]  # one queue's entry of a listing: name, messages_ready, messages_unacknowledged
ListingKey = tuple[str, str, tuple[str, str]]  # (management API base URL, vhost, credentials)


def listing_age_seconds(polling_interval_seconds: float) -> float:
    """How old a shared listing may be for a reader polling at this interval."""
    return min(MAX_LISTING_AGE_SECONDS, LISTING_SHARE_OF_INTERVAL * polling_interval_seconds)


def counts_reading(what: str, body: Any) -> BacklogReading:
    """ready + unacked from one queue's answer (or its entry in a listing)."""
    if not isinstance(body, dict):
        raise SourceError(f"{what}: unexpected answer from the management API")
    if any(key not in body for key in COUNTS):
        raise SourceError(f"{what}: the management API has no message counts yet")
    try:
        return BacklogReading(float(body["messages_ready"]) + float(body["messages_unacknowledged"]))
    except (TypeError, ValueError) as error:
        raise SourceError(f"{what}: the message counts are not numbers") from error


async def list_queues(fetch: FetchJson, key: ListingKey) -> dict[str, Counts]:
    """Every queue of the vhost with its counts, page by page: queue name -> its entry."""
    base, vhost, auth = key
    what = f"RabbitMQ queues of vhost {vhost!r}"
    url = f"{base}/api/queues/{urllib.parse.quote(vhost, safe='')}"
    columns = ",".join(("name", *COUNTS))
    queues: dict[str, Counts] = {}
    page, page_count = 1, 1
    while page <= page_count:
        params = {"page": str(page), "page_size": str(PAGE_SIZE), "columns": columns}
        body = await fetch(url, what=what, params=params, basic_auth=auth)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise SourceError(f"{what}: unexpected answer from the management API")
        page_count = int(body.get("page_count") or 1)
        if page_count > MAX_PAGES:
            raise SourceError(f"{what}: more than {MAX_PAGES * PAGE_SIZE} queues, too many to list")
        queues.update((str(q.get("name")), q) for q in body["items"] if isinstance(q, dict))
        page += 1
    return queues


QueueListings = SharedReads[dict[str, Counts]]  # the operator's shared listings, by ListingKey


@dataclass(frozen=True)
class RabbitMQBacklog:
    management_url: str  # http://user:password@host:15672, from a Secret
    queue: str
    vhost: str
    # Shared listings (the operator's), and how old one may be; None: this queue's own request.
    listings: QueueListings | None = None
    max_listing_age_seconds: float = MAX_LISTING_AGE_SECONDS

    def shared(self, listings: QueueListings, polling_interval_seconds: float) -> RabbitMQBacklog:
        """This reader reading from the operator's shared listings."""
        age = listing_age_seconds(polling_interval_seconds)
        return RabbitMQBacklog(self.management_url, self.queue, self.vhost, listings, age)

    async def read(self, fetch: FetchJson) -> BacklogReading:
        what = f"RabbitMQ queue {self.queue!r} in vhost {self.vhost!r}"
        parts = urllib.parse.urlsplit(self.management_url)
        try:
            port = parts.port or MANAGEMENT_PORT
        except ValueError as error:  # a port that is not a number: the Secret's value is wrong
            raise SourceError(f"{what}: the management URL's port is not a number") from error
        auth = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        base = f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"
        if self.listings is not None:
            key: ListingKey = (base, self.vhost, auth)
            queues = await self.listings.get(
                key, lambda: list_queues(fetch, key), self.max_listing_age_seconds
            )
            if self.queue not in queues:
                raise SourceError(f"{what}: not found (not in the vhost's listing)")
            return counts_reading(what, queues[self.queue])
        vhost, queue = urllib.parse.quote(self.vhost, safe=""), urllib.parse.quote(self.queue, safe="")
        return counts_reading(
            what, await fetch(f"{base}/api/queues/{vhost}/{queue}", what=what, basic_auth=auth)
        )


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
