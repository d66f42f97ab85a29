"""RabbitMQ: the settings of `spec.source.rabbitmq`, the workers' environment, and the backlog from the
management API: messages_ready + messages_unacknowledged (never ready alone).

Ready-only would read zero while every message sits unacked in a busy worker, and scale the fleet away
under its own work.

`tls` (spec.source.rabbitmq.tls): the CA that signs the broker and an optional client certificate, from
Secrets. The operator reads them with its other Secrets and passes them to its `https://` reads; the
workers get them as read-only files (a Secret volume) and their paths in QC_RABBITMQ_* variables.

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
from qc_operator.errors import CountsPending, SpecError
from qc_operator.sources.base import (
    BacklogReading,
    ClientTls,
    FetchJson,
    GoogleTokenSource,
    SecretKeyRef,
    SourceError,
)
from qc_operator.sources.shared import SharedReads

KIND = "rabbitmq"
MANAGEMENT_PORT = 15672  # the management plugin's default, when the URL names none
TLS_MOUNT_DIRECTORY = "/var/run/secrets/queueconsumer.io/rabbitmq"
SECRET_FILE_MODE = 0o440  # read-only, for the worker's user through the pod's fsGroup
COUNTS = ("messages_ready", "messages_unacknowledged")
PAGE_SIZE = 500  # the management API's largest page
MAX_PAGES = 200  # 100,000 queues in one vhost; past that a listing is refused with a message
# A listing is shared for at most this long, and a quarter of the reader's polling interval: the counts
# it gives are then that much older than a reading of their own, well inside the reaction target
# (polling interval + 2 s). The management API refreshes its counts every 5 s by default anyway.
MAX_LISTING_AGE_SECONDS = 1.0
LISTING_SHARE_OF_INTERVAL = 0.25

Counts = Mapping[str, Any]  # one queue's entry of a listing: name, messages_ready, messages_unacknowledged
# (management API base URL, vhost, credentials, TLS material): who may share a listing
ListingKey = tuple[str, str, tuple[str, str], ClientTls | None]
QueueListings = SharedReads[dict[str, Counts]]  # the operator's shared listings, by ListingKey


def listing_age_seconds(polling_interval_seconds: float) -> float:
    """How old a shared listing may be for a reader polling at this interval."""
    return min(MAX_LISTING_AGE_SECONDS, LISTING_SHARE_OF_INTERVAL * polling_interval_seconds)


def counts_reading(what: str, body: Any) -> BacklogReading:
    """ready + unacked from one queue's answer (or its entry in a listing)."""
    if not isinstance(body, dict):
        raise SourceError(f"{what}: unexpected answer from the management API")
    if any(key not in body for key in COUNTS):
        raise CountsPending(f"{what}: the management API has no message counts yet")
    try:
        return BacklogReading(float(body["messages_ready"]) + float(body["messages_unacknowledged"]))
    except (TypeError, ValueError) as error:
        raise SourceError(f"{what}: the message counts are not numbers") from error


async def list_queues(fetch: FetchJson, key: ListingKey) -> dict[str, Counts]:
    """Every queue of the vhost with its counts, page by page: queue name -> its entry."""
    base, vhost, auth, tls = key
    what = f"RabbitMQ queues of vhost {vhost!r}"
    url = f"{base}/api/queues/{urllib.parse.quote(vhost, safe='')}"
    columns = ",".join(("name", *COUNTS))
    queues: dict[str, Counts] = {}
    page, page_count = 1, 1
    while page <= page_count:
        params = {"page": str(page), "page_size": str(PAGE_SIZE), "columns": columns}
        body = await fetch(url, what=what, params=params, basic_auth=auth, tls=tls)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise SourceError(f"{what}: unexpected answer from the management API")
        page_count = int(body.get("page_count") or 1)
        if page_count > MAX_PAGES:
            raise SourceError(f"{what}: more than {MAX_PAGES * PAGE_SIZE} queues, too many to list")
        queues.update((str(q.get("name")), q) for q in body["items"] if isinstance(q, dict))
        page += 1
    return queues


