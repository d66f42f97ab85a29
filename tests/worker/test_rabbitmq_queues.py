"""A real `qc-worker` on queues as their owners declare them: quorum queues, queue arguments, an existing
dead-letter exchange of another type, messages kept whole, forged attempt headers, worker-killing poison."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import worker_tasks

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from tests.worker.rabbitmq_helpers import declare, publish_messages, take_all_now
from tests.worker.worker_harness import WorkerProcess, body, completions, restart_until_poison_dead_lettered

TYPED_HEADERS: dict[str, Any] = {
    "nested": {"a": 1, "b": [1, "two", {"c": True}]},
    "raw": bytearray(b"\x00\xff\x10"),
    "count": 7,
    "big": 2**40,
    "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
    "flag": False,
    "text": "zürich",
}
PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "identity",
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "priority": 3,
    "app_id": "billing",
    "type": "invoice.created",
    "message_id": "msg-1",
    "timestamp": datetime.datetime(2026, 1, 2, 3, 4, 5),
}


def env(rabbitmq: RabbitMQ, queue: str, task: str, **extra: str) -> dict[str, str]:
    return {
        "QC_SOURCE": "rabbitmq",
        "QC_RABBITMQ_URL": rabbitmq.amqp_url,
        "QC_RABBITMQ_QUEUE": queue,
        "QC_TASK": task,
        "QC_RETRY_BACKOFF_MIN_SECONDS": "0.1",
        "QC_RETRY_BACKOFF_MAX_SECONDS": "0.2",
        **extra,
    }


async def declare_dead_letter_route(url: str, exchange: str, kind: aio_pika.ExchangeType, queue: str) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, kind, durable=True)
        dead = await channel.declare_queue(queue, durable=True)
        await dead.bind(declared, routing_key="#")


def the_message(bad: bool) -> aio_pika.Message:
    # A publisher's own attempt headers, forged or stale: they must not skip retries.
    headers = {**TYPED_HEADERS, "x-qc-attempts": 99, "x-qc-attempts-signature": "0" * 32, "x-qc-attempt": 99}
    return aio_pika.Message(
        body(str(uuid.uuid4()), fail="always" if bad else "never"),
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **PROPERTIES,
    )


QUEUE_KINDS = {
    "quorum": (
        {
            "x-queue-type": "quorum",
            "x-delivery-limit": 20,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
        aio_pika.ExchangeType.TOPIC,
    ),
    "classic-ttl-max-length-dlx": (
        {"x-message-ttl": 600_000, "x-max-length": 10_000},
        aio_pika.ExchangeType.FANOUT,
    ),
}


@pytest.mark.parametrize("kind", sorted(QUEUE_KINDS))
def test_a_queue_declared_with_arguments_is_consumed_as_it_is_and_dead_letters_keep_the_message_whole(
    kind: str, rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"{kind}-{uuid.uuid4().hex[:8]}"
    arguments, exchange_type = QUEUE_KINDS[kind]
    arguments = {**arguments, "x-dead-letter-exchange": f"{queue}.dlx"}
    url = rabbitmq.amqp_url
    asyncio.run(declare_dead_letter_route(url, f"{queue}.dlx", exchange_type, f"{queue}.dead"))
    asyncio.run(declare(url, queue, arguments))
    asyncio.run(declare(url, f"{queue}.control"))
    good, bad = the_message(bad=False), the_message(bad=True)
    asyncio.run(publish_messages(url, queue, [good, bad]))
    asyncio.run(publish_messages(url, f"{queue}.control", [the_message(bad=True)]))

    # The operator passes the queue's arguments as the spec declares them; the worker does not declare.
    worker = start_worker(
        **env(
            rabbitmq,
            queue,
            "worker_tasks:fail_twice_async",
            QC_RABBITMQ_QUEUE_ARGUMENTS=json.dumps(arguments),
        )
    )
    wait_until(lambda: worker.metric("qc_worker_messages_dead_lettered_total") == 1, 60, "the dead letter")
    assert worker.metric("qc_worker_messages_retried_total") == 1  # the forged count skipped nothing
    assert set(completions(records)) == {json.loads(good.body)["id"]}

    [dead] = take_all_now(url, f"{queue}.dead")
    [control] = take_all_now(url, f"{queue}.control")  # the same message as the library reads it, untouched
    assert dead.body == bad.body
    headers = dict(dead.headers or {})
    reasons = {name: headers.pop(name) for name in list(headers) if name.startswith("qc-")}
    assert reasons["qc-dead-letter-reason"] == "exception"
    assert reasons["qc-delivery-attempts"] == "2"
    assert "RuntimeError: failed on purpose" in str(reasons["qc-dead-letter-detail"])
    expected = {
        k: v
        for k, v in (control.headers or {}).items()
        if k not in ("x-qc-attempts", "x-qc-attempts-signature")
    }
    headers.pop("x-delivery-count", None)  # the quorum queue's own count of returns
    assert headers == expected
    assert expected["nested"] == TYPED_HEADERS["nested"]
    assert expected["raw"] == TYPED_HEADERS["raw"]
    for name in PROPERTIES:
        assert getattr(dead, name) == getattr(control, name), name
    assert dead.delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    # The queue is as its owner declared it, and nothing is left in it.
    info = rabbitmq.api("GET", f"/api/queues/%2F/{queue}")
    assert info["arguments"] == arguments
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")


def test_the_queue_is_declared_with_its_arguments_only_when_asked(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"declared-{uuid.uuid4().hex[:8]}"
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 5}
    start_worker(
        **env(
            rabbitmq,
            queue,
            "worker_tasks:work_async",
            QC_RABBITMQ_DECLARE_QUEUE="true",
            QC_RABBITMQ_QUEUE_ARGUMENTS=json.dumps(arguments),
        )
    )
    info = rabbitmq.api("GET", f"/api/queues/%2F/{queue}")
    assert (info["type"], info["arguments"]) == ("quorum", arguments)
    asyncio.run(publish_messages(rabbitmq.amqp_url, queue, [aio_pika.Message(body("q1"))]))
    wait_until(lambda: set(completions(records)) == {"q1"}, 30, "the message to be processed")


def test_without_declaring_a_missing_queue_is_waited_for_and_never_created(
    rabbitmq: RabbitMQ, records: Path, tmp_path: Path
) -> None:
    queue = f"missing-{uuid.uuid4().hex[:8]}"
    settings = env(rabbitmq, queue, "worker_tasks:work_async", **{worker_tasks.RECORDS_DIR_ENV: str(records)})
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        wait_until(lambda: "cannot reach the broker" in worker.log_path.read_text(), 30, "the retry log line")
        assert worker.popen.poll() is None
        assert not worker.ready()
        assert queue not in {q["name"] for q in rabbitmq.api("GET", "/api/queues")}
        asyncio.run(declare(rabbitmq.amqp_url, queue, {"x-max-length": 100}))
        wait_until(worker.ready, 60, "the worker to connect once the queue exists")
    finally:
        worker.stop()
    assert "Event loop is closed" not in worker.log_path.read_text()


def dead_letters(rabbitmq: RabbitMQ, queue: str) -> int:
    try:
        return rabbitmq.queue_counts(queue)["messages"]
    except OSError:  # not declared yet
        return 0


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_message_that_kills_the_worker_is_dead_lettered_after_its_attempts_while_others_flow(
    queue_type: str, rabbitmq: RabbitMQ, records: Path, tmp_path: Path
) -> None:
    queue = f"poison-{queue_type}-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare(rabbitmq.amqp_url, queue, {"x-queue-type": queue_type}))
    ids = [f"h{i}" for i in range(20)]
    messages = [aio_pika.Message(body("poison", fail="crash"))]
    messages += [aio_pika.Message(body(i, sleep=0.05)) for i in ids]
    asyncio.run(publish_messages(rabbitmq.amqp_url, queue, messages))
    settings = env(
        rabbitmq,
        queue,
        "worker_tasks:kill_worker_async",
        QC_CONCURRENCY="1",
        QC_MAX_DELIVERY_ATTEMPTS="3",
        **{worker_tasks.RECORDS_DIR_ENV: str(records)},
    )
    crashes = restart_until_poison_dead_lettered(
        settings,
        tmp_path,
        lambda: dead_letters(rabbitmq, f"{queue}.dead") == 1,
        lambda: set(ids) <= set(completions(records)),
        max_crashes=3,
    )
    assert crashes == 3
    assert set(completions(records)) == set(ids)
    [dead] = take_all_now(rabbitmq.amqp_url, f"{queue}.dead")
    assert json.loads(dead.body)["id"] == "poison"
    assert (dead.headers or {})["qc-dead-letter-reason"] == "crashed"
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")
