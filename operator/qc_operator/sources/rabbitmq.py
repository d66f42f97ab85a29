"""RabbitMQ's management API: backlog = messages_ready + messages_unacknowledged (never ready alone).

Ready-only would read zero while every message sits unacked in a busy worker, and scale the fleet away
under its own work.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import aiohttp

from qc_operator.sources.base import BacklogReading, SourceError, get_json


@dataclass(frozen=True)
class RabbitMQBacklog:
    management_url: str  # http://user:password@host:15672, from a Secret
    queue: str
    vhost: str = "/"
    kind: str = "rabbitmq"

    async def read(self, session: aiohttp.ClientSession) -> BacklogReading:
        parts = urllib.parse.urlsplit(self.management_url)
        auth = aiohttp.BasicAuth(
            urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
        )
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}"
        vhost, queue = urllib.parse.quote(self.vhost, safe=""), urllib.parse.quote(self.queue, safe="")
        what = f"RabbitMQ queue {self.queue!r} in vhost {self.vhost!r}"
        body = await get_json(session, f"{base}/api/queues/{vhost}/{queue}", what=what, auth=auth)
        if not isinstance(body, dict):
            raise SourceError(f"{what}: unexpected answer from the management API")
        if "messages_ready" not in body or "messages_unacknowledged" not in body:
            raise SourceError(f"{what}: the management API has no message counts yet")
        return BacklogReading(float(body["messages_ready"]) + float(body["messages_unacknowledged"]))