@dataclass(frozen=True)
class RabbitMQTls:
    """spec.source.rabbitmq.tls: where the CA and the client certificate are (each optional)."""

    ca: SecretKeyRef | None = None
    client_cert: SecretKeyRef | None = None
    client_key: SecretKeyRef | None = None
    server_name: str | None = None

    def refs(self) -> tuple[SecretKeyRef, ...]:
        return tuple(ref for ref in (self.ca, self.client_cert, self.client_key) if ref is not None)

    def material(self, secrets: Mapping[SecretKeyRef, str]) -> ClientTls:
        return ClientTls(
            ca_pem=secrets[self.ca] if self.ca else None,
            client_cert_pem=secrets[self.client_cert] if self.client_cert else None,
            client_key_pem=secrets[self.client_key] if self.client_key else None,
            server_name=self.server_name,
        )

    def worker_files(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        files = []
        if self.ca:
            files.append(_secret_file("rabbitmq-tls-ca", "ca", [(self.ca.key, "ca.crt")], self.ca.name))
        if self.client_cert and self.client_key:
            items = [(self.client_cert.key, "tls.crt"), (self.client_key.key, "tls.key")]
            files.append(_secret_file("rabbitmq-tls-client", "client", items, self.client_cert.name))
        return files

    def worker_environment(self) -> list[dict[str, Any]]:
        env = []
        if self.ca:
            env.append({"name": worker_env.RABBITMQ_CA_FILE, "value": f"{TLS_MOUNT_DIRECTORY}/ca/ca.crt"})
        if self.client_cert and self.client_key:
            client = f"{TLS_MOUNT_DIRECTORY}/client"
            env.append({"name": worker_env.RABBITMQ_CLIENT_CERT_FILE, "value": f"{client}/tls.crt"})
            env.append({"name": worker_env.RABBITMQ_CLIENT_KEY_FILE, "value": f"{client}/tls.key"})
        if self.server_name:
            env.append({"name": worker_env.RABBITMQ_SERVER_NAME, "value": self.server_name})
        return env

    @staticmethod
    def parse(raw: Mapping[str, Any] | None) -> RabbitMQTls | None:
        if not raw:
            return None
        ca, client = raw.get("caSecretRef"), raw.get("clientCertSecretRef")
        return RabbitMQTls(
            ca=SecretKeyRef.parse(ca),
            client_cert=SecretKeyRef(str(client["name"]), str(client["certKey"])) if client else None,
            client_key=SecretKeyRef(str(client["name"]), str(client["keyKey"])) if client else None,
            server_name=str(raw["serverName"]) if raw.get("serverName") else None,
        )


def _secret_file(
    volume: str, directory: str, items: list[tuple[str, str]], secret: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    source = {
        "secretName": secret,
        "defaultMode": SECRET_FILE_MODE,
        "items": [{"key": key, "path": path} for key, path in items],
    }
    mount = {"name": volume, "mountPath": f"{TLS_MOUNT_DIRECTORY}/{directory}", "readOnly": True}
    return {"name": volume, "secret": source}, mount


@dataclass(frozen=True)
class RabbitMQBacklog:
    management_url: str  # http://user:password@host:15672, from a Secret
    queue: str
    vhost: str
    tls: ClientTls | None = None  # the CA / client certificate for an https:// management URL
    # Shared listings (the operator's), and how old one may be; None: this queue's own request.
    listings: QueueListings | None = None
    max_listing_age_seconds: float = MAX_LISTING_AGE_SECONDS

    def shared(self, listings: QueueListings, polling_interval_seconds: float) -> RabbitMQBacklog:
        """This reader reading from the operator's shared listings."""
        age = listing_age_seconds(polling_interval_seconds)
        return RabbitMQBacklog(self.management_url, self.queue, self.vhost, self.tls, listings, age)

    async def read(self, fetch: FetchJson) -> BacklogReading:
        what = f"RabbitMQ queue {self.queue!r} in vhost {self.vhost!r}"
        parts = urllib.parse.urlsplit(self.management_url)
        try:
            port = parts.port or MANAGEMENT_PORT
        except ValueError as error:  # a port that is not a number: the Secret's value is wrong
            raise SourceError(f"{what}: the management URL's port is not a number") from error
        auth = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        if self.tls is not None and parts.scheme != "https":
            raise SourceError(
                f"{what}: spec.source.rabbitmq.tls is set but the management URL is not https://"
            )
        base = f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"
        if self.listings is not None:
            key: ListingKey = (base, self.vhost, auth, self.tls)
            queues = await self.listings.get(
                key, lambda: list_queues(fetch, key), self.max_listing_age_seconds
            )
            if self.queue not in queues:
                raise SourceError(f"{what}: not found (not in the vhost's listing)")
            return counts_reading(what, queues[self.queue])
        vhost, queue = urllib.parse.quote(self.vhost, safe=""), urllib.parse.quote(self.queue, safe="")
        body = await fetch(f"{base}/api/queues/{vhost}/{queue}", what=what, basic_auth=auth, tls=self.tls)
        return counts_reading(what, body)


@dataclass(frozen=True)
class RabbitMQSettings:
    queue: str
    vhost: str
    connection: SecretKeyRef  # the workers' amqp:// URL
    management: SecretKeyRef | None  # the operator's management API URL; None with a PromQL backlog
    dead_letter_exchange: str = ""  # "": the worker's default, <queue>.dead-letter
    declare_queue: bool = False  # False: the queue must exist (the workers check it passively)
    queue_arguments: Mapping[str, Any] | None = None  # as declared: DLX, delivery limit, queue type
    tls: RabbitMQTls | None = None  # None: the URLs' schemes alone say (amqps:// / https:// on system CAs)

    kind = KIND
    backlog_kind = KIND

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        if self.management is None:
            return ()
        return (self.management, *(self.tls.refs() if self.tls else ()))

    def reader(
        self, secrets: Mapping[SecretKeyRef, str], google_tokens: GoogleTokenSource
    ) -> RabbitMQBacklog:
        if self.management is None:
            raise SpecError("a RabbitMQ source needs managementSecretRef (or spec.backlog.prometheus)")
        tls = self.tls.material(secrets) if self.tls else None
        return RabbitMQBacklog(secrets[self.management], self.queue, self.vhost, tls)

    def worker_secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.connection, *(self.tls.refs() if self.tls else ()))

    def worker_files(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return self.tls.worker_files() if self.tls else []

    def worker_environment(self) -> list[dict[str, Any]]:
        connection = {"secretKeyRef": {"name": self.connection.name, "key": self.connection.key}}
        return [
            {"name": worker_env.RABBITMQ_URL, "valueFrom": connection},  # never copied out of the Secret
            {"name": worker_env.RABBITMQ_QUEUE, "value": self.queue},
            {"name": worker_env.RABBITMQ_DEAD_LETTER_EXCHANGE, "value": self.dead_letter_exchange},
            *self._declare_environment(),
            *(self.tls.worker_environment() if self.tls else []),
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
        tls=RabbitMQTls.parse(raw.get("tls")),
    )
