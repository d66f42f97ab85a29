"""What every backlog source returns, and the one error it raises (never a zero in place of an error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

REQUEST_TIMEOUT_SECONDS = 10.0


class SourceError(Exception):
    """The backlog could not be read; the message says why, for the SourceError condition and the Event."""


@dataclass(frozen=True)
class BacklogReading:
    messages: float
    oldest_message_age_seconds: float | None = None


class BacklogSource(Protocol):
    @property
    def kind(self) -> str:
        """The `source` label of the operator's metrics: rabbitmq | prometheus | pubsub."""
        ...

    async def read(self, session: aiohttp.ClientSession) -> BacklogReading: ...


async def get_json(session: aiohttp.ClientSession, url: str, *, what: str, **kwargs: Any) -> Any:
    """GET and decode JSON; any failure becomes a SourceError naming `what` (credentials never included)."""
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS), **kwargs
        ) as reply:
            if reply.status == 404:
                raise SourceError(f"{what}: not found (HTTP 404)")
            if reply.status in (401, 403):
                raise SourceError(f"{what}: credentials refused (HTTP {reply.status})")
            if reply.status >= 400:
                raise SourceError(f"{what}: HTTP {reply.status}: {(await reply.text())[:200]}")
            return await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise SourceError(f"{what}: {type(error).__name__}: {error}") from error
