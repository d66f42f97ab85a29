"""Backlog sources, table-driven: real Prometheus and RabbitMQ; a stub only for Cloud Monitoring.

No Cloud Monitoring API can run here (the Pub/Sub emulator has none), so the Pub/Sub source is tested
against a local HTTP server replaying the API's timeSeries.list JSON — the one mock in this folder.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from qc_operator.sources.base import SourceError
from qc_operator.sources.prometheus import PrometheusBacklog
from qc_operator.sources.pubsub import PubSubBacklog
from qc_operator.sources.rabbitmq import RabbitMQBacklog
from qc_operator.sources.workers import (
    PodSample,
    ThroughputEstimator,
    parse_pod_metrics,
    queue_found_empty,
    read_workers,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_rabbitmq_backlog_counts_ready_and_unacked(
    rabbitmq: RabbitMQ, session: aiohttp.ClientSession
) -> None:
    queue = f"backlog-{uuid.uuid4().hex[:6]}"
    connection = await aio_pika.connect_robust(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=3)
        declared = await channel.declare_queue(queue, durable=True)
        for i in range(10):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)
        held = [await declared.get(no_ack=False) for _ in range(3)]  # 3 unacked, 7 ready
        source = RabbitMQBacklog(f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}", queue)
        readings: list[float] = []

        async def ten_counted() -> bool:
            # A fresh queue has no counts until the next statistics refresh: an error, not 0.
            try:
                readings.append((await source.read(session)).messages)
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

    missing = RabbitMQBacklog(f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}", "no-such-queue")
    with pytest.raises(SourceError, match="not found"):
        await missing.read(session)
    wrong = RabbitMQBacklog(f"http://guest:nope@127.0.0.1:{rabbitmq.management_port}", queue)
    with pytest.raises(SourceError, match="credentials refused"):
        await wrong.read(session)


async def test_promql_backlog_from_the_real_prometheus(
    prometheus: Prometheus, session: aiohttp.ClientSession
) -> None:
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
            source = PrometheusBacklog(prometheus.url, query)
            if expected is None:
                with pytest.raises(SourceError, match=error):
                    await source.read(session)
            else:
                assert (await source.read(session)).messages == expected, query
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


async def test_pubsub_backlog_from_the_monitoring_api(session: aiohttp.ClientSession) -> None:
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
        source = PubSubBacklog("proj", "orders", f"http://127.0.0.1:{port}", bearer_token="t0ken")
        reading = await source.read(session)
        assert reading.messages == 1234
        assert reading.oldest_message_age_seconds == 95
        assert seen[0].headers["Authorization"] == "Bearer t0ken"
        assert 'resource.labels.subscription_id = "orders"' in seen[0].query["filter"]
        unknown = PubSubBacklog("proj", "nope", f"http://127.0.0.1:{port}")
        series.clear()
        with pytest.raises(SourceError, match="no data"):
            await unknown.read(session)
    finally:
        await runner.cleanup()


def test_worker_metrics_parse_and_throughput_per_busy_replica() -> None:
    text = (
        'qc_worker_messages_acked_total{source="rabbitmq",task="t"} 120.0\n'
        'qc_worker_tasks_in_flight{source="rabbitmq",task="t"} 3.0\n'
        'qc_worker_busy_ratio{source="rabbitmq",task="t"} 0.5\n'
    )
    assert parse_pod_metrics(text) == PodSample(acked_total=120, in_flight=3, busy_ratio=0.5)
    estimator = ThroughputEstimator()
    assert estimator.update({"a": PodSample(100, 2, 0.5), "b": PodSample(0, 2, 0.5)}, 0.0) is None
    # 40 + 40 completions in 2 s (40 msg/s) from two pods each busy half the time: one busy replica's worth.
    busy = estimator.update({"a": PodSample(140, 2, 0.5), "b": PodSample(40, 2, 0.5)}, 2.0)
    assert busy == pytest.approx(40)
    # An idle fleet keeps the last estimate instead of reading its idleness as slowness.
    idle = estimator.update({"a": PodSample(140, 0, 0.0), "b": PodSample(40, 0, 0.0)}, 4.0)
    assert idle == pytest.approx(40)


def empty_receives(total: float | None) -> PodSample:
    return PodSample(acked_total=100, in_flight=1, busy_ratio=0.1, empty_receives_total=total)


@pytest.mark.parametrize(
    ("name", "previous", "current", "expected"),
    [
        ("rose: the queue was found empty", {"a": empty_receives(5)}, {"a": empty_receives(6)}, True),
        ("unchanged: never found empty", {"a": empty_receives(5)}, {"a": empty_receives(5)}, False),
        ("went down: restarted, no information", {"a": empty_receives(5)}, {"a": empty_receives(0)}, None),
        ("no previous scrape: no information", {}, {"a": empty_receives(5)}, None),
        ("no pod answered", {"a": empty_receives(5)}, {}, None),
        ("a worker without the counter", {"a": empty_receives(None)}, {"a": empty_receives(None)}, None),
        (
            "one pod's rise is enough",
            {"a": empty_receives(5), "b": empty_receives(9)},
            {"a": empty_receives(5), "b": empty_receives(10)},
            True,
        ),
        (
            "a restarted pod beside an unchanged one",
            {"a": empty_receives(5), "b": empty_receives(9)},
            {"a": empty_receives(5), "b": empty_receives(1)},
            False,
        ),
        (
            "a new pod beside an unchanged one",
            {"a": empty_receives(5)},
            {"a": empty_receives(5), "b": empty_receives(3)},
            False,
        ),
    ],
)
def test_queue_found_empty_from_the_empty_receive_counters(
    name: str, previous: dict[str, PodSample], current: dict[str, PodSample], expected: bool | None
) -> None:
    assert queue_found_empty(previous, current) is expected, name


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
