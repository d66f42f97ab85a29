"""Backlog sources, table-driven: real Prometheus and RabbitMQ; a stub only for Cloud Monitoring.

No Cloud Monitoring API can run here (the Pub/Sub emulator has none), so the Pub/Sub source is tested
against a local HTTP server replaying the API's timeSeries.list JSON — the one mock in this folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import prometheus_client
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from devstack.polling import WaitTimeout, wait_until_async
from devstack.process import free_port
from devstack.services import Prometheus, RabbitMQ
from qc_common import metrics as names
from qc_operator.errors import SourceError
from qc_operator.http import JsonFetcher, scrape_workers
from qc_operator.sources.base import FetchJson, GoogleAuth
from qc_operator.sources.prometheus import PromQLBacklog
from qc_operator.sources.pubsub import PubSubBacklog
from qc_operator.sources.rabbitmq import RabbitMQBacklog
from qc_operator.workers import ThroughputEstimator, WorkerStats, summarize


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def no_google(service_account_key_json: str | None) -> str:
    raise AssertionError("no Google token is needed here")


@pytest.fixture
def fetch(session: aiohttp.ClientSession) -> FetchJson:
    return JsonFetcher(session)


async def read_workers(
    session: aiohttp.ClientSession, endpoints: dict[str, str], estimator: ThroughputEstimator
) -> WorkerStats:
    return summarize(await scrape_workers(session, endpoints), estimator, time.monotonic())


async def test_rabbitmq_backlog_counts_ready_and_unacked(rabbitmq: RabbitMQ, fetch: FetchJson) -> None:
    queue = f"backlog-{uuid.uuid4().hex[:6]}"
    connection = await aio_pika.connect_robust(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=3)
        declared = await channel.declare_queue(queue, durable=True)
        for i in range(10):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)
        held = [await declared.get(no_ack=False) for _ in range(3)]  # 3 unacked, 7 ready
        source = RabbitMQBacklog(f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}", queue, "/")
        readings: list[float] = []

        async def ten_counted() -> bool:
            # A fresh queue has no counts until the next statistics refresh: an error, not 0.
            try:
                readings.append((await source.read(fetch)).messages)
            except SourceError as error:
                assert "no message counts yet" in str(error)  # noqa: PT017
                return False
            return readings[-1] == 10

        with contextlib.suppress(WaitTimeout):
            await wait_until_async(ten_counted, 10, "the management API to count the 10 messages")
        assert readings, "the management API never gave counts"
        assert readings[-1] == 10, "ready + unacked, not ready alone"
        for message in held:
            assert message is not None
            await message.ack()

    missing = RabbitMQBacklog(
        f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}", "no-such-queue", "/"
    )
    with pytest.raises(SourceError, match="not found"):
        await missing.read(fetch)
    wrong = RabbitMQBacklog(f"http://guest:nope@127.0.0.1:{rabbitmq.management_port}", queue, "/")
    with pytest.raises(SourceError, match="credentials refused"):
        await wrong.read(fetch)


async def test_promql_backlog_from_the_real_prometheus(prometheus: Prometheus, fetch: FetchJson) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("qc_test_queue_depth", "depth", ["queue"], registry=registry)
    gauge.labels("a").set(30)
    gauge.labels("b").set(12)
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus.add_target("promql-source", f"127.0.0.1:{port}")
        await asyncio.to_thread(prometheus.wait_for, 'qc_test_queue_depth{instance_name="promql-source"}', 30)
        cases: list[tuple[str, float | None, str]] = [
            ('sum(qc_test_queue_depth{instance_name="promql-source"})', 42, ""),
            ('qc_test_queue_depth{instance_name="promql-source"}', 42, ""),  # a vector is summed
            ("scalar(vector(7))", 7, ""),
            ('qc_test_queue_depth{queue="typo"}', None, "returned no series"),
            ("sum(", None, "parse error"),
        ]
        for query, expected, error in cases:
            source = PromQLBacklog(prometheus.url, query)
            if expected is None:
                with pytest.raises(SourceError, match=error):
                    await source.read(fetch)
            else:
                assert (await source.read(fetch)).messages == expected, query
    finally:
        prometheus.remove_target("promql-source")
        server.shutdown()
        thread.join(timeout=5)


def monitoring_stub(series: dict[str, Any], seen: list[web.Request]) -> web.Application:
    async def time_series(request: web.Request) -> web.Response:
        seen.append(request)
        metric = request.query["filter"].split('"')[1]
        return web.json_response(series.get(metric, {}))

    app = web.Application()
    app.add_routes([web.get("/v3/projects/{project}/timeSeries", time_series)])
    return app


def points(value: int) -> dict[str, Any]:
    return {
        "timeSeries": [{"points": [{"value": {"int64Value": str(value)}}, {"value": {"int64Value": "1"}}]}]
    }


async def test_pubsub_backlog_from_the_monitoring_api(fetch: FetchJson) -> None:
    seen: list[web.Request] = []
    series = {
        "pubsub.googleapis.com/subscription/num_undelivered_messages": points(1234),
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age": points(95),
    }
    runner = web.AppRunner(monitoring_stub(series, seen))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        source = PubSubBacklog("proj", "orders", f"http://127.0.0.1:{port}", GoogleAuth("t0ken"), no_google)
        reading = await source.read(fetch)
        assert reading.messages == 1234
        assert reading.oldest_message_age_seconds == 95
        assert seen[0].headers["Authorization"] == "Bearer t0ken"
        assert 'resource.labels.subscription_id = "orders"' in seen[0].query["filter"]
        unknown = PubSubBacklog(
            "proj", "nope", f"http://127.0.0.1:{port}", GoogleAuth(anonymous=True), no_google
        )
        series.clear()
        with pytest.raises(SourceError, match="no data"):
            await unknown.read(fetch)
    finally:
        await runner.cleanup()


async def test_read_workers_compares_each_pod_with_its_previous_scrape(
    session: aiohttp.ClientSession,
) -> None:
    registry = CollectorRegistry()
    counter = Counter(names.WORKER_EMPTY_RECEIVES, "empty receives", ["source", "task"], registry=registry)
    for task in ("a", "b"):
        counter.labels(source="rabbitmq", task=task).inc(2)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=prometheus_client.generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        endpoints, estimator = {"pod-0": f"http://127.0.0.1:{port}/metrics"}, ThroughputEstimator()
        first = await read_workers(session, endpoints, estimator)
        assert first.queue_found_empty is None, "nothing to compare the first scrape with"
        assert estimator.previous["pod-0"][1].empty_receives_total == 4, "summed over the task labels"
        assert (await read_workers(session, endpoints, estimator)).queue_found_empty is False
        counter.labels(source="rabbitmq", task="b").inc()
        assert (await read_workers(session, endpoints, estimator)).queue_found_empty is True
        assert (await read_workers(session, endpoints, estimator)).queue_found_empty is False
    finally:
        await runner.cleanup()
