"""Celery, the reference `make bench-worker` measures `qc-worker` against: the same task module
(`benchmarks.bench_tasks`), the same RabbitMQ, prefork with acks late at the same concurrency.

Runs in its own virtualenv (.venv-celery, pinned by benchmarks/celery-constraints.txt; see there why), as
`celery -A benchmarks.celery_app worker ...`, and as `python -m benchmarks.celery_app QUEUE TASK JSON` to
publish one message per argument in JSON. The broker's URL comes from $BENCH_CELERY_BROKER.
"""

from __future__ import annotations

import json
import os
import sys

from celery import Celery  # type: ignore[import-not-found, unused-ignore]

from benchmarks import bench_tasks

BROKER_ENV = "BENCH_CELERY_BROKER"

app = Celery("bench", broker=os.environ.get(BROKER_ENV, "amqp://"))
app.conf.update(
    task_acks_late=True,  # acked after the task, as qc-worker does: a crash redelivers it
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="timed_burn")  # type: ignore[untyped-decorator, unused-ignore]
def timed_burn(cpu_seconds: float) -> None:
    bench_tasks.timed_burn(cpu_seconds)


@app.task(name="hold")  # type: ignore[untyped-decorator, unused-ignore]
def hold(sleep_seconds: float) -> None:
    bench_tasks.hold(sleep_seconds)


def publish(queue: str, task: str, arguments: list[float]) -> None:
    with app.connection_for_write() as connection:
        for argument in arguments:
            app.send_task(task, args=[argument], queue=queue, connection=connection)


if __name__ == "__main__":
    publish(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
