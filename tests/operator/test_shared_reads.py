"""What the operator reads once for many QueueConsumers: the shared reads themselves, and RabbitMQ's
vhost listing, paged, against the real broker (one listing answers every queue on it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devstack.polling import wait_until_async
from devstack.services import RabbitMQ
from qc_operator.errors import SourceError
from qc_operator.http import JsonFetcher
from qc_operator.sources import rabbitmq as rabbitmq_source
from qc_operator.sources.rabbitmq import QueueListings, RabbitMQBacklog, listing_age_seconds
from qc_operator.sources.shared import SharedReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_callers_share_one_read_while_it_is_young_enough_and_a_failure_is_not_kept() -> None:
    clock, reads = Clock(), 0
    shared: SharedReads[int] = SharedReads(clock)

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)  # still on its way while the others ask
        return reads

    answers = await asyncio.gather(*(shared.get("k", read, max_age_seconds=1.0) for _ in range(50)))
    assert answers == [1] * 50
    assert reads == 1, "concurrent callers wait for the one read"
    clock.now += 0.5
    assert await shared.get("k", read, 1.0) == 1, "young enough: shared"
    assert await shared.get("k", read, 0.2) == 2, "too old for a caller that wants it fresher"
    assert await shared.get("other", read, 1.0) == 3, "another key, its own read"

    async def broken() -> int:
        raise SourceError("down")

    shared.forget("k")
    with pytest.raises(SourceError, match="down"):
        await shared.get("k", broken, 1.0)
    assert await shared.get("k", read, 1.0) == 4, "a failed read is not kept for the next caller"


async def test_a_cancelled_caller_does_not_cancel_the_read_the_others_wait_for() -> None:
    shared: SharedReads[str] = SharedReads()
    release = asyncio.Event()

    async def read() -> str:
        await release.wait()
        return "listing"

    first = asyncio.ensure_future(shared.get("k", read, 1.0))
    second = asyncio.ensure_future(shared.get("k", read, 1.0))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "listing"
    assert first.cancelled()


def test_a_listing_is_shared_for_at_most_a_second_and_a_quarter_of_the_polling_interval() -> None:
    assert listing_age_seconds(15) == 1.0
    assert listing_age_seconds(1) == 0.25


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_one_paged_listing_answers_every_queue_of_the_vhost(
    rabbitmq: RabbitMQ, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbitmq_source, "PAGE_SIZE", 2)  # five queues: three pages
    vhost = f"v-{uuid.uuid4().hex[:6]}"
    rabbitmq.api("PUT", f"/api/vhosts/{vhost}", {})
    rabbitmq.api("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    queues = [f"q{i}" for i in range(5)]
    for queue in queues:
        rabbitmq.api("PUT", f"/api/queues/{vhost}/{queue}", {"durable": True})
    calls: list[dict[str, str]] = []
    fetcher = JsonFetcher(session)

    async def counted(url: str, **kwargs: object) -> object:
        calls.append(dict(kwargs.get("params") or {}))  # type: ignore[call-overload]
        return await fetcher(url, **kwargs)  # type: ignore[arg-type]

    url = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    listings = QueueListings()
    readers = [RabbitMQBacklog(url, q, vhost).shared(listings, polling_interval_seconds=15) for q in queues]

    async def all_counted() -> bool:
        try:
            return [(await r.read(counted)).messages for r in readers] == [0.0] * 5
        except SourceError as error:
            assert "no message counts yet" in str(error)  # noqa: PT017
            listings.forget((f"http://127.0.0.1:{rabbitmq.management_port}", vhost, ("guest", "guest")))
            return False

    await wait_until_async(all_counted, 15, "the management API to count the new queues")
    calls.clear()
    listings = QueueListings()
    readers = [RabbitMQBacklog(url, q, vhost).shared(listings, 15) for q in queues]
    readings = await asyncio.gather(*(r.read(counted) for r in readers))
    assert [r.messages for r in readings] == [0.0] * 5
    assert [c["page"] for c in calls] == ["1", "2", "3"], "one listing, page by page, for all five"
    assert calls[0]["columns"] == "name,messages_ready,messages_unacknowledged"

    missing = RabbitMQBacklog(url, "no-such-queue", vhost).shared(listings, 15)
    with pytest.raises(SourceError, match="not found"):
        await missing.read(counted)
    wrong = RabbitMQBacklog(url.replace("guest@", "nope@"), "q0", vhost).shared(listings, 15)
    with pytest.raises(SourceError, match="credentials refused"):
        await wrong.read(counted)
