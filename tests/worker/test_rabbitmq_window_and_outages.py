"""A real `qc-worker` on the real RabbitMQ: the window stays full, a failing backlog never looks drained, a
SIGTERM makes no duplicate, and a broker that is down at start or restarts is weathered."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest
import worker_tasks

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from tests.worker.rabbitmq_helpers import declare, publish_messages, restart_stopped
from tests.worker.worker_harness import WorkerProcess, body, completions


def env(rabbitmq: RabbitMQ, queue: str, task: str, **extra: str) -> dict[str, str]:
    return {
        "QC_SOURCE": "rabbitmq",
        "QC_RABBITMQ_URL": rabbitmq.amqp_url,
        "QC_RABBITMQ_QUEUE": queue,
        "QC_TASK": task,
        **extra,
    }


def publish(rabbitmq: RabbitMQ, queue: str, bodies: list[bytes]) -> None:
    messages = [aio_pika.Message(b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT) for b in bodies]
    asyncio.run(publish_messages(rabbitmq.amqp_url, queue, messages))


def test_the_window_stays_full_while_the_broker_has_messages(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"window-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare(rabbitmq.amqp_url, queue))
    ids = [f"w{i}" for i in range(800)]
    publish(rabbitmq, queue, [body(i, sleep=0.1) for i in ids])
    worker = start_worker(**env(rabbitmq, queue, "worker_tasks:work_async", QC_CONCURRENCY="16"))
    samples = []
    while len(completions(records)) < 700:  # while a backlog remains (the tail empties the window)
        samples.append(worker.metric("qc_worker_tasks_in_flight"))
        time.sleep(0.05)
    occupancy = statistics.mean(samples[2:]) / 16
    print(f"window occupancy over {len(samples)} samples: {occupancy:.1%}")
    # Measured here: 97-98% alone (prefetch = the window + 1), 84% once in `make test` beside two other
    # sessions starting pods, where the worker waits for a core between an ack and the next start. The
    # bound catches a window that refills only in rounds or batches of free slots under any such load; it
    # cannot tell the former batching (pull once 20% of the slots were free: 86% on a loaded run) apart.
    assert occupancy >= 0.75
    wait_until(lambda: set(ids) <= set(completions(records)), 60, "every message")


def test_a_deep_queue_whose_every_task_fails_never_reports_an_empty_receive(
    rabbitmq: RabbitMQ, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare(rabbitmq.amqp_url, queue))
    publish(rabbitmq, queue, [body(f"f{i}", fail="always") for i in range(200)])
    worker = start_worker(
        **env(
            rabbitmq,
            queue,
            "worker_tasks:work_async",
            QC_CONCURRENCY="4",
            QC_MAX_DELIVERY_ATTEMPTS="1000",
            QC_RETRY_BACKOFF_MIN_SECONDS="1.5",
            QC_RETRY_BACKOFF_MAX_SECONDS="3",
        )
    )
    # Every slot sits in a retry's backoff for seconds at a time: the receive loop must not count that as
    # "the queue had nothing to give" (the operator would discount the backlog as drained).
    wait_until(lambda: worker.metric("qc_worker_messages_retried_total") >= 12, 60, "several retry rounds")
    assert worker.metric("qc_worker_empty_receives_total") == 0
    # Nothing was lost or dead-lettered meanwhile (the management API's figures may lag a few seconds).
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 200, 30, "the broker to count all 200")
    assert worker.metric("qc_worker_messages_dead_lettered_total") == 0


def test_sigterm_with_long_pool_tasks_in_flight_makes_no_duplicate(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"drain-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare(rabbitmq.amqp_url, queue))
    ids = [f"d{i}" for i in range(12)]
    # Tasks end just after the grace period: exactly where a message handed back before its process was
    # gone would also be finished by that process.
    publish(rabbitmq, queue, [body(i, sleep=2.0 + 0.05 * n) for n, i in enumerate(ids)])
    settings = env(rabbitmq, queue, "worker_tasks:work", QC_CONCURRENCY="4", QC_DRAIN_GRACE_SECONDS="1.9")
    first = start_worker(**settings)
    wait_until(lambda: first.metric("qc_worker_tasks_in_flight") == 4, 60, "4 tasks in flight")
    assert first.terminate() == 0
    stopped_mid_task = 4 - len(completions(records))
    start_worker(**settings)
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message")
    time.sleep(1)  # a straggler from the first worker would have recorded by now
    counts = completions(records)
    print(f"stopped mid-task: {stopped_mid_task}, duplicates: {sum(c - 1 for c in counts.values())}")
    assert max(counts.values()) == 1
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")


@pytest.mark.slow
def test_a_broker_down_at_start_and_restarted_mid_run_is_weathered_without_loss(
    tmp_path: Path, records: Path
) -> None:
    broker = RabbitMQ(tmp_path / "node")
    broker.start()
    worker: WorkerProcess | None = None
    try:
        queue = "weather"
        asyncio.run(declare(broker.amqp_url, queue))
        broker.stop()
        settings = env(
            broker,
            queue,
            "worker_tasks:work_async",
            QC_CONCURRENCY="4",
            **{worker_tasks.RECORDS_DIR_ENV: str(records)},
        )
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        wait_until(lambda: "cannot reach the broker" in worker.log_path.read_text(), 30, "the retry log line")
        assert worker.popen.poll() is None
        assert not worker.ready()

        restart_stopped(broker)
        wait_until(worker.ready, 90, "the worker to connect once the broker is up")
        ids = [f"r{i}" for i in range(200)]
        publish(broker, queue, [body(i, sleep=0.05) for i in ids])
        wait_until(lambda: len(completions(records)) >= 40, 60, "some progress")

        broker.stop()
        wait_until(lambda: not worker.ready(), 30, "/readyz to report the broker unreachable")
        assert worker.popen.poll() is None
        restart_stopped(broker)
        wait_until(worker.ready, 90, "/readyz to report ready again")
        wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message after the restart")
        counts = completions(records)
        duplicates = sum(c - 1 for c in counts.values())
        print(f"broker restart: {len(ids)} published, duplicates {duplicates}")
        assert duplicates <= 4  # only what was unacked (the prefetch = the window) when the broker went away
        wait_until(lambda: broker.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    assert "Event loop is closed" not in worker.log_path.read_text()
