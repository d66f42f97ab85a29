"""Any Prometheus-compatible PromQL endpoint (Prometheus, Thanos, Mimir, Cloud Monitoring's PromQL API).

The query must return one scalar or one or more series (summed). No series is an error, not a zero: a
typo in a label would otherwise scale the fleet to nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp

from qc_operator.sources.base import BacklogReading, SourceError, get_json


@dataclass(frozen=True)
class PrometheusBacklog:
    server_address: str
    query: str
    bearer_token: str | None = None
    kind: str = "prometheus"

    async def read(self, session: aiohttp.ClientSession) -> BacklogReading:
        headers = {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}
        url = f"{self.server_address.rstrip('/')}/api/v1/query"
        what = f"PromQL query {self.query!r}"
        body = await get_json(session, url, what=what, params={"query": self.query}, headers=headers)
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise SourceError(f"{what} failed: {error}")
        data = body["data"]
        if data["resultType"] == "scalar":
            values = [float(data["result"][1])]
        elif data["resultType"] == "vector":
            values = [float(series["value"][1]) for series in data["result"]]
        else:
            raise SourceError(f"{what} returned a {data['resultType']}, not a scalar or an instant vector")
        if not values:
            raise SourceError(f"{what} returned no series")
        total = sum(values)
        if math.isnan(total) or total < 0:
            raise SourceError(f"{what} returned {total}, not a backlog")
        return BacklogReading(total)
