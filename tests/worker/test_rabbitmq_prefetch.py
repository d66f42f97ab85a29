"""The prefetch beyond the window, on the real RabbitMQ: the broker delivers the window + 1, the worker
starts no more than the window, and the extra message goes back uncounted when the worker drains.

`QC_RABBITMQ_PREFETCH_EXTRA` (default 1) lets a freed slot start the next task at once instead of waiting
for its ack's round trip to the broker (`make bench-worker` measures what that buys against Celery).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from rabbitmq_helpers import declare

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import worker_env
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import WorkerProcess, body, completions


def test_one_message_waits_beyond_the_window_and_a_drain_hands_it_back_uncounted(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"prefetch-{uuid.uuid4().hex[:8]}"
    asyncio.run(declare(rabbitmq.amqp_url, queue))
    ids = [f"p{i}" for i in range(8)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=2.0) for i in ids]))
    settings = {
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: rabbitmq.amqp_url,
        worker_env.RABBITMQ_QUEUE: queue,
        worker_env.TASK: "worker_tasks:work",
        worker_env.CONCURRENCY: "2",
        worker_env.DRAIN_GRACE_SECONDS: "30",
        # One attempt only: a message whose hand-back counted an attempt would be dead-lettered next time.
        worker_env.MAX_DELIVERY_ATTEMPTS: "1",
    }
    first = start_worker(**settings)
    wait_until(lambda: first.metric("qc_worker_tasks_in_flight") == 2, 60, "the window full")
    wait_until(
        lambda: rabbitmq.queue_counts(queue)["messages_unacknowledged"] == 3, 30, "the window + 1 delivered"
    )
    assert first.metric("qc_worker_tasks_in_flight") == 2, "a prefetched message started beyond the window"
    assert first.terminate() == 0  # the two running tasks finish; the extra one goes back
    finished_first = len(completions(records))
    second = start_worker(**settings)
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message")
    counts = completions(records)
    print(f"first worker finished {finished_first}, then the second the rest")
    assert max(counts.values()) == 1
    assert second.metric("qc_worker_messages_dead_lettered_total") == 0, "a hand-back counted an attempt"
    assert first.popen.returncode == 0
