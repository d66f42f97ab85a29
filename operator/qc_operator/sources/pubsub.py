"""Cloud Pub/Sub: the settings of `spec.source.pubsub`, the workers' environment, and the backlog from the
Cloud Monitoring API (timeSeries.list): undelivered messages and the age of the oldest unacked one.

The metrics lag 1-3 minutes; the latency target and the simulator allow for that. Authentication, for
the operator's reads and the workers' pulls alike: Application Default Credentials (Workload Identity on
GKE) unless the spec names a service-account key Secret; the operator's reads may also use a fixed
bearer token from a Secret (short-lived: the user refreshes it).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qc_common import worker_env
from qc_operator.sources.base import (
    GOOGLE_KEY_FILE,
    GOOGLE_KEY_MOUNT_DIRECTORY,
    BacklogReading,
    FetchJson,
    GoogleAuth,
    GoogleTokenSource,
    SecretKeyRef,
    SourceError,
    google_key_file,
)

KIND = "pubsub"
UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
LOOKBACK_SECONDS = 600


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PubSubBacklog:
    project: str
    subscription: str
    endpoint: str
    auth: GoogleAuth
    google_tokens: GoogleTokenSource

    async def _latest(self, fetch: FetchJson, metric: str) -> float:
        now = datetime.datetime.now(datetime.UTC)
        params = {
            "filter": f'metric.type = "{metric}" AND resource.labels.subscription_id = "{self.subscription}"',
            "interval.startTime": _rfc3339(now - datetime.timedelta(seconds=LOOKBACK_SECONDS)),
            "interval.endTime": _rfc3339(now),
        }
        url = f"{self.endpoint.rstrip('/')}/v3/projects/{self.project}/timeSeries"
        what = f"Cloud Monitoring {metric.rsplit('/', 1)[1]} of subscription {self.subscription!r}"
        headers = await self.auth.headers(self.google_tokens)
        body = await fetch(url, what=what, params=params, headers=headers)
        series = body.get("timeSeries") if isinstance(body, dict) else None
        points = series[0].get("points") if isinstance(series, list) and series else None
        if not points or not isinstance(points, list):
            raise SourceError(f"{what}: no data (unknown subscription, or no metrics in the last 10 minutes)")
        value = points[0].get("value") if isinstance(points[0], dict) else None  # points are newest first
        raw = value.get("int64Value", value.get("doubleValue")) if isinstance(value, dict) else None
        try:
            number = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise SourceError(f"{what}: the newest point has no numeric value") from error
        if not math.isfinite(number) or number < 0:
            raise SourceError(f"{what}: the newest point is {number}, not a count")
        return number

    async def read(self, fetch: FetchJson) -> BacklogReading:
        backlog = await self._latest(fetch, UNDELIVERED)
        try:
            age: float | None = await self._latest(fetch, OLDEST_AGE)
        except SourceError:
            age = None  # the age is informative; the backlog alone drives scaling
        return BacklogReading(backlog, age)


@dataclass(frozen=True)
class PubSubSettings:
    project: str
    subscription: str
    monitoring_endpoint: str
    dead_letter_topic: str = ""
    credentials: SecretKeyRef | None = None  # a bearer token for the Monitoring API
    service_account_key: SecretKeyRef | None = None  # a key file for the operator and the workers
    unauthenticated_monitoring: bool = False  # monitoring_endpoint is an emulator or a stand-in

    kind = KIND
    backlog_kind = KIND

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return tuple(ref for ref in (self.credentials, self.service_account_key) if ref)

    def reader(self, secrets: Mapping[SecretKeyRef, str], google_tokens: GoogleTokenSource) -> PubSubBacklog:
        auth = GoogleAuth(
            bearer_token=secrets[self.credentials] if self.credentials else None,
            service_account_key_json=secrets[self.service_account_key] if self.service_account_key else None,
            anonymous=self.unauthenticated_monitoring,
        )
        return PubSubBacklog(self.project, self.subscription, self.monitoring_endpoint, auth, google_tokens)

    def worker_secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.service_account_key,) if self.service_account_key else ()

    def worker_files(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return google_key_file(self.service_account_key) if self.service_account_key else []

    def worker_environment(self) -> list[dict[str, Any]]:
        env = [
            {"name": worker_env.PUBSUB_PROJECT, "value": self.project},
            {"name": worker_env.PUBSUB_SUBSCRIPTION, "value": self.subscription},
            {"name": worker_env.PUBSUB_DEAD_LETTER_TOPIC, "value": self.dead_letter_topic},
        ]
        if self.service_account_key:  # Google's client libraries read the key from this file
            key_path = f"{GOOGLE_KEY_MOUNT_DIRECTORY}/{GOOGLE_KEY_FILE}"
            env.append({"name": worker_env.GOOGLE_APPLICATION_CREDENTIALS, "value": key_path})
        return env


def parse(raw: Mapping[str, Any], has_backlog_override: bool) -> PubSubSettings:
    """`spec.source.pubsub`, schema defaults already applied."""
    del has_backlog_override  # Cloud Monitoring is always there to read
    return PubSubSettings(
        project=str(raw["project"]),
        subscription=str(raw["subscription"]),
        monitoring_endpoint=str(raw["monitoringEndpoint"]),
        dead_letter_topic=str(raw.get("deadLetterTopic", "")),
        credentials=SecretKeyRef.parse(raw.get("credentialsSecretRef")),
        service_account_key=SecretKeyRef.parse(raw.get("serviceAccountKeySecretRef")),
        unauthenticated_monitoring=bool(raw["unauthenticatedMonitoring"]),
    )
