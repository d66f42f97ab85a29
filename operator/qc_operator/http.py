"""The operator's HTTP calls besides the Kubernetes API: backlog sources' JSON and the workers' metrics.

The one module that uses the aiohttp session; the source modules and `workers` are plain code on what
these return. Failures of a source become a SourceError naming what was read (credentials never
included; a TLS failure named as `qc_common.tls` reads it: certificate verify failed, hostname mismatch,
client certificate wanted); a worker pod that does not answer is left out of that scrape. A read with
`tls` gets an SSL context built once per distinct CA / client certificate / server name and kept.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

import aiohttp

from qc_common import tls as common_tls
from qc_operator.errors import SourceError
from qc_operator.sources.base import ClientTls
from qc_operator.workers import PodSample, parse_pod_metrics

MAX_REQUEST_TIMEOUT_SECONDS = 10.0
# A read must end before the next tick is due, so a hung source is a SourceError within one interval.
TIMEOUT_SHARE_OF_INTERVAL = 0.8
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a backlog answer is a few KiB; a runaway one must not OOM us
MAX_METRICS_BYTES = 1024 * 1024  # a worker's /metrics page is a few KiB
SCRAPE_TIMEOUT_SECONDS = 3.0
CHUNK_BYTES = 64 * 1024
TLS_CONTEXTS_KEPT = 256  # distinct CA / client-certificate sets; a rotated Secret makes a new one


@functools.lru_cache(maxsize=TLS_CONTEXTS_KEPT)
def tls_context(material: ClientTls) -> ssl.SSLContext:
    """The client context for `material`. The ssl module loads a certificate chain only from files: the
    client certificate and key are written to a private directory for the load, and removed at once."""
    if not material.client_cert_pem:
        return common_tls.client_context(ca_pem=material.ca_pem, server_name=material.server_name)
    with tempfile.TemporaryDirectory(prefix="qc-tls-") as directory:  # mode 0700, ours only
        cert_file, key_file = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        for path, text in ((cert_file, material.client_cert_pem), (key_file, material.client_key_pem or "")):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
        return common_tls.client_context(
            ca_pem=material.ca_pem, cert_file=cert_file, key_file=key_file, server_name=material.server_name
        )


def ssl_for(tls: ClientTls | None, what: str) -> ssl.SSLContext | bool:
    """aiohttp's `ssl` argument: True (the system's CAs) without `tls`; SourceError for unusable PEM."""
    if tls is None:
        return True
    try:
        return tls_context(tls)
    except (ssl.SSLError, ValueError) as error:  # ValueError: not PEM at all
        raise SourceError(
            f"{what}: the TLS CA or client certificate from the Secret cannot be used: {error}"
        ) from error


def request_timeout_seconds(polling_interval_seconds: float) -> float:
    return min(MAX_REQUEST_TIMEOUT_SECONDS, TIMEOUT_SHARE_OF_INTERVAL * polling_interval_seconds)


async def read_capped(reply: aiohttp.ClientResponse, limit_bytes: int) -> bytes | None:
    """The body, or None when it is longer than `limit_bytes` (read no further than that)."""
    if reply.content_length is not None and reply.content_length > limit_bytes:
        return None
    body = bytearray()
    async for chunk in reply.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > limit_bytes:
            return None
    return bytes(body)


class JsonFetcher:
    """`sources.base.FetchJson` over an aiohttp session, each request bounded in time and size."""

    def __init__(self, session: aiohttp.ClientSession, timeout_seconds: float = MAX_REQUEST_TIMEOUT_SECONDS):
        self._session = session
        self._timeout_seconds = timeout_seconds

    async def __call__(
        self,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        tls: ClientTls | None = None,
    ) -> Any:
        auth = aiohttp.BasicAuth(*basic_auth) if basic_auth else None
        context = ssl_for(tls, what)
        try:
            async with self._session.get(
                url,
                params=params,
                headers=headers,
                auth=auth,
                ssl=context,
                timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
            ) as reply:
                if reply.status == 404:
                    raise SourceError(f"{what}: not found (HTTP 404)")
                if reply.status in (401, 403):
                    raise SourceError(f"{what}: credentials refused (HTTP {reply.status})")
                body = await read_capped(reply, MAX_RESPONSE_BYTES)
                if body is None:
                    raise SourceError(f"{what}: the answer is larger than {MAX_RESPONSE_BYTES} bytes")
                if reply.status >= 400:
                    text = body[:200].decode("utf-8", "replace")
                    raise SourceError(f"{what}: HTTP {reply.status}: {text}")
                return json.loads(body)
        except TimeoutError as error:
            raise SourceError(f"{what}: no answer within {self._timeout_seconds:g} s") from error
        except aiohttp.ClientError as error:
            failure = None
            if url.startswith("https://"):
                given = bool(tls and tls.client_cert_pem)
                failure = common_tls.describe_failure(error, given)
            raise SourceError(f"{what}: {failure or f'{type(error).__name__}: {error}'}") from error
        except ValueError as error:  # not JSON (or not UTF-8)
            raise SourceError(f"{what}: the answer is not JSON: {str(error)[:200]}") from error


async def scrape_workers(
    session: aiohttp.ClientSession, endpoints: Mapping[str, str]
) -> dict[str, PodSample]:
    """pod name -> sample, for the pods that answered (a pod starting up or going away may not)."""

    async def one(url: str) -> PodSample | None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)) as reply:
                body = await read_capped(reply, MAX_METRICS_BYTES) if reply.status == 200 else None
                return parse_pod_metrics(body.decode("utf-8", "replace")) if body is not None else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    results = await asyncio.gather(*(one(url) for url in endpoints.values()))
    return {pod: sample for pod, sample in zip(endpoints, results, strict=True) if sample is not None}
