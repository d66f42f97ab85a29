"""What every backlog source is made of: typed settings parsed from the spec, a reader, one reading.

A source module (one per place a backlog can be read, as KEDA keeps one file per scaler) holds its
settings dataclass, the function parsing them from the spec, and its reader. Readers get their HTTP
transport passed in (`FetchJson`, implemented in `qc_operator.http`), so everything here and in the source
modules is plain code on plain data, testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qc_operator.errors import SourceError

__all__ = [
    "BacklogReader",
    "BacklogReading",
    "BacklogSettings",
    "ClientTls",
    "FetchJson",
    "GoogleTokenSource",
    "SecretKeyRef",
    "SourceError",
]


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Secret in the QueueConsumer's namespace."""

    name: str
    key: str

    @staticmethod
    def parse(raw: Mapping[str, Any] | None) -> SecretKeyRef | None:
        return SecretKeyRef(str(raw["name"]), str(raw["key"])) if raw else None


@dataclass(frozen=True)
class BacklogReading:
    messages: float
    oldest_message_age_seconds: float | None = None


@dataclass(frozen=True)
class ClientTls:
    """What an `https://` read trusts and shows, as read from Secrets (PEM text): the CA that signs the
    server (None: the system's), the client certificate and key (None: none), the name the server's
    certificate must carry (None: the URL's host)."""

    ca_pem: str | None = None
    client_cert_pem: str | None = None
    client_key_pem: str | None = field(default=None, repr=False)
    server_name: str | None = None


class FetchJson(Protocol):
    """GET `url` and decode its JSON (over TLS as `tls` says); any failure raises SourceError naming
    `what`."""

    async def __call__(
        self,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        tls: ClientTls | None = None,
    ) -> Any: ...


class GoogleTokenSource(Protocol):
    """An OAuth2 access token for Google APIs from a service-account key (None: Application Default
    Credentials, i.e. Workload Identity on GKE), refreshed before it expires; SourceError if none."""

    async def __call__(self, service_account_key_json: str | None) -> str: ...


class BacklogReader(Protocol):
    async def read(self, fetch: FetchJson) -> BacklogReading:
        """The backlog now; raises SourceError (never a zero in place of an error)."""
        ...


class BacklogSettings(Protocol):
    """Where and how a QueueConsumer's backlog is read, as parsed from its spec."""

    @property
    def backlog_kind(self) -> str:
        """The `source` label of the operator's metrics: rabbitmq | pubsub | prometheus."""
        ...

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        """The Secret keys the reader needs, read by the caller and passed to `reader`."""
        ...

    def reader(self, secrets: Mapping[SecretKeyRef, str], google_tokens: GoogleTokenSource) -> BacklogReader:
        """The reader, given the values of `secret_refs()` and where Google tokens come from."""
        ...


class MessageSourceSettings(BacklogSettings, Protocol):
    """A broker the workers consume from; it can also read its own backlog."""

    @property
    def kind(self) -> str:
        """The value of spec.source's key and of the workers' QC_SOURCE: pubsub | rabbitmq."""
        ...

    def worker_environment(self) -> list[dict[str, Any]]:
        """The worker container's environment entries for this source (Secrets by reference only)."""
        ...

    def worker_secret_refs(self) -> tuple[SecretKeyRef, ...]:
        """Secret keys the worker pods need: checked before the Deployment is created."""
        ...

    def worker_files(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(volume, volumeMount) pairs for the worker container: Secrets mounted as files."""
        ...


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass(frozen=True)
class GoogleAuth:
    """How a reader of a Google API authenticates: a fixed bearer token from a Secret (short-lived: the
    user refreshes it), a service-account key from a Secret, or neither: Application Default Credentials."""

    bearer_token: str | None = None
    service_account_key_json: str | None = None
    anonymous: bool = False  # an emulator or a stand-in: no credentials at all

    async def headers(self, google_tokens: GoogleTokenSource) -> dict[str, str]:
        if self.anonymous:
            return {}
        if self.bearer_token:
            return bearer(self.bearer_token)
        return bearer(await google_tokens(self.service_account_key_json))


GOOGLE_KEY_MOUNT_DIRECTORY = "/var/run/secrets/queueconsumer.io/google"
GOOGLE_KEY_FILE = "key.json"


def google_key_file(ref: SecretKeyRef) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The service-account key Secret as a file for Google's client libraries in the worker container."""
    volume = {
        "name": "google-service-account-key",
        "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": GOOGLE_KEY_FILE}]},
    }
    mount = {"name": "google-service-account-key", "mountPath": GOOGLE_KEY_MOUNT_DIRECTORY, "readOnly": True}
    return [(volume, mount)]
