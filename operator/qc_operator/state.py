"""What the handlers of one operator process share, kept in kopf's memo under one key (`memo.state`).

Built by `handlers.start`; read by every handler and daemon in `handlers`.
"""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
from aiohttp import web

from qc_operator import sharding
from qc_operator.gcp import GoogleTokens
from qc_operator.kube import Kube
from qc_operator.metrics import OperatorMetrics
from qc_operator.reconcile import Shared
from qc_operator.settings import OperatorSettings

# QueueConsumers whose first handling (children, then first tick) runs at once; the others wait before they
# copy anything. A start on 5,000 held all their bodies, manifests and statuses at once, and the holes they
# left kept the RSS up long after (glibc cannot give back a page with one live object in it): 586 MiB with
# 335 in use, against 386 MiB with at most 32 at once. At 32 the start was slow (5,000 first ticks each
# waiting for a shared queue listing while holding a slot); 128 in flight are a few MiB.
FIRST_HANDLING_CONCURRENCY = 128


@dataclasses.dataclass(eq=False)
class OperatorState:
    """What every handler of this process shares: one key of kopf's memo (`memo.state`), because kopf
    copies the memo for every object it watches (five per QueueConsumer: it and its four children), a
    slot per key in each copy."""

    settings: OperatorSettings
    shard: sharding.Shard
    kube: Kube
    session: aiohttp.ClientSession
    metrics: OperatorMetrics
    metrics_server: web.AppRunner  # cleaned up at the operator's stop
    trimmer: asyncio.Task[None]  # allocator.trim_periodically, cancelled at the stop
    google_tokens: GoogleTokens = dataclasses.field(default_factory=GoogleTokens)  # a token per key
    shared: Shared = dataclasses.field(default_factory=Shared)  # RabbitMQ listings and Secret values
    # (namespace, name) -> (reason, message) last reported
    not_ready: dict[tuple[str, str], tuple[str, str]] = dataclasses.field(default_factory=dict)
    # uid -> set once its create/resume handler ran, until its first tick
    children_handled: dict[str, asyncio.Event] = dataclasses.field(default_factory=dict)
    first_handling: asyncio.Semaphore = dataclasses.field(
        default_factory=lambda: asyncio.Semaphore(FIRST_HANDLING_CONCURRENCY)
    )
