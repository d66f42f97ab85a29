"""The operator's HTTP calls besides the Kubernetes API: backlog sources' JSON and the workers' metrics.

The one module that uses the aiohttp session; the source modules and `workers` are plain code on what
these return. Failures of a source become a SourceError naming what was read (credentials never
included); a worker pod that does not answer is left out of that scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from qc_operator.errors import SourceError
from qc_operator.workers import PodSample, parse_pod_metrics

REQUEST_TIMEOUT_SECONDS = 10.0
SCRAPE_TIMEOUT_SECONDS = 3.0


class JsonFetcher:
    """`sources.base.FetchJson` over an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __call__(
        self,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> Any:
        auth = aiohttp.BasicAuth(*basic_auth) if basic_auth else None
        try:
            async with self._session.get(
                url,
                params=params,
                headers=headers,
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
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


async def scrape_workers(
    session: aiohttp.ClientSession, endpoints: Mapping[str, str]
) -> dict[str, PodSample]:
    """pod name -> sample, for the pods that answered (a pod starting up or going away may not)."""

    async def one(url: str) -> PodSample | None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)) as reply:
                return parse_pod_metrics(await reply.text()) if reply.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    results = await asyncio.gather(*(one(url) for url in endpoints.values()))
    return {pod: sample for pod, sample in zip(endpoints, results, strict=True) if sample is not None}
