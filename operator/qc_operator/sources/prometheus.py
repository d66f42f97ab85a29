"""Any Prometheus-compatible PromQL endpoint (Prometheus, Thanos, Mimir, Cloud Monitoring's PromQL API):
the settings of `spec.backlog.prometheus`, which replace the message source's own backlog reading.

The query must return one scalar or one or more series (summed). No series is an error, not a zero: a
typo in a label would otherwise scale the fleet to nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qc_operator.sources.base import BacklogReading, FetchJson, SecretKeyRef, SourceError, bearer

KIND = "prometheus"


def _number(raw: Any, what: str) -> float:
    """A sample value as PromQL's JSON writes it: ["<unix time>", "<value>"]."""
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise SourceError(f"{what} returned a sample that is not a number: {str(raw)[:100]}") from error


@dataclass(frozen=True)
class PromQLBacklog:
    server_address: str
    query: str
    bearer_token: str | None = None

    async def read(self, fetch: FetchJson) -> BacklogReading:
        url = f"{self.server_address.rstrip('/')}/api/v1/query"
        what = f"PromQL query {self.query!r}"
        body = await fetch(url, what=what, params={"query": self.query}, headers=bearer(self.bearer_token))
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise SourceError(f"{what} failed: {str(error)[:200]}")
        data = body.get("data")
        kind = data.get("resultType") if isinstance(data, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        if kind == "scalar":
            values = [_number(result, what)]
        elif kind == "vector" and isinstance(result, list):
            values = [
                _number(series.get("value") if isinstance(series, dict) else None, what) for series in result
            ]
        else:
            raise SourceError(f"{what} returned a {kind}, not a scalar or an instant vector")
        if not values:
            raise SourceError(f"{what} returned no series")
        total = sum(values)
        if not math.isfinite(total) or total < 0:
            raise SourceError(f"{what} returned {total}, not a backlog")
        return BacklogReading(total)


@dataclass(frozen=True)
class PromQLSettings:
    server_address: str
    query: str
    bearer_token: SecretKeyRef | None = None

    backlog_kind = KIND

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.bearer_token,) if self.bearer_token else ()

    def reader(self, secrets: Mapping[SecretKeyRef, str]) -> PromQLBacklog:
        token = secrets[self.bearer_token] if self.bearer_token else None
        return PromQLBacklog(self.server_address, self.query, token)


def parse(raw: Mapping[str, Any]) -> PromQLSettings:
    """`spec.backlog.prometheus`, schema defaults already applied."""
    return PromQLSettings(
        server_address=str(raw["serverAddress"]),
        query=str(raw["query"]),
        bearer_token=SecretKeyRef.parse(raw.get("bearerTokenSecretRef")),
    )
