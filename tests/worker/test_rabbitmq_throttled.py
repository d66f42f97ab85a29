"""A throttled `qc-worker` on the real RabbitMQ holds only what its rate needs: its consumer's prefetch
shrinks with the share (and grows back when the share is lifted), so waiting messages stay in the broker
for the other pods."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import worker_env
from tests.worker.test_rabbitmq_worker import environment, publish
from tests.worker.worker_harness import WorkerProcess, body, completions


def queue_counts(rabbitmq: RabbitMQ, queue: str) -> tuple[int, int]:
    """(prefetch of the queue's consumers, messages delivered and not acked), as the broker sees them."""
    consumers: list[dict[str, Any]] = rabbitmq.api("GET", "/api/consumers")
    ours = [c for c in consumers if c["queue"]["name"] == queue]
    unacked = int(rabbitmq.api("GET", f"/api/queues/%2F/{queue}").get("messages_unacknowledged", -1))
    return sum(int(c["prefetch_count"]) for c in ours), unacked


@pytest.mark.slow
def test_a_throttled_worker_leaves_the_waiting_messages_in_the_broker(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    queue = f"throttled-{uuid.uuid4().hex[:8]}"
    ids = [f"t{i}" for i in range(200)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=0.05) for i in ids]))
    share = tmp_path / "messages-per-second"
    share.write_text("2")
    env = environment(rabbitmq, queue, "worker_tasks:work_async", concurrency=16)
    started = time.monotonic()  # before the worker: its share holds from its first message
    worker = start_worker(
        **env, **{worker_env.RATE_LIMIT_FILE: str(share), worker_env.RABBITMQ_PREFETCH_EXTRA: "1"}
    )
    # 2/s x (0.05 s + 1 s ahead): 3 messages, of 16 slots. The broker's figures lag a few seconds.
    wait_until(lambda: queue_counts(rabbitmq, queue) == (3, 3), 60, "the prefetch to shrink to 3")
    assert worker.metric("qc_worker_rate_share_messages_per_second") == 2
    assert worker.metric("qc_worker_tasks_in_flight") <= 3
    done, elapsed = sum(completions(records).values()), time.monotonic() - started
    assert 0 < done <= 2 * elapsed + 1, f"{done} done in {elapsed:.0f} s: the share did not hold the worker"

    share.write_text("")  # lifted: the whole window again, and the rest done at full speed
    # Unthrottled: the window and the one message prefetched beyond it (QC_RABBITMQ_PREFETCH_EXTRA=1).
    wait_until(lambda: queue_counts(rabbitmq, queue)[0] == 17, 30, "the prefetch to grow back to 17")
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message to be processed")
    assert worker.terminate() == 0
