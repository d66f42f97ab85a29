"""What every backlog source is made of: typed settings parsed from the spec, a reader, one reading.

A source module (one per place a backlog can be read, as KEDA keeps one file per scaler) holds its
settings dataclass, the function parsing them from the spec, and its reader. Readers get their HTTP
transport passed in (`FetchJson`, implemented in `qc_operator.http`), so everything here and in the source
modules is plain code on plain data, testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from qc_operator.errors import SourceError

__all__ = ["BacklogReader", "BacklogReading", "BacklogSettings", "FetchJson", "SecretKeyRef", "SourceError"]


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


class FetchJson(Protocol):
    """GET `url` and decode its JSON; any failure raises SourceError naming `what`."""

    async def __call__(
        self,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> Any: ...


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

    def reader(self, secrets: Mapping[SecretKeyRef, str]) -> BacklogReader: ...


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


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
