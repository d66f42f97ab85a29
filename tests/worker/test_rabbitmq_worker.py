"""A real `qc-worker` against the real RabbitMQ: kills, drains, dead letters and metrics lose nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import worker_env
from tests.worker.worker_harness import WorkerProcess, body, completions


async def publish(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
                )
                for b in bodies
            )
        )


async def drain_queue(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect_robust(url)
    taken = []
    async with connection:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, durable=True)
        while (message := await source.get(fail=False, timeout=5)) is not None:
            await message.ack()
            taken.append(message)
    return taken


@pytest.fixture
def queue() -> str:
    return f"work-{uuid.uuid4().hex[:8]}"


def environment(rabbitmq: RabbitMQ, queue: str, task: str, concurrency: int) -> dict[str, str]:
    """A worker's environment for `queue`, retrying after 0.1-0.5 s."""
    return {
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: rabbitmq.amqp_url,
        worker_env.RABBITMQ_QUEUE: queue,
        worker_env.TASK: task,
        worker_env.CONCURRENCY: str(concurrency),
        worker_env.RETRY_BACKOFF_MIN_SECONDS: "0.1",
        worker_env.RETRY_BACKOFF_MAX_SECONDS: "0.5",
    }


def test_sigkill_in_the_middle_of_a_run_loses_no_message(
    rabbitmq: RabbitMQ, queue: str, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = [f"k{i}" for i in range(300)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=0.02) for i in ids]))
    env = environment(rabbitmq, queue, "worker_tasks:work", concurrency=4)
    first = start_worker(**env)
    wait_until(lambda: sum(completions(records).values()) >= 60, 60, "the first worker to process some")
    first.kill_hard()  # the whole pod at once: the worker and its pool processes
    done_before_kill = set(completions(records))
    assert len(done_before_kill) < len(ids), "the kill came too late to prove anything"

    start_worker(**env)
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message to be processed")
    counts = completions(records)
    lost = set(ids) - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    print(f"SIGKILL run: published {len(ids)}, processed {len(set(counts))}, duplicates {duplicates}")
    assert lost == set()
    # Duplicates come only from the messages in flight at the kill: at most the window (4).
    assert duplicates <= 4
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")


def event_loop_of(pid: int) -> str:
    """Which event loop a running qc-worker uses: uvloop's extension is mapped in its memory, or not."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "uvloop" if "uvloop/loop." in maps else "asyncio"


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_sigterm_drains_in_flight_work_and_leaves_the_rest_queued(
    rabbitmq: RabbitMQ,
    queue: str,
    records: Path,
    start_worker: Callable[..., WorkerProcess],
    event_loop: str,
) -> None:
    ids = [f"t{i}" for i in range(30)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=0.8) for i in ids]))
    env = environment(rabbitmq, queue, "worker_tasks:work_async", concurrency=4)
    worker = start_worker(**env, **{worker_env.EVENT_LOOP: event_loop})
    assert event_loop_of(worker.popen.pid) == event_loop
    wait_until(lambda: worker.metric("qc_worker_tasks_in_flight") == 4, 30, "4 tasks in flight")
    in_flight_at_term = worker.metric("qc_worker_messages_received_total")
    assert worker.terminate() == 0
    done = completions(records)
    # Every task that had started was allowed to finish; nothing was acked without being done.
    assert len(done) >= 4
    assert max(done.values()) == 1
    remaining = len(ids) - len(done)
    expected = {"messages_ready": remaining, "messages_unacknowledged": 0, "messages": remaining}
    wait_until(
        lambda: rabbitmq.queue_counts(queue) == expected, 30, "the broker to hold the unprocessed rest"
    )
    assert in_flight_at_term >= 4


def test_failures_and_malformed_messages_are_dead_lettered_with_their_reason_and_counted(
    rabbitmq: RabbitMQ, queue: str, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    bodies = [body("ok1"), b"{not json", body("bad", fail="always"), body("ok2"), body("crash", fail="crash")]
    asyncio.run(publish(rabbitmq.amqp_url, queue, bodies))
    env = environment(rabbitmq, queue, "worker_tasks:work", concurrency=2)
    worker = start_worker(**(env | {worker_env.MAX_DELIVERY_ATTEMPTS: "2"}))
    wait_until(lambda: worker.metric("qc_worker_messages_dead_lettered_total") == 3, 60, "3 dead letters")
    dead = asyncio.run(drain_queue(rabbitmq.amqp_url, f"{queue}.dead"))
    reasons = sorted(str((m.headers or {})["qc-dead-letter-reason"]) for m in dead)
    assert reasons == ["crashed", "exception", "malformed"]
    by_reason = {str((m.headers or {})["qc-dead-letter-reason"]): m for m in dead}
    assert "RuntimeError: task for bad failed on purpose" in str(
        by_reason["exception"].headers["qc-dead-letter-detail"]
    )
    assert (by_reason["exception"].headers or {})["qc-delivery-attempts"] == "2"
    assert by_reason["malformed"].body == b"{not json"
    assert set(completions(records)) == {"ok1", "ok2"}

    # The metrics say exactly what happened.
    assert worker.metric("qc_worker_messages_acked_total") == 2
    assert worker.metric("qc_worker_messages_received_total") == 5 + 2  # two failures came back once each
    assert worker.metric("qc_worker_tasks_failed_total", reason="exception") == 2
    assert worker.metric("qc_worker_tasks_failed_total", reason="crashed") == 2
    assert worker.metric("qc_worker_tasks_failed_total", reason="malformed") == 1
    assert worker.metric("qc_worker_messages_retried_total") == 2
    assert worker.metric("qc_worker_tasks_in_flight") == 0
    assert worker.metric("qc_worker_capacity_tasks") == 2
    assert worker.metric("qc_worker_task_duration_seconds_count") == 7
    assert worker.metric("qc_worker_last_success_timestamp_seconds") > 0
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the work queue to be empty")
