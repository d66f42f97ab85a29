"""Google credentials for the operator's Cloud Monitoring reads, found and refreshed as Google's libraries do.

Application Default Credentials by default: on GKE with Workload Identity, the metadata server answers for
the Kubernetes ServiceAccount's Google service account, with no key anywhere. Or a service-account key
(JSON) from a Secret the QueueConsumer names. Either way a `google.auth` Credentials object per key is kept
for the process and refreshed when google-auth says it is no longer valid (a few minutes before it
expires), so a steady state makes one token request per key an hour, never one per read. google-auth's
transport is blocking: refreshes run in a thread. Credentials never appear in a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from qc_operator.errors import SourceError

MONITORING_READ_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
APPLICATION_DEFAULT = "application-default"


class GoogleTokens:
    """`sources.base.GoogleTokenSource`: an OAuth2 access token for a key (None: ADC), refreshed in time."""

    def __init__(self, scopes: tuple[str, ...] = (MONITORING_READ_SCOPE,)) -> None:
        self._scopes = list(scopes)
        self._credentials: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, service_account_key_json: str | None) -> str:
        key = (
            hashlib.sha256(service_account_key_json.encode()).hexdigest()
            if service_account_key_json
            else APPLICATION_DEFAULT
        )
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one refresh at a time per key, however many QueueConsumers share it
            credentials: Any = self._credentials.get(key)
            if credentials is None:
                credentials = await asyncio.to_thread(self._load, service_account_key_json)
                self._credentials[key] = credentials
            if not credentials.valid:
                await asyncio.to_thread(self._refresh, credentials)
            return str(credentials.token)

    def _load(self, service_account_key_json: str | None) -> Any:
        if service_account_key_json is None:
            try:
                credentials, _ = google.auth.default(scopes=self._scopes)
            except google.auth.exceptions.DefaultCredentialsError as error:
                raise SourceError(
                    "no Google credentials: neither Workload Identity (the metadata server) nor "
                    "GOOGLE_APPLICATION_CREDENTIALS, and the QueueConsumer names no service-account key"
                ) from error
            return credentials
        try:
            info = json.loads(service_account_key_json)
            return service_account.Credentials.from_service_account_info(info, scopes=self._scopes)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError) as error:
            raise SourceError("the service-account key is not a Google service-account key file") from error

    @staticmethod
    def _refresh(credentials: Any) -> None:
        try:
            credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as error:
            # google-auth's messages name the token endpoint and the error, never the key or the token.
            raise SourceError(f"Google credentials could not be refreshed: {str(error)[:300]}") from error
