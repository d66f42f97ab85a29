"""Any Prometheus-compatible PromQL endpoint (Prometheus, Thanos, Mimir, Cloud Monitoring's PromQL API):
the settings of `spec.backlog.prometheus`, which replace the message source's own backlog reading.

The query must return one scalar or one or more series (summed). No series is an error, not a zero: a
typo in a label would otherwise scale the fleet to nothing. For Cloud Monitoring's PromQL API
(https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus) set `googleAuth`:
Application Default Credentials (Workload Identity), or a service-account key from a Secret.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qc_operator.sources.base import (
    BacklogReading,
    FetchJson,
    GoogleAuth,
    GoogleTokenSource,
    SecretKeyRef,
    SourceError,
    bearer,
)

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
    google: GoogleAuth | None = None  # set: Google's OAuth2 (Cloud Monitoring's PromQL API)
    google_tokens: GoogleTokenSource | None = None

    async def read(self, fetch: FetchJson) -> BacklogReading:
        url = f"{self.server_address.rstrip('/')}/api/v1/query"
        what = f"PromQL query {self.query!r}"
        headers = bearer(self.bearer_token)
        if self.google is not None and self.google_tokens is not None:
            headers = await self.google.headers(self.google_tokens)
        body = await fetch(url, what=what, params={"query": self.query}, headers=headers)
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
    google_auth: bool = False  # authenticate as Google's APIs want (ADC, or the key below)
    service_account_key: SecretKeyRef | None = None

    backlog_kind = KIND

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return tuple(ref for ref in (self.bearer_token, self.service_account_key) if ref)

    def reader(self, secrets: Mapping[SecretKeyRef, str], google_tokens: GoogleTokenSource) -> PromQLBacklog:
        token = secrets[self.bearer_token] if self.bearer_token else None
        if not self.google_auth:
            return PromQLBacklog(self.server_address, self.query, token)
        key = secrets[self.service_account_key] if self.service_account_key else None
        google = GoogleAuth(service_account_key_json=key)
        return PromQLBacklog(self.server_address, self.query, None, google, google_tokens)


def parse(raw: Mapping[str, Any]) -> PromQLSettings:
    """`spec.backlog.prometheus`, schema defaults already applied."""
    google = raw.get("googleAuth")
    return PromQLSettings(
        server_address=str(raw["serverAddress"]),
        query=str(raw["query"]),
        bearer_token=SecretKeyRef.parse(raw.get("bearerTokenSecretRef")),
        google_auth=google is not None,
        service_account_key=SecretKeyRef.parse((google or {}).get("serviceAccountKeySecretRef")),
    )
