"""Cloud Pub/Sub's backlog from the Cloud Monitoring API (timeSeries.list): undelivered messages and the
age of the oldest unacked one. The metrics lag 1-3 minutes; the latency target and the simulator allow
for that. Authentication is an OAuth2 bearer token from a Secret (or workload identity's, mounted there).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import aiohttp

from qc_operator.sources.base import BacklogReading, SourceError, get_json

UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
LOOKBACK_SECONDS = 600


@dataclass(frozen=True)
class PubSubBacklog:
    project: str
    subscription: str
    endpoint: str = "https://monitoring.googleapis.com"
    bearer_token: str | None = None
    kind: str = "pubsub"

    async def _latest(self, session: aiohttp.ClientSession, metric: str) -> float:
        now = datetime.datetime.now(datetime.UTC)
        start = now - datetime.timedelta(seconds=LOOKBACK_SECONDS)
        params = {
            "filter": f'metric.type = "{metric}" AND resource.labels.subscription_id = "{self.subscription}"',
            "interval.startTime": start.isoformat().replace("+00:00", "Z"),
            "interval.endTime": now.isoformat().replace("+00:00", "Z"),
        }
        headers = {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}
        url = f"{self.endpoint.rstrip('/')}/v3/projects/{self.project}/timeSeries"
        what = f"Cloud Monitoring {metric.rsplit('/', 1)[1]} of subscription {self.subscription!r}"
        body = await get_json(session, url, what=what, params=params, headers=headers)
        series = body.get("timeSeries") if isinstance(body, dict) else None
        if not series or not series[0].get("points"):
            raise SourceError(f"{what}: no data (unknown subscription, or no metrics in the last 10 minutes)")
        value = series[0]["points"][0]["value"]  # points are newest first
        return float(value.get("int64Value", value.get("doubleValue", "nan")))

    async def read(self, session: aiohttp.ClientSession) -> BacklogReading:
        backlog = await self._latest(session, UNDELIVERED)
        try:
            age: float | None = await self._latest(session, OLDEST_AGE)
        except SourceError:
            age = None  # the age is informative; the backlog alone drives scaling
        return BacklogReading(backlog, age)
