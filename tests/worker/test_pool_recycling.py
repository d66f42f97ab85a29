"""Pool processes that recycle, on the real RabbitMQ: after N tasks or above M MiB resident, between tasks.

A real `qc-worker` runs `worker_tasks:leak`, which leaks memory on every task and records each message
under the id of the process that ran it (`<pid>.log`), so the records show both that every message was
processed exactly once and which process ran which; `qc_worker.zygote` forks the replacements.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import worker_env
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import WorkerProcess, body, completions

MESSAGES = 24
CONCURRENCY = 2


def tasks_per_process(records: Path) -> Counter[int]:
    return Counter({int(path.stem): len(path.read_text().split()) for path in records.glob("*.log")})


def run_leaking_work(
    rabbitmq: RabbitMQ,
    start_worker: Callable[..., WorkerProcess],
    records: Path,
    leak_mib: int,
    **limits: str,
) -> Counter[int]:
    """Publishes MESSAGES leaking tasks, waits for them, checks each ran exactly once; tasks per pid."""
    queue = f"leak-{uuid.uuid4().hex[:8]}"
    ids = [f"m{i}" for i in range(MESSAGES)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, leak_mib=leak_mib, sleep=0.05) for i in ids]))
    worker = start_worker(
        **{
            worker_env.SOURCE: "rabbitmq",
            worker_env.RABBITMQ_URL: rabbitmq.amqp_url,
            worker_env.RABBITMQ_QUEUE: queue,
            worker_env.TASK: "worker_tasks:leak",
            worker_env.CONCURRENCY: str(CONCURRENCY),
        },
        **limits,
    )
    wait_until(lambda: len(completions(records)) >= MESSAGES, 120, "every leaking task to finish")
    wait_until(lambda: worker.metric("qc_worker_messages_acked_total") >= MESSAGES, 30, "every message acked")
    assert worker.terminate() == 0
    counts = completions(records)
    assert set(counts) == set(ids), "a message was lost"
    assert max(counts.values()) == 1, f"a message ran twice: {counts.most_common(3)}"
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")
    return tasks_per_process(records)


def test_a_pool_process_is_replaced_after_max_tasks_per_child_with_nothing_lost_or_repeated(
    rabbitmq: RabbitMQ, start_worker: Callable[..., WorkerProcess], records: Path
) -> None:
    per_process = run_leaking_work(
        rabbitmq, start_worker, records, leak_mib=1, **{worker_env.MAX_TASKS_PER_CHILD: "3"}
    )
    print(f"by count: {len(per_process)} processes, tasks each {sorted(per_process.values())}")
    assert max(per_process.values()) <= 3
    assert len(per_process) >= MESSAGES // 3  # each process ran its 3 tasks at most, then a new pid took over


def test_a_pool_process_is_replaced_above_max_memory_per_child_with_nothing_lost_or_repeated(
    rabbitmq: RabbitMQ, start_worker: Callable[..., WorkerProcess], records: Path
) -> None:
    leak_mib, limit_mib = 16, 64
    per_process = run_leaking_work(
        rabbitmq, start_worker, records, leak_mib, **{worker_env.MAX_MEMORY_PER_CHILD_MIB: str(limit_mib)}
    )
    print(f"by memory: {len(per_process)} processes, tasks each {sorted(per_process.values())}")
    # A process passes 64 MiB resident after at most 4 leaks of 16 MiB and is replaced after that task.
    assert max(per_process.values()) <= limit_mib // leak_mib
    assert len(per_process) >= MESSAGES // (limit_mib // leak_mib)


def test_without_limits_the_pool_keeps_its_processes(
    rabbitmq: RabbitMQ, start_worker: Callable[..., WorkerProcess], records: Path
) -> None:
    per_process = run_leaking_work(rabbitmq, start_worker, records, leak_mib=1)
    assert len(per_process) <= CONCURRENCY  # the same long-lived processes ran every task
